"""The Trainer's scored eval events, read back only for the same files, sample and width."""
import numpy as np

from components.trainer import eval_events, metrics
from components.trainer.tests import small_world


def test_events_are_read_back_only_for_what_they_were_scored_on(tmp_path):
    train, evals = small_world.write_records(tmp_path / "train.gz", 50), small_world.write_records(tmp_path / "eval.gz", 40)
    counts = np.arange(8, dtype=np.float64)
    ranks = {"tfrs": np.array([0, 3, 9]), "filtered": np.array([0, 2, metrics.MISS_RANK])}
    top = np.array([[7, 6, 5, 4], [6, 5, 4, 3], [0, 1, 2, 3]])
    users = np.array([b"u1", b"u2", b"u1"], dtype=object)
    scored = metrics.Evaluation(metrics.summarize(ranks, top, users, counts, (1, 4)), ranks,
                                users, top)
    eval_events.save(scored, eval_events.key(train, evals, None, 4), str(tmp_path))
    again = eval_events.load(str(tmp_path), eval_events.key(train, evals, 1_000, 0), counts,
                             (1, 4))  # a sample above the split's size keeps every record
    assert again is not None and again.metrics == scored.metrics
    assert again.users.tolist() == users.tolist()
    np.testing.assert_array_equal(again.top, top)
    assert eval_events.load(str(tmp_path), eval_events.key(train, evals, 20, 0), counts,
                            (1, 4)) is None  # another sample
    assert eval_events.load(str(tmp_path), eval_events.key(evals, evals, None, 0), counts,
                            (1, 4)) is None  # another history filter
    assert eval_events.load(str(tmp_path), eval_events.key(train, evals, None, 0),
                            np.arange(20, dtype=np.float64), (10,)) is None  # top-10 needed
    assert eval_events.load(str(tmp_path / "none"), eval_events.key(train, evals, None, 0),
                            counts, (1,)) is None
