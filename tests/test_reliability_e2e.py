"""Failing safe, end to end through the `twotower` command: a killed run leaves no process
behind and the next run resumes from the TFX cache, and a worse model is refused by the
validator and never pushed."""
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import psutil
import pytest

from twotower import versions
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


def _spawned_child(processes):
    """Whether one of `processes` is a multiprocessing child (twotower/child_process.py)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if any("spawn_main" in part for part in process.cmdline()):
                return True
    return False


def _kill_during(stage, signum, cwd):
    """Starts `twotower run`, sends `signum` to its process alone (not its group, as a
    scheduler's timeout or `kill` does) while `stage` runs in a child process, and checks
    that none of the run's processes outlives it by 10 s; returns what the run printed."""
    process = subprocess.Popen([BIN / "twotower", *ARGS], stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=cwd)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if f"{stage} ..." in line:
                break
        descendants = []
        deadline = time.monotonic() + 60
        while not _spawned_child(descendants) and time.monotonic() < deadline:
            time.sleep(1)
            descendants = psutil.Process(process.pid).children(recursive=True)
        assert _spawned_child(descendants), "".join(seen)
        process.send_signal(signum)
        assert process.wait(timeout=60) == -signum, "".join(seen)
        deadline = time.monotonic() + 10
        alive = descendants
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [p.cmdline()[:3] for p in alive]
        return "".join(seen)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_killed_runs_leave_no_process_and_the_rerun_pushes_once(workdir, capsys):
    """SIGTERM during the NegativePoolBuilder's Beam pipeline, then SIGKILL during training
    (both in child processes): nothing of either run survives it, nothing is served, and the
    next run resumes from the TFX cache and pushes exactly one version."""
    _kill_during("NegativePoolBuilder", signal.SIGTERM, workdir)
    second = _kill_during("Trainer", signal.SIGKILL, workdir)
    assert _complete_versions_only(workdir / "serving" / "twotower") == []

    assert cli.main(ARGS) == 0
    out, err = capsys.readouterr()
    # The 11 components before the Trainer that finished in the killed runs are re-used (the
    # resolver, a query, always runs).
    assert err.count(" cached") == 11, err
    assert "Trainer done in" in err and "validation: BLESSED" in out
    for name in ("twotower", "twotower-stock"):
        assert len(_complete_versions_only(workdir / "serving" / name)) == 1
    # What each killed run left unfinished is named and removed by the next run: one pool and
    # one Trainer model remain.
    assert "a previous run was interrupted during NegativePoolBuilder: removed its" in second
    assert "a previous run was interrupted during Trainer: removed its 2 " in err, err
    for outputs in ("NegativePoolBuilder/negative_pool", "Trainer/model"):
        assert len(list((workdir / "root" / outputs).iterdir())) == 1, outputs


def test_a_worse_model_is_not_pushed_and_the_failed_threshold_is_named(workdir, capsys):
    # Gate on recall@10: with 150 items, recall@100 is near 1 for almost any model.
    args = ARGS + ["--set", "validation.k=10"]
    # A first run with a broken learning rate: no blessed model to compare with, and still
    # refused, since it ranks below popularity; nothing is served.
    assert cli.main(args + ["--set", "training.learning_rate=1e-9",
                            "--set", "training.train_steps=1"]) == 0
    out, _ = capsys.readouterr()
    assert "validation: NOT BLESSED" in out, out
    assert "failed beats_mostpop: filtered_recall_at_10 " in out and "(must be above)" in out
    assert "Pusher: nothing pushed (the model was not blessed)" in out
    assert _complete_versions_only(workdir / "serving" / "twotower") == []
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
