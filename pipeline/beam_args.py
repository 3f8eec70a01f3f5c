"""The Beam arguments every Beam-based component of a pipeline gets.

TFX's BaseBeamExecutor, given any Beam arguments but none of Beam's dependency flags,
copies TFX's whole install tree into a fresh /tmp folder and builds a `tfx_ephemeral`
sdist there (about 49 MB and a `setup.py sdist` subprocess, tfx/utils/dependency_utils.py)
so that remote workers could install TFX, every time a Beam executor is constructed, and
never deletes it: a few of those per local run, hundreds of MB a day on a scheduled
machine (this machine's disk filled up with 1,064 of them). The DirectRunner's workers
share the launching environment and stage nothing, so for it the SDK image flag is set to
Beam's own default image: inert for the DirectRunner, and it tells TFX that dependencies
are taken care of. Other runners keep TFX's behaviour (their workers need the package).
"""
from __future__ import annotations

from typing import Sequence

import apache_beam as beam

# Beam options whose presence makes TFX skip building its ephemeral package.
DEPENDENCY_FLAGS = ("--extra_package", "--extra_packages", "--setup_file",
                    "--requirements_file", "--worker_harness_container_image",
                    "--sdk_container_image")
DIRECT_RUNNERS = ("DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner")
SDK_IMAGE_FLAG = "--sdk_container_image=apache/beam_python3.10_sdk:" + beam.__version__


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for position, arg in enumerate(args):
        if arg == flag and position + 1 < len(args):
            return args[position + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def pipeline_beam_args(args: Sequence[str]) -> list[str]:
    """`args` plus the inert SDK image flag when they run on the DirectRunner and name
    no dependency flag of their own (module docstring)."""
    runner = _flag_value(args, "--runner") or "DirectRunner"
    has_dependencies = any(arg == flag or arg.startswith(flag + "=")
                           for arg in args for flag in DEPENDENCY_FLAGS)
    if runner.rsplit(".", 1)[-1] not in DIRECT_RUNNERS or has_dependencies:
        return list(args)
    return [*args, SDK_IMAGE_FLAG]
