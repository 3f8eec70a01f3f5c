"""TF Serving's gRPC API over the ModelManager: PredictionService.Predict and
GetModelMetadata, ModelService.GetModelStatus. Classify, Regress, MultiInference and
HandleReloadConfigRequest answer UNIMPLEMENTED.

Each method is a coroutine raising RequestError (`predict`, `metadata`, `status`), served
by one of two front ends on one event-loop thread (`--grpc_frontend`): grpc.aio
(`add_to_server`; the generated base classes answer the other methods) or serving/http2.py
(`Dispatcher`). Either way the loop thread receives every request, validates it and awaits
its TF call (on the batcher's threads, or on a thread pool when batching is off). The
thread-per-request server this replaced spent more time passing the GIL among its threads
than in the model (reports/serving.json's notes).
"""
from __future__ import annotations

import concurrent.futures
from typing import Any, Awaitable, Callable, NamedTuple

import grpc
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving import http2
from serving import metrics as metrics_lib
from serving import wire
from serving.model_manager import ModelManager
from serving.signatures import RequestError, Signature

STATE = get_model_status_pb2.ModelVersionStatus.State


def _version(spec: Any) -> int | None:
    return spec.version.value if spec.HasField("version") else None


def signature_def(signature: Signature, method: str = "tensorflow/serving/predict"
                  ) -> meta_graph_pb2.SignatureDef:
    """A SignatureDef describing one loaded signature (for GetModelMetadata)."""
    definition = meta_graph_pb2.SignatureDef(method_name=method)
    for target, infos in ((definition.inputs, signature.inputs),
                          (definition.outputs, signature.outputs)):
        for name, info in infos.items():
            entry = target[name]
            entry.name = name
            entry.dtype = info.dtype.as_datatype_enum
            if info.shape is None:
                entry.tensor_shape.unknown_rank = True
                continue
            for size in info.shape:
                entry.tensor_shape.dim.add(size=-1 if size is None else size)
    return definition


class _Guard:
    """Maps RequestError to its status and counts the request in the metrics."""

    def __init__(self, registry: metrics_lib.Registry) -> None:
        self.registry = registry

    async def run(self, context: grpc.aio.ServicerContext, method: str, model: str,
                  body: Callable[[], Awaitable[Any]]) -> Any:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                "deadline exceeded before start")
        with self.registry.timer("grpc", method, model) as outcome:
            try:
                return await body()
            except RequestError as e:
                outcome.error(e.code.name)
                await context.abort(e.code, str(e))


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata."""

    def __init__(self, manager: ModelManager, max_batch: int,
                 registry: metrics_lib.Registry, executor: concurrent.futures.Executor) -> None:
        """Args:
          manager: The served models.
          max_batch: The largest request batch accepted (--max_batch_size).
          registry: Request metrics.
          executor: Where unbatched TF calls run (--grpc_threads threads).
        """
        self.manager = manager
        self.max_batch = max_batch
        self.guard = _Guard(registry)
        self.executor = executor

    async def predict(self, request: predict_pb2.PredictRequest) -> bytes:
        """The serialized PredictResponse (serving/wire.py says why bytes).

        Raises:
          RequestError: naming what is wrong with the request.
        """
        spec = request.model_spec
        call = self.manager.prepare(spec.name, _version(spec), spec.signature_name,
                                    request.inputs, self.max_batch)
        if request.output_filter:
            known = call.loaded.signatures[call.signature_name].outputs
            unknown = sorted(set(request.output_filter) - set(known))
            if unknown:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"output_filter names unknown outputs {unknown}; "
                                   f"outputs are {sorted(known)}")
        outputs = await self.manager.run_async(call, self.executor)
        if request.output_filter:
            outputs = {name: outputs[name] for name in request.output_filter}
        return wire.predict_response(outputs, wire.model_spec(
            spec.name, call.loaded.version, call.signature_name))

    async def Predict(self, request: predict_pb2.PredictRequest,
                      context: grpc.aio.ServicerContext) -> bytes:
        """`predict` on grpc.aio (registered with an identity serializer by
        `add_to_server`)."""
        return await self.guard.run(context, "Predict", request.model_spec.name,
                                    lambda: self.predict(request))

    async def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest
                       ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """The model's signature defs.

        Raises:
          RequestError: an unsupported metadata field, an unknown model or version.
        """
        fields = set(request.metadata_field)
        if fields - {"signature_def"}:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Metadata field {sorted(fields)[0]} is not supported; "
                               "use signature_def")
        loaded = self.manager.get(request.model_spec.name, _version(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = loaded.version
        definitions = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in loaded.signatures.items():
            definitions.signature_def[name].CopyFrom(signature_def(signature))
        response.metadata["signature_def"].Pack(definitions)
        return response

    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                               context: grpc.aio.ServicerContext
                               ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await self.guard.run(context, "GetModelMetadata", request.model_spec.name,
                                    lambda: self.metadata(request))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus."""

    def __init__(self, manager: ModelManager, registry: metrics_lib.Registry) -> None:
        self.manager = manager
        self.guard = _Guard(registry)

    async def status(self, request: get_model_status_pb2.GetModelStatusRequest
                     ) -> get_model_status_pb2.GetModelStatusResponse:
        """Every version's state (or one version's).

        Raises:
          RequestError: an unknown model or version.
        """
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.manager.status(request.model_spec.name,
                                          _version(request.model_spec)):
            entry = response.model_version_status.add(version=status.version,
                                                      state=STATE.Value(status.state))
            if status.error:
                entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                entry.status.error_message = status.error
        return response

    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext
                             ) -> get_model_status_pb2.GetModelStatusResponse:
        return await self.guard.run(context, "GetModelStatus", request.model_spec.name,
                                    lambda: self.status(request))


