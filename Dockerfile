# The image every Kubeflow Pipelines / Vertex AI task runs (orchestration.image).
#   docker build -t REGISTRY/twotower:TAG . && docker push REGISTRY/twotower:TAG
# Same pinned constraints as local installs; the repository lives at /twotower, where the
# compiled spec reads the curated schemas (pipeline/runners/kubeflow_v2.py CONTAINER_REPO).
FROM python:3.10-slim-bookworm

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /twotower
COPY setup.py constraints.txt README.md ./
COPY twotower twotower
COPY pipeline pipeline
COPY components components
COPY serving serving
COPY benchmarks benchmarks
COPY schemas schemas
COPY configs configs

RUN pip install --no-cache-dir "pip==24.3.1" \
 && pip install --no-cache-dir -c constraints.txt -e '.[kubeflow]'

# TFX's KubeflowV2DagRunner sets each task's command to
# `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`.
