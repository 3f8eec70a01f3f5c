"""Beam arguments of a pipeline: local runs do not make TFX build a throw-away TFX sdist in
/tmp per Beam executor (pipeline/beam_args.py)."""
import tempfile

import pytest
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

from pipeline import beam_args

LOCAL = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def test_direct_runner_args_get_the_inert_sdk_image_flag():
    assert beam_args.pipeline_beam_args(LOCAL) == [*LOCAL, beam_args.SDK_IMAGE_FLAG]
    explicit = ["--runner", "DirectRunner", *LOCAL]
    assert beam_args.pipeline_beam_args(explicit)[-1] == beam_args.SDK_IMAGE_FLAG
    assert beam_args.pipeline_beam_args([]) == [beam_args.SDK_IMAGE_FLAG]


@pytest.mark.parametrize("args", [
    ["--runner=DataflowRunner", "--project=p"],
    ["--runner", "FlinkRunner"],
    [*LOCAL, "--setup_file=./setup.py"],
    [*LOCAL, "--extra_package", "dist/twotower.tar.gz"],
])
def test_other_runners_and_own_dependency_flags_are_left_alone(args):
    assert beam_args.pipeline_beam_args(args) == args


def _ephemeral_builds(folder):
    return list(folder.glob("*/build/tfx"))


def test_a_beam_executor_builds_no_tfx_package_with_pipeline_args(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    statistics_executor.Executor(BaseBeamExecutor.Context(
        beam_pipeline_args=beam_args.pipeline_beam_args(LOCAL)))
    assert not _ephemeral_builds(tmp_path)
    # What TFX does with the raw arguments: a copy of its install tree, left behind.
    statistics_executor.Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(LOCAL)))
    assert len(_ephemeral_builds(tmp_path)) == 1
