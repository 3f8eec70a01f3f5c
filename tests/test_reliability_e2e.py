"""Failing safe, end to end through the `twotower` command: an interrupted run resumes from
the TFX cache, and a worse model is refused by the validator and never pushed."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from components.pusher import versions
from pipeline import cli
from pipeline.data import synthetic

pytestmark = pytest.mark.e2e
BIN = pathlib.Path(sys.executable).parent


@pytest.fixture(name="workdir")
def fixture_workdir(tmp_path, monkeypatch):
    synthetic.generate(synthetic.SyntheticSpec(users=200, items=150, interactions=3_000, seed=7),
                       tmp_path / "data", progress=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


ARGS = ["run", "--set", "data.interactions=data/interactions.csv",
        "--set", "data.items=data/items.csv", "--set", "orchestration.pipeline_root=root",
        "--set", "serving.base_path=serving", "--set", "training.epochs=3"]


def _complete_versions_only(base: pathlib.Path) -> list[int]:
    """Every entry under a model base path is a complete numeric version."""
    if not base.exists():
        return []
    for entry in base.iterdir():
        assert entry.name.isdigit() and (entry / "saved_model.pb").is_file(), entry
    return versions.versions(str(base))


def test_a_run_killed_during_training_resumes_from_cache(workdir, capsys):
    process = subprocess.Popen([BIN / "twotower", *ARGS], stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=workdir)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "Trainer ..." in line:
            time.sleep(5)  # mid-training
            os.killpg(process.pid, signal.SIGKILL)
            break
    assert process.wait(timeout=60) == -signal.SIGKILL, "".join(seen)
    assert _complete_versions_only(workdir / "serving" / "twotower") == []

    assert cli.main(ARGS) == 0
    out, err = capsys.readouterr()
    # The 11 components before the Trainer that finished in the killed run are re-used (the
    # resolver, a query, always runs).
    assert err.count(" cached") == 11, err
    assert "Trainer done in" in err and "validation: BLESSED" in out
    for name in ("twotower", "twotower-stock"):
        assert len(_complete_versions_only(workdir / "serving" / name)) == 1


def test_a_worse_model_is_not_pushed_and_the_failed_threshold_is_named(workdir, capsys):
    # Gate on recall@10: with 150 items, recall@100 is near 1 for almost any model.
    args = ARGS + ["--set", "validation.k=10"]
    assert cli.main(args) == 0
    capsys.readouterr()
    served = _complete_versions_only(workdir / "serving" / "twotower")
    # One training step: a misconfigured run whose model is far worse than the blessed one.
    assert cli.main(args + ["--set", "training.train_steps=1"]) == 0
    out, _ = capsys.readouterr()
    assert "validation: NOT BLESSED" in out, out
    assert "failed max_relative_regression: filtered_recall_at_10 " in out, out
    assert "vs baseline" in out and "minus 5%" in out
    assert "Pusher: nothing pushed (the model was not blessed)" in out
    assert _complete_versions_only(workdir / "serving" / "twotower") == served
