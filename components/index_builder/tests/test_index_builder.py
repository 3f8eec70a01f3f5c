"""IndexBuilder end to end: a trained small model -> ScaNN and stock SavedModels, loaded in
fresh processes."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from benchmarks import example_files
from twotower import keys
from components.index_builder import executor
from twotower import warmup
from components.index_builder.component import IndexBuilder
from components.trainer.tests import small_world
from twotower.errors import ConfigError

pytestmark = pytest.mark.e2e

# A tree over the 120 items (not brute force), as a large catalogue would get: 11 leaves,
# 5 searched by default. With the popularity prior's extra column a query's top 10 spans
# more leaves (recall about 0.85 at 5), so the builder's tuning has to widen the search.
PROPERTIES = {keys.INDEX_K_KEY: 10, keys.MAX_K_KEY: 50, keys.BRUTE_FORCE_BELOW_KEY: 50,
              keys.NUM_LEAVES_KEY: None, keys.NUM_LEAVES_TO_SEARCH_KEY: None,
              keys.ANISOTROPIC_THRESHOLD_KEY: 0.2,
              keys.REORDER_KEY: None, keys.SERVING_MODEL_NAME_KEY: "twotower",
              keys.REPORT_QUERIES_KEY: 300, keys.TARGET_RECALL_KEY: 0.95}

LOAD_AND_QUERY = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if sys.argv[2] == "scann":
        import scann  # registers the ScaNN ops
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    queries = json.loads(sys.argv[3])
    inputs = {k: tf.constant(v, tf.int64 if k == "age" else tf.string) for k, v in queries.items()}
    out = model.signatures["serving_default"](**inputs)
    emb = model.signatures["query_embedding"](**inputs)["embedding"]
    print(json.dumps({"ids": out["item_ids"].numpy().astype(str).tolist(),
                      "embedding": emb.numpy().tolist(),
                      "scann_loaded": "scann" in sys.modules}))
""")


def _eval_queries(root, rows):
    """The query features of the first `rows` eval interactions, as the executor reads them."""
    return executor.eval_queries(example_files.examples_artifact(root / "inter", ["eval"]), rows,
                                 small_world.CONTRACT, small_world.CONTRACT.query_names)


