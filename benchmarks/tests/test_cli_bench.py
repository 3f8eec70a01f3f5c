"""`twotower bench cli` on two commands: rows as documented, and the import check."""
import json

from benchmarks import cli as cli_bench


def test_report_rows_and_the_tensorflow_check(tmp_path):
    path = cli_bench.run([("config",), ("bench", "--help")], repeats=2, out=tmp_path / "cli.json")
    report = json.loads(path.read_text())
    assert [row["name"] for row in report["rows"]] == ["config", "bench --help"]
    for row in report["rows"]:
        assert row["repeats"] == 2 and 0 < row["median_s"] <= row["max_s"]
        assert row["imports_tensorflow"] is False
    assert "0 of 2 commands import TensorFlow" in report["notes"]
    # The check sees TensorFlow where it is imported: a query loads the client's TF protos
    # (and then fails to connect, which does not matter here).
    assert cli_bench.imports_tensorflow(["query", "--port", "1", "--timeout", "0.1",
                                         "--user-features", "user_id=1"])
