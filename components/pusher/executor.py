"""TFX's Pusher executor with an atomic, idempotent filesystem push (versions.py)."""
from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from twotower import versions


class Executor(tfx_pusher.Executor):
    """Pushes a blessed model as a new version, unless the latest version already holds it.

    TFX's Pusher writes straight into <base>/<version> (saved_model.pb last); this one
    publishes by rename, so a polling server never sees a partial version, and does not push
    the same model twice when a re-run re-blesses it.
    """

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                                  destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("only filesystem push destinations are supported")
        base = destination.filesystem.base_directory
        version = versions.already_published(model_path, base)
        if version is not None:
            logging.info("%s/%d already holds this model; not pushing it again", base, version)
            serving_path = f"{base.rstrip('/')}/{version}"
        else:
            version = versions.next_version(base)
            serving_path = versions.publish(model_path, base, version)
            logging.info("Model published to %s", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