@pytest.fixture(name="built", scope="module")
def fixture_built(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    pool_uri = small_world.write_data(root)
    trained = standard_artifacts.Model()
    trained.uri = str(root / "trained")
    small_world.train(root, pool_uri, path_utils.serving_model_dir(trained.uri))
    outputs = {}
    for key in (keys.SCANN_MODEL_KEY, keys.STOCK_MODEL_KEY):
        outputs[key] = standard_artifacts.Model()
        outputs[key].uri = str(root / key)
        os.makedirs(outputs[key].uri)
    examples = example_files.examples_artifact(root / "inter", ["train", "eval"])
    executor.Executor().Do({keys.MODEL_KEY: [trained], keys.EXAMPLES_KEY: [examples]},
                           {key: [artifact] for key, artifact in outputs.items()}, PROPERTIES)
    return root, trained, outputs


def _query(saved_model, variant, queries):
    result = subprocess.run([sys.executable, "-c", LOAD_AND_QUERY, saved_model, variant,
                             json.dumps(queries)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_scann_model_in_a_fresh_process_matches_exact_search(built):
    root, trained, outputs = built
    from components.trainer import export  # pylint: disable=import-outside-toplevel
    ids, embeddings = export.read_embeddings(os.path.join(
        path_utils.serving_model_path(trained.uri), export.EMBEDDINGS_FILE))
    queries = _eval_queries(root, 200)
    plain = {k: v.astype(str).tolist() if v.dtype == object else v.tolist()
             for k, v in queries.items()}
    served = _query(path_utils.serving_model_path(outputs[keys.SCANN_MODEL_KEY].uri), "scann",
                    plain)
    exact = np.argsort(-(np.array(served["embedding"]) @ embeddings.T), axis=1)[:, :10]
    exact_ids = [[ids[i] for i in row] for row in exact]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(served["ids"], exact_ids)])
    assert recall >= 0.95, recall
    report = json.loads(open(os.path.join(outputs[keys.SCANN_MODEL_KEY].uri,
                                          keys.INDEX_REPORT_FILE)).read())
    assert report["settings"]["num_leaves"] == 11 and report["scann_recall"] >= 0.95
    assert report["tuning"][0]["leaves_to_search"] == 5
    assert report["tuning"][-1]["recall"] >= 0.95
    assert [step["leaves_to_search"] for step in report["tuning"]] == [
        min(11, 5 * 2 ** i) for i in range(len(report["tuning"]))]
    assert report["queries"] == 300 and report["scann_latency"]["p50_ms"] > 0


def test_stock_model_loads_without_scann_and_is_exact(built):
    root, _, outputs = built
    queries = _eval_queries(root, 20)
    plain = {k: v.astype(str).tolist() if v.dtype == object else v.tolist()
             for k, v in queries.items()}
    stock = _query(path_utils.serving_model_path(outputs[keys.STOCK_MODEL_KEY].uri), "stock",
                   plain)
    assert not stock["scann_loaded"]
    assert len(stock["ids"]) == 20 and all(len(row) == 10 for row in stock["ids"])


def test_published_layout_and_warmup(built):
    _, _, outputs = built
    for key in (keys.SCANN_MODEL_KEY, keys.STOCK_MODEL_KEY):
        serving = path_utils.serving_model_path(outputs[key].uri)
        assert os.path.exists(os.path.join(serving, "saved_model.pb"))
        assert not os.path.exists(os.path.join(outputs[key].uri, ".staging"))
        requests = warmup.read(serving)
        assert len(requests) == executor.WARMUP_BATCHES
        assert requests[0].model_spec.signature_name == "serving_default"
        assert set(requests[0].inputs) == {"user_id", "age", "gender", "occupation", "zip"}


def test_component_rejects_bad_parameters():
    from tfx import types  # pylint: disable=import-outside-toplevel
    model = types.Channel(type=standard_artifacts.Model)
    examples = types.Channel(type=standard_artifacts.Examples)
    with pytest.raises(ConfigError, match="index.k"):
        IndexBuilder(model=model, examples=examples, serving_model_name="m", k=0)
    with pytest.raises(ValueError, match="report_queries"):
        IndexBuilder(model=model, examples=examples, serving_model_name="m", report_queries=0)


def test_scann_top_k_signature_takes_k_up_to_max_k(built):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    root, _, outputs = built
    model = tf.saved_model.load(path_utils.serving_model_path(outputs[keys.SCANN_MODEL_KEY].uri))
    queries = _eval_queries(root, 4)
    inputs = {name: tf.constant(value) for name, value in queries.items()}
    top_k = model.signatures["serving_top_k"]
    assert top_k(**inputs, k=tf.constant(25))["item_ids"].shape == (4, 25)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"k must be between 1 and 50 \(index.max_k\)"):
        top_k(**inputs, k=tf.constant(51))


def test_model_server_loads_and_describes_the_scann_model(built, tmp_path):
    from twotower import versions  # pylint: disable=import-outside-toplevel
    from serving import model_manager  # pylint: disable=import-outside-toplevel
    from serving.grpc_service import signature_def  # pylint: disable=import-outside-toplevel
    root, _, outputs = built
    base = str(tmp_path / "twotower")
    versions.publish(path_utils.serving_model_path(outputs[keys.SCANN_MODEL_KEY].uri), base, 1)
    manager = model_manager.ModelManager({"twotower": base})
    manager.poll()  # loads version 1 and replays its warm-up requests
    assert [s.state for s in manager.status("twotower")] == [model_manager.AVAILABLE]
    loaded = manager.get("twotower")
    assert set(loaded.signatures) == {"serving_default", "serving_top_k", "query_embedding"}
    # ScaNN's outputs have an unknown rank; the metadata says so instead of failing.
    definition = signature_def(loaded.signatures["serving_default"])
    assert set(definition.outputs) == {"item_ids", "scores"}
    queries = _eval_queries(root, 3)
    call = manager.prepare_arrays("twotower", None, "serving_default", queries, max_batch=8)
    result = call.runner(call.inputs)  # what a REST or gRPC request runs
    assert tf.io.parse_tensor(result["item_ids"], tf.string).shape == (3, 10)
