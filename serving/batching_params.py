"""TF Serving's batching parameters file (`--batching_parameters_file`), read as the
`tensorflow.serving.BatchingParameters` text proto it is.

tensorflow-serving-api does not ship session_bundle_config.proto, so the message is declared
here with TF Serving's field numbers and wrapper types; a file written for
`tensorflow_model_server --enable_batching --batching_parameters_file=...` parses unchanged:

    max_batch_size { value: 32 }
    batch_timeout_micros { value: 1000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 2 }
    pad_variable_length_inputs: true
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

from twotower.errors import TwoTowerError

_INT64 = ".google.protobuf.Int64Value"
_FIELDS = (("max_batch_size", 1, _INT64), ("batch_timeout_micros", 2, _INT64),
           ("max_enqueued_batches", 3, _INT64), ("num_batch_threads", 4, _INT64),
           ("thread_pool_name", 5, ".google.protobuf.StringValue"))


def _message_class() -> Any:
    """The BatchingParameters message class, built from a descriptor in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="twotower/batching_parameters.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    for name, number, type_name in _FIELDS:
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                          type_name=type_name, label=field.LABEL_OPTIONAL)
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64,
                      label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParametersProto = _message_class()


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """Server-side batching settings; the defaults are TF Serving's when
    `--enable_batching` is given without a parameters file (SharedBatchScheduler's
    max_batch_size 1000, timeout 0, 10 enqueued batches; one batch thread per core).

    Attributes:
      max_batch_size: Rows in one merged TF call; a request with more rows runs alone.
      batch_timeout_micros: How long the oldest waiting request may wait for others to
        fill its batch; 0 = run as soon as a batch thread is free (requests that arrive
        while all threads are busy are merged).
      max_enqueued_batches: Batches that may wait per model/signature; past that a request
        is answered UNAVAILABLE at once.
      num_batch_threads: Merged calls run concurrently.
      allowed_batch_sizes: Accepted and checked as TF Serving does (increasing, the last
        equal to max_batch_size), but not used: a merged call runs on exactly the rows it
        holds, with one traced function for every size (serving/proto_call.py).
      pad_variable_length_inputs: Merge requests whose inputs differ in non-batch
        dimensions (e.g. history lengths) by padding them with "" or 0; when false such
        requests are never merged with each other.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise TwoTowerError(f"batching parameter {name} must be >= 1, got "
                                    f"{getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise TwoTowerError("batching parameter batch_timeout_micros must be >= 0, got "
                                f"{self.batch_timeout_micros}")
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size):
            raise TwoTowerError(f"allowed_batch_sizes {sizes} must be increasing and end with "
                                f"max_batch_size ({self.max_batch_size})")


def parse(text: str, source: str = "batching parameters") -> BatchingParameters:
    """BatchingParameters from the text proto; omitted fields keep TF Serving's defaults.

    Raises:
      TwoTowerError: naming `source` and the proto parser's line and column, or the
        invalid value.
    """
    try:
        proto = text_format.Parse(text, BatchingParametersProto())
    except text_format.ParseError as e:
        raise TwoTowerError(f"{source}: {e} (expected TF Serving's BatchingParameters text "
                            "format, e.g. 'max_batch_size { value: 32 }')") from e
    values: dict[str, Any] = {name: getattr(proto, name).value
                              for name, _, type_name in _FIELDS
                              if type_name == _INT64 and proto.HasField(name)}
    try:
        return BatchingParameters(**values,
                                  allowed_batch_sizes=tuple(proto.allowed_batch_sizes),
                                  pad_variable_length_inputs=proto.pad_variable_length_inputs)
    except TwoTowerError as e:
        raise TwoTowerError(f"{source}: {e}") from e


def from_flags(enable_batching: bool, parameters_file: Optional[str]
               ) -> Optional[BatchingParameters]:
    """The batching settings of `--enable_batching` / `--batching_parameters_file`, or None.

    Raises:
      TwoTowerError: a parameters file without --enable_batching, or an unreadable file.
    """
    if parameters_file and not enable_batching:
        raise TwoTowerError("--batching_parameters_file needs --enable_batching")
    if not enable_batching:
        return None
    if not parameters_file:
        return BatchingParameters()
    try:
        with open(parameters_file) as f:
            return parse(f.read(), f"--batching_parameters_file {parameters_file}")
    except OSError as e:
        raise TwoTowerError(f"--batching_parameters_file {parameters_file}: {e}") from e
