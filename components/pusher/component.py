"""ServingPusher: TFX's Pusher (same spec, blessing check and ModelPushing output) with an
atomic, idempotent filesystem push.

Usage (see pipeline/pipeline.py):

    ServingPusher(model=index_builder.outputs["scann_model"],
                  model_blessing=validator.outputs["blessing"],
                  push_destination=pusher_pb2.PushDestination(
                      filesystem=pusher_pb2.PushDestination.Filesystem(
                          base_directory="serving_models/twotower")))

Output `pushed_model` (ModelPushing) with custom properties `pushed` (1 or 0),
`pushed_destination` and `pushed_version`.
"""
from tfx.components.pusher import component as tfx_pusher_component
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


class ServingPusher(tfx_pusher_component.Pusher):
    """Pushes a blessed model to <base_directory>/<version> by rename (see executor.py)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
