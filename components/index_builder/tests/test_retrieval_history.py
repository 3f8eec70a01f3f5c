"""The served model with a history feature: the history's items merged with the search's
(rank), or never returned (exclude), in both variants and after a save and load."""
import numpy as np
import pytest
import tensorflow as tf

from components.index_builder import repeat, retrieval_model, scann_settings
from twotower.keys import HISTORY_UNKNOWN_OUTPUT

IDS = [f"item{i}" for i in range(40)]
EMBEDDINGS = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)
QUERY = np.array([1.0, 0.5, -0.25, 0.0], np.float32)


class _Tower(tf.Module):
    """A query tower ignoring its inputs: every query is QUERY."""

    @tf.function(input_signature=[{"user": tf.TensorSpec([None], tf.string, name="user"),
                                   "recent": tf.TensorSpec([None, None], tf.string,
                                                           name="recent")}])
    def serve(self, inputs):
        rows = tf.shape(inputs["user"])[0]
        return {"embedding": tf.tile(QUERY[tf.newaxis, :], [rows, 1])}


@pytest.fixture(name="tower_dir", scope="module")
def fixture_tower_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tower"))
    tower = _Tower()
    tf.saved_model.save(tower, path, signatures={"serving_default": tower.serve})
    return path


def _model(tower_dir, policy, weight, scann=False):
    search = (retrieval_model.ScannSearch(EMBEDDINGS, scann_settings.derive(
        40, scann_settings.IndexConfig(k=5, max_k=20, brute_force_below=1)))
        if scann else retrieval_model.ExactSearch(EMBEDDINGS))
    return retrieval_model.RetrievalModel(tower_dir, IDS, search, 5, 20, EMBEDDINGS,
                                          retrieval_model.Repeat("recent", 6, policy, weight))


def _request(history):
    return {"user": tf.constant(["u"]), "recent": tf.constant([history])}


def _model_order():
    return [IDS[i] for i in np.argsort(-(EMBEDDINGS @ QUERY))]


def test_rank_puts_a_much_bought_item_first_with_its_model_score_plus_the_term(tower_dir):
    worst = _model_order()[-1]
    history = [worst, worst, worst, "not-an-item", ""]
    out = _model(tower_dir, repeat.RANK, 10.0).retrieve(_request(history))
    ids = out["item_ids"].numpy()[0].astype(str).tolist()
    assert ids[0] == worst and ids[1:] == _model_order()[:4]
    expected = float(EMBEDDINGS[IDS.index(worst)] @ QUERY) + 10.0 * np.log(4.0)
    assert out["scores"].numpy()[0, 0] == pytest.approx(expected, rel=1e-5)


def test_rank_without_weight_and_exclude_and_top_k(tower_dir):
    top = _model_order()
    plain = _model(tower_dir, repeat.RANK, 0.0).retrieve(_request([top[0], ""]))
    assert plain["item_ids"].numpy()[0].astype(str).tolist() == top[:5]
    model = _model(tower_dir, repeat.EXCLUDE, 0.0)
    out = model.retrieve(_request([top[0], top[2], top[0]]))
    assert out["item_ids"].numpy()[0].astype(str).tolist() == [top[1]] + top[3:7]
    # Only the last 6 of a longer history count (the contract's length).
    many = model.retrieve_top_k(_request(top[:10]), tf.constant(20))
    assert many["item_ids"].numpy()[0].astype(str).tolist() == top[:4] + top[10:26]


def test_scann_variant_merges_the_same_way_after_a_save_and_load(tower_dir, tmp_path):
    worst = _model_order()[-1]
    _model(tower_dir, repeat.RANK, 10.0, scann=True).save(str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    out = loaded.signatures["serving_default"](user=tf.constant(["u", "v"]), recent=tf.constant(
        [[worst, worst], ["", ""]]))
    ids = out["item_ids"].numpy().astype(str)
    assert ids[0, 0] == worst and worst not in ids[1].tolist()
    assert ids[1].tolist() == _model_order()[:5]


def test_the_builder_takes_the_history_feature_from_the_contract_and_settings_from_config():
    from components.index_builder import executor  # pylint: disable=import-outside-toplevel
    from twotower.config import IndexConfig  # pylint: disable=import-outside-toplevel
    from twotower.contract import HISTORY, ID, ITEM_ID, QUERY, USER_ID, Contract, FeatureSpec  # pylint: disable=import-outside-toplevel
    plain = Contract((FeatureSpec("user", USER_ID, ID), FeatureSpec("item", ITEM_ID, ID)))
    config = IndexConfig(history_policy="exclude", repeat_weight=0.0)
    assert executor.history_settings(plain, config) is None
    with_history = Contract(plain.features + (FeatureSpec("recent", QUERY, HISTORY, length=50),))
    assert executor.history_settings(with_history, IndexConfig(
        repeat_weight=1.5, repeat_half_life=20.0)) == retrieval_model.Repeat(
            "recent", 50, repeat.RANK, 1.5, 20.0)


@pytest.mark.parametrize("scann", [False, True])
def test_history_ids_the_model_does_not_know_are_reported_per_row(tower_dir, tmp_path, scann):
    top = _model_order()
    _model(tower_dir, repeat.RANK, 1.0, scann=scann).save(str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    requests = {"user": tf.constant(["u", "v", "w"]), "recent": tf.constant(
        [[top[3], "gone", "", "gone"], ["", "", "", ""], [top[0], top[1], "new", top[2]]])}
    out = loaded.signatures["serving_default"](**requests)
    assert out[HISTORY_UNKNOWN_OUTPUT].numpy().tolist() == [2, 0, 1]
    top_k = loaded.signatures["serving_top_k"](**requests, k=tf.constant(3))
    assert top_k[HISTORY_UNKNOWN_OUTPUT].numpy().tolist() == [2, 0, 1]
    # Unknown ids are ignored: the first row ranks as with its one known item alone.
    alone = loaded.signatures["serving_default"](user=tf.constant(["u"]),
                                                 recent=tf.constant([[top[3]]]))
    assert out["item_ids"].numpy()[0].tolist() == alone["item_ids"].numpy()[0].tolist()


def test_a_model_without_a_history_has_no_history_output(tower_dir):
    model = retrieval_model.RetrievalModel(tower_dir, IDS, retrieval_model.ExactSearch(
        EMBEDDINGS), 5, 20)
    assert set(model.retrieve(_request([""]))) == {"item_ids", "scores"}