def add_to_server(prediction: PredictionService, model: ModelService, server: grpc.aio.Server
                  ) -> None:
    """Registers both services under TF Serving's names; Predict's response goes onto the
    wire as the bytes it returns, the other RPCs as the generated code registers them."""
    predict = grpc.unary_unary_rpc_method_handler(
        prediction.Predict, request_deserializer=predict_pb2.PredictRequest.FromString,
        response_serializer=bytes)
    # Handlers are looked up in the order added: this Predict shadows the generated one.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "tensorflow.serving.PredictionService", {"Predict": predict}),))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)


class _Route(NamedTuple):
    method: str
    parse: Callable[[bytes], Any]
    run: Callable[[Any], Awaitable[Any]]
    serialize: Callable[[Any], bytes]


def _serialized(message: Any) -> bytes:
    return message.SerializeToString()


class Dispatcher:
    """TF Serving's gRPC methods for the asyncio front end (serving/http2.py): parses the
    request message, runs the method and counts it in the metrics, as the grpc.aio handlers
    above do."""

    def __init__(self, prediction: PredictionService, model: ModelService,
                 registry: metrics_lib.Registry) -> None:
        predict = "/tensorflow.serving.PredictionService/"
        self.routes = {
            predict + "Predict": _Route("Predict", predict_pb2.PredictRequest.FromString,
                                        prediction.predict, bytes),
            predict + "GetModelMetadata": _Route(
                "GetModelMetadata", get_model_metadata_pb2.GetModelMetadataRequest.FromString,
                prediction.metadata, _serialized),
            "/tensorflow.serving.ModelService/GetModelStatus": _Route(
                "GetModelStatus", get_model_status_pb2.GetModelStatusRequest.FromString,
                model.status, _serialized)}
        self.registry = registry

    async def __call__(self, path: str, message: bytes) -> http2.Reply:
        route = self.routes.get(path)
        if route is None:
            return http2.Reply(grpc.StatusCode.UNIMPLEMENTED, details=(
                f"method {path} is not implemented; this server implements "
                f"{sorted(self.routes)}"))
        try:
            request = route.parse(message)
        except DecodeError as e:
            return http2.Reply(grpc.StatusCode.INTERNAL, details=(
                f"the request is not a valid {route.method} request message: {e}"))
        with self.registry.timer("grpc", route.method, request.model_spec.name) as outcome:
            try:
                return http2.Reply(grpc.StatusCode.OK, route.serialize(await route.run(request)))
            except RequestError as e:
                outcome.error(e.code.name)
                return http2.Reply(e.code, details=str(e))
