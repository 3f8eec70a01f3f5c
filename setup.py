"""twotower: a TFX pipeline for two-tower candidate retrieval.

Install with the pinned constraints (the Makefile does this):
    pip install -c constraints.txt -e '.[test,airflow,kubeflow]'
"""
from setuptools import find_packages, setup

CORE = [
    "tfx[kfp]==1.16.0",
    "tensorflow==2.16.2",
    "tensorflow-recommenders==0.7.3",
    "tf-keras~=2.16.0",
    "scann==1.3.2",
    "apache-beam[gcp]==2.59.0",
    "pyyaml",
    "tqdm",
    "psutil",
    "matplotlib",  # the model validator's candidate-vs-baseline plot
    "h2",  # HTTP/2 state machine of serving/http2.py (--grpc_frontend asyncio)
    "h11",  # HTTP/1.1 state machine of serving/rest.py
]

EXTRAS = {
    "airflow": ["apache-airflow==2.10.5"],
    "kubeflow": ["kfp==2.5.0", "kfp-pipeline-spec==0.2.2"],
    "bench": ["faiss-cpu"],
    "test": ["pytest", "scipy"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="twotower",
    version="0.1.0",
    description="Production pipeline for two-tower candidate retrieval (TFRS, TFX, Beam, ScaNN).",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["twotower*", "pipeline*", "components*", "serving*", "benchmarks*"]),
    package_data={"": ["*.pbtxt"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["twotower=pipeline.cli:main"]},
)
