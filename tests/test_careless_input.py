"""Each careless input a new user tried (schema init, config, query, serve) through the CLI:
exit code 2 and one line naming the fix, no traceback."""
import socket

import pandas as pd
import pytest

from pipeline import cli
from serving import server as server_lib
from serving.flags import ServerOptions
from serving.tests import fixtures


def _error(capsys, argv):
    """Runs the CLI; returns the one error line of its stderr (progress lines and
    argparse's usage lines aside)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def _tables(tmp_path, **columns):
    log = pd.DataFrame({"device": ["ios", "web", "ios", "web"] * 10,
                        "sku": [f"s{i % 7}" for i in range(40)], **columns})
    log.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"sku": [f"s{i}" for i in range(7)]}).to_csv(tmp_path / "items.csv", index=False)
    return ["schema", "init", "--interactions", str(tmp_path / "log.csv"), "--items",
            str(tmp_path / "items.csv"), "--out", str(tmp_path / "contract")]


def test_schema_init_refuses_empty_files_and_a_device_as_the_user(tmp_path, capsys):
    argv = _tables(tmp_path)
    assert "rejected device (2 values): fewer than 50 distinct values" in _error(capsys, argv)
    assert "--user-id COLUMN" in _error(capsys, argv)
    (tmp_path / "log.csv").write_text("")
    assert _error(capsys, argv).endswith("log.csv is empty; a CSV table needs a header line "
                                         "and rows")
    (tmp_path / "log.csv").write_text("device,sku\n")
    assert _error(capsys, argv).endswith("log.csv has no rows; schema init needs a sample of "
                                         "the data")


def test_schema_init_prints_the_split_it_chose(tmp_path, capsys):
    argv = _tables(tmp_path, shopper=[f"u{i % 9}" for i in range(40)],
                   ordered=[f"2024-06-{1 + i % 28:02d} 10:{i:02d}" for i in range(40)])
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "split: time: train on the events before the 0.8 quantile of 'ordered' (ISO-8601" in out
    assert "format: iso8601" in (tmp_path / "contract" / "features.yaml").read_text()


@pytest.mark.parametrize("override, message", [
    ("index.num_leaves_to_search=-3", "index.num_leaves_to_search: got -3"),
    ("training.epochs=1000000000", "training.epochs: got 1000000000; expected a number from 1 "
                                   "to 10,000"),
    ("training.epochs=1e9", "training.epochs: got 1000000000.0; expected an integer"),
    ("model.embedding_dim=100000000", "model.embedding_dim: got 100000000"),
    ("serving.max_batch_size=-1", "serving.max_batch_size: got -1"),
])
def test_out_of_range_settings_are_refused_before_any_work(override, message, capsys):
    assert message in _error(capsys, ["config", "--set", override])


def test_serve_refuses_a_missing_path_and_a_busy_port(tmp_path, capsys):
    line = _error(capsys, ["serve", "--model_base_path", str(tmp_path / "nope")])
    assert "does not exist; push a model there first (twotower run) or pass --wait_for_models" \
        in line
    (tmp_path / "models").mkdir()
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        line = _error(capsys, ["serve", "--model_base_path", str(tmp_path / "models"),
                               "--port", str(port), "--rest_api_port", "0"])
        assert line.startswith(f"error: cannot listen for gRPC on 127.0.0.1:{port}")
        assert line.endswith("is another server using it? Stop it or pass --port")
        line = _error(capsys, ["serve", "--model_base_path", str(tmp_path / "models"),
                               "--port", "0", "--rest_api_port", str(port)])
        assert line.startswith(f"error: cannot listen for REST on 127.0.0.1:{port}")
    assert _error(capsys, ["serve", "--model_base_path", str(tmp_path / "models"),
                           "--max_batch_size", "-1"]) == (
        "error: --max_batch_size: got -1; expected at least 1")


def test_query_checks_k(tmp_path, capsys):
    base = str(tmp_path / "models" / "twotower")
    fixtures.write_version(base, 1, seed=1, root=str(tmp_path))
    server = server_lib.ModelServer(ServerOptions(models={"twotower": base}, port=0,
                                                  rest_api_port=0, poll_seconds=0.2))
    server.start()
    try:
        ask = ["query", "--port", str(server.grpc_port), "--user-features", "user_id=u1"]
        for bad in ("0", "-1"):
            assert "argument --k: expected an integer >= 1" in _error(capsys, ask + ["--k", bad])
        assert _error(capsys, ask + ["--k", "100000"]) == (
            f"error: --k 100000: model twotower returns {fixtures.K} items per query (its "
            "index.k); ask for at most that many")
        assert cli.main(ask + ["--k", "3"]) == 0
        assert "top 3" in capsys.readouterr().out
        assert cli.main(["query", "--port", str(server.grpc_port)]) == 0
        assert "warning: no --user-features and no --history" in capsys.readouterr().err
    finally:
        server.stop()
