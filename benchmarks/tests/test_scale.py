"""The scale benchmark's bookkeeping, by hand: per-component spans, peaks and growth."""
import logging

from benchmarks import scale
from pipeline import progress


def test_component_spans_from_a_log_written_with_the_run_format(tmp_path):
    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter(progress.LOG_FORMAT))
    logger = logging.getLogger("test_scale_spans")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Only this file: handlers that earlier in-process CLI runs left on the root logger
    # may write to streams that are closed by now.
    logger.propagate = False
    try:
        logger.info("Component Trainer is running.")
        logger.info("Epoch 1 done")
        logger.info("Component Trainer is finished.")
        logger.info("Component Pusher is running.")
    finally:
        logger.removeHandler(handler)
        handler.close()
    spans = progress.component_spans(log_file.read_text().splitlines())
    # Pusher never finished, so it has no span; Trainer's span is ordered and short.
    assert list(spans) == ["Trainer"]
    start, end = spans["Trainer"]
    assert 0 <= end - start < 5


def test_component_spans_parse_times_and_keep_run_order():
    lines = ["2026-11-29 01:00:00,000 INFO absl Component B is running.",
             "2026-11-29 01:00:01,500 INFO absl Component B is finished.",
             "not a log line",
             "2026-11-29 01:00:02,000 INFO absl Component A is running.",
             "2026-11-29 01:00:12,250 INFO absl Component A is finished."]
    spans = progress.component_spans(lines)
    assert list(spans) == ["B", "A"]
    assert spans["B"][1] - spans["B"][0] == 1.5
    assert spans["A"][1] - spans["A"][0] == 10.25


def test_stage_rows_take_the_peak_inside_each_span():
    spans = {"A": (10.0, 20.0), "B": (20.5, 20.6)}
    samples = [(9.0, 5000.0), (11.0, 100.0), (15.0, 300.0), (19.9, 200.0), (20.4, 700.0)]
    rows = scale.stage_rows(spans, samples)
    assert rows[0] == {"name": "A", "wall_s": 10.0, "peak_rss_mb": 300}
    # B is shorter than the sampling interval: the last sample before its end.
    assert rows[1] == {"name": "B", "wall_s": 0.1, "peak_rss_mb": 700}


def test_growth_divides_the_last_size_by_the_first():
    rows = [{"name": "Trainer", "interactions": 10, "wall_s": 4.0},
            {"name": "pipeline", "interactions": 10, "wall_s": 100.0},
            {"name": "Trainer", "interactions": 100, "wall_s": 5.0},
            {"name": "pipeline", "interactions": 100, "wall_s": 250.0},
            {"name": "OnlyLarge", "interactions": 100, "wall_s": 1.0}]
    assert scale.growth(rows, 10, 100) == {"Trainer": 1.25, "pipeline": 2.5}


def test_config_bounds_scoring_and_runs_the_pool_in_its_own_worker_count(tmp_path):
    config = scale.pipeline_config(tmp_path, workers=2, pool_workers=1, train_steps=7,
                                   batch_size=64, eval_interactions=300)
    from twotower import config as config_lib  # pylint: disable=import-outside-toplevel
    parsed = config_lib.from_dict(config)
    assert parsed.training.train_steps == 7 and parsed.validation.max_eval_interactions == 300
    assert "--direct_running_mode=multi_processing" in parsed.orchestration.beam_pipeline_args
    assert parsed.orchestration.component_beam_pipeline_args == {
        "NegativePoolBuilder": ("--direct_running_mode=in_memory", "--direct_num_workers=1")}
    assert parsed.data.interactions == str(tmp_path / "data" / "interactions.csv")
