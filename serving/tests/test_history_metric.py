"""The history ids a served model did not know (its history_unknown_ids output) are added to
the server's twotower_history_unknown_ids_total counter, with and without batching."""
import asyncio
import concurrent.futures

import numpy as np
import pytest
import tensorflow as tf

from serving import metrics
from serving.batching_params import BatchingParameters
from serving.model_manager import ModelManager
from twotower.keys import HISTORY_UNKNOWN_OUTPUT

KNOWN = tf.constant(["a", "b", "c"])


class _Model(tf.Module):
    """[B, L] history -> per row, the non-empty ids outside KNOWN (as the retrieval model
    reports them) and the row's first id."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="recent")])
    def serve(self, recent):
        known = tf.reduce_any(recent[:, :, tf.newaxis] == KNOWN, axis=2)
        unknown = tf.reduce_sum(tf.cast(~known & (recent != ""), tf.int32), axis=1)
        return {HISTORY_UNKNOWN_OUTPUT: unknown, "first": recent[:, 0]}


@pytest.fixture(name="base_path", scope="module")
def fixture_base_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("model")
    module = _Model()
    tf.saved_model.save(module, str(base / "1"), signatures={"serving_default": module.serve})
    return str(base)


def _counted(registry: metrics.Registry) -> list[str]:
    return [line for line in registry.render(dict).splitlines()
            if line.startswith(f"twotower_{HISTORY_UNKNOWN_OUTPUT}_total")]


@pytest.mark.parametrize("batching", [None, BatchingParameters(max_batch_size=8,
                                                                batch_timeout_micros=2000)])
def test_unknown_history_ids_are_counted_per_model(base_path, batching):
    registry = metrics.Registry()
    histories = [[["a", "x", ""]], [["y", "z", "b"], ["c", "", ""]], [["a", "b", "c"]]]

    async def main():
        manager = ModelManager({"shop": base_path}, batching_params=batching,
                               registry=registry, loop=asyncio.get_running_loop())
        manager.poll()
        executor = concurrent.futures.ThreadPoolExecutor(2)
        calls = [manager.prepare("shop", None, "serving_default",
                                 {"recent": tf.make_tensor_proto(np.array(rows, dtype=object))},
                                 max_batch=8) for rows in histories]
        outputs = await asyncio.gather(*(manager.run_async(call, executor) for call in calls))
        executor.shutdown()
        return outputs

    outputs = asyncio.run(main())
    assert [tf.make_ndarray(tf.make_tensor_proto(tf.io.parse_tensor(
        out[HISTORY_UNKNOWN_OUTPUT], tf.int32))).tolist() for out in outputs] == [[1], [2, 0], [0]]
    assert _counted(registry) == [f'twotower_{HISTORY_UNKNOWN_OUTPUT}_total{{model="shop"}} 3']


def test_a_model_without_the_output_counts_nothing(tmp_path):
    module = tf.Module()
    module.serve = tf.function(lambda recent: {"first": recent[:, 0]},
                               input_signature=[tf.TensorSpec([None, None], tf.string,
                                                              name="recent")])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    registry = metrics.Registry()
    manager = ModelManager({"plain": str(tmp_path)}, registry=registry)
    manager.poll()
    call = manager.prepare("plain", None, "serving_default",
                           {"recent": tf.make_tensor_proto(np.array([["x"]], dtype=object))}, 8)

    async def main():
        return await manager.run_async(call, concurrent.futures.ThreadPoolExecutor(1))
    assert set(asyncio.run(main())) == {"first"}
    assert _counted(registry) == []
