"""The `twotower` command: help texts, data generation, config printing, error exits."""
import json
import subprocess
import sys

import pytest
import yaml

from pipeline import cli, cli_bench
from twotower.errors import DataValidationError


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "movielens"], ["data", "synthetic"],
                                  ["run"], ["config"], ["bench", "scale"]])
def test_help_texts(argv, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(argv + ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: twotower")


HELP_COMMANDS = [[], ["run"], ["serve"], ["query"], ["schema", "init"], ["config"],
                 ["compile"], ["tune-temperature"], ["data", "synthetic"], ["bench"]] + [
                    ["bench", name] for name, _ in cli_bench.BENCHMARKS]


def test_help_and_config_do_not_import_tensorflow_or_beam():
    """Every `--help` and `twotower config` parse in a fresh interpreter without importing
    TensorFlow or Beam (they made every command take ~4 s to start)."""
    script = (
        "import sys\n"
        "from pipeline import cli\n"
        f"for argv in {HELP_COMMANDS!r}:\n"
        "    try:\n"
        "        cli.build_parser(argv + ['--help']).parse_args(argv + ['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "cli.main(['config'])\n"
        "print(sorted(m for m in ('tensorflow', 'apache_beam', 'tfx') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stdout[-500:]
    assert "span_quality" in result.stdout and "--repeat-weights" in result.stdout


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True,
                            text=True, check=True)
    assert "data" in result.stdout and "run" in result.stdout


def test_data_synthetic_writes_tables_and_reports_the_ceiling(tmp_path, capsys):
    code = cli.main(["data", "synthetic", "--users", "20", "--items", "30", "--interactions",
                     "500", "--seed", "1", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 500 interactions, 20 users, 30 items" in out
    meta = json.loads((tmp_path / "synthetic.json").read_text())
    assert f"@10 {meta['oracle_hit_rate_at_10']:.4f}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "interactions.csv", "items.csv", "synthetic.json", "users.csv"]


def test_invalid_synthetic_size_is_a_user_error(tmp_path, capsys):
    code = cli.main(["data", "synthetic", "--users", "0", "--items", "3", "--interactions", "5",
                     "--out", str(tmp_path)])
    assert code == cli.EXIT_USER_ERROR
    assert "error: --users must be >= 1" in capsys.readouterr().err


def test_config_prints_effective_yaml(tmp_path, capsys):
    assert cli.main(["config", "--set", "data.split=hash"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["split"] == "hash"
    assert printed["model"]["l2_normalize"] is True


def test_bad_config_exits_2_without_traceback(capsys):
    assert cli.main(["run", "--set", "pool.sampler=zipf"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: pool.sampler: got 'zipf'")
    assert "Traceback" not in err


def test_find_user_error_walks_the_cause_chain():
    inner = DataValidationError("feature 'age' is bad")
    try:
        try:
            raise inner
        except DataValidationError as e:
            raise RuntimeError("wrapped by the runner") from e
    except RuntimeError as outer:
        assert cli.find_user_error(outer) is inner
    assert cli.find_user_error(RuntimeError("other")) is None


def test_bench_scale_refuses_unsorted_sizes(capsys):
    assert cli.main(["bench", "scale", "--sizes", "100", "10"]) == 2
    assert "--sizes" in capsys.readouterr().err
