"""Server-side batching: concurrent requests to one servable merged into one TF call.

A request is validated on its own first (so a malformed one fails alone), then queued
under its merge key: model, version, signature, the values of its unbatched inputs (e.g.
`k`) and, unless variable-length inputs are padded, its non-batch dimensions. Merged calls
(proto_call.BatchedProtoRunner) take the queue whose oldest request has waited longest,
once that queue holds `max_batch_size` rows or its oldest request has waited
`batch_timeout_micros`, and run up to `max_batch_size` rows, each caller receiving exactly
its own rows; a request with more rows than that runs alone. With the default timeout 0
nothing waits on purpose: requests that arrive while a merged call runs are merged into the
next. A queue holding `max_enqueued_batches` full batches answers UNAVAILABLE at once
instead of letting latency grow without bound. If a merged call fails, its requests are
rerun one by one so each gets its own answer or error. A caller cancelled while its request
waits (the client reset the stream or went away) takes the request out of the queue, so
abandoned calls cost no model time.

The queues live on the gRPC server's asyncio event loop: a request is queued and its
caller resumed without a thread switch, and merged calls run on `num_batch_threads`
threads while the loop goes on receiving requests. (Running merged calls on the loop
thread itself was measured too: with timeout 0 every call then held one request, since
the loop cannot receive while it runs the model.) REST requests are coroutines on the same
loop (serving/rest.py) and are queued here like gRPC ones.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from typing import Callable, Hashable, Mapping, Optional

import grpc
from tensorflow.core.framework import tensor_pb2

from serving import metrics as metrics_lib
from serving.batching_params import BatchingParameters
from serving.signatures import RequestError, Signature

Inputs = Mapping[str, tensor_pb2.TensorProto]
Outputs = dict[str, bytes]
RunBatch = Callable[[list[Inputs]], list[Outputs]]
RunOne = Callable[[Inputs], Outputs]


def merge_key(signature: Signature, inputs: Inputs, pad_variable_length: bool) -> Hashable:
    """What must be equal for two validated requests to share a TF call: the serialized
    value of every unbatched input and, without padding, every non-batch dimension."""
    parts = []
    for name, _, shape in signature.proto_checks:
        proto = inputs[name]
        if not shape:
            parts.append(proto.SerializeToString())
        elif not pad_variable_length:
            parts.append(tuple(dim.size for dim in proto.tensor_shape.dim[1:]))
    return tuple(parts)


def rows(signature: Signature, inputs: Inputs) -> int:
    """The request's batch size (dimension 0 of its batched inputs; 1 if none)."""
    for name, info in signature.inputs.items():
        if info.shape:
            return inputs[name].tensor_shape.dim[0].size
    return 1


@dataclasses.dataclass(eq=False)
class _Task:
    inputs: Inputs
    rows: int
    enqueued: float
    future: asyncio.Future


@dataclasses.dataclass
class _Queue:
    model: str
    run_batch: RunBatch
    run_one: RunOne
    tasks: collections.deque = dataclasses.field(default_factory=collections.deque)
    rows: int = 0


def _execute(queue: _Queue, batch: list[_Task]) -> list[tuple[Optional[Outputs],
                                                             Optional[BaseException]]]:
    """(result, error) per task: one merged call, or each alone if that call fails."""
    try:
        if len(batch) == 1:
            return [(queue.run_one(batch[0].inputs), None)]
        return [(result, None) for result in queue.run_batch([task.inputs for task in batch])]
    except Exception as e:  # pylint: disable=broad-except
        if len(batch) == 1:
            return [(None, e)]
    # Which request broke the merged call is unknown: rerun each alone, so only it fails
    # (a model error shared by all, e.g. k out of range, fails each).
    outcomes: list[tuple[Optional[Outputs], Optional[BaseException]]] = []
    for task in batch:
        try:
            outcomes.append((queue.run_one(task.inputs), None))
        except Exception as e:  # pylint: disable=broad-except
            outcomes.append((None, e))
    return outcomes


class Batcher:
    """Queues per merge key, drained on an asyncio event loop."""

    def __init__(self, params: BatchingParameters, registry: metrics_lib.Registry,
                 loop: asyncio.AbstractEventLoop) -> None:
        """Args:
          params: The batching parameters.
          registry: Where batch sizes, queueing times and refusals are counted.
          loop: The running loop the queues live on (the gRPC server's).
        """
        self.params = params
        self.registry = registry
        self.loop = loop
        self._queues: dict[Hashable, _Queue] = {}
        self._running = 0
        self._scheduled = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._pool = concurrent.futures.ThreadPoolExecutor(params.num_batch_threads,
                                                           thread_name_prefix="batch")

    async def run(self, key: Hashable, model: str, inputs: Inputs, request_rows: int,
                  run_batch: RunBatch, run_one: RunOne) -> Outputs:
        """Queues one validated request and awaits its outputs (call on `loop`).

        Args:
          key: The merge key (model, version, signature, `merge_key`).
          model: Model name, for the metrics.
          inputs: The request's inputs.
          request_rows: Its batch size.
          run_batch: Runs several requests in one call, outputs in order.
          run_one: Runs one request.

        Raises:
          RequestError: UNAVAILABLE when the key's queue is full; whatever the run raised
            for this request.
        """
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(model, run_batch, run_one)
        limit = self.params.max_enqueued_batches * self.params.max_batch_size
        if queue.rows and queue.rows + request_rows > limit:
            self.registry.count("batch_queue_full", model)
            raise RequestError(grpc.StatusCode.UNAVAILABLE,
                               f"the batching queue of model {model} is full "
                               f"({self.params.max_enqueued_batches} batches of "
                               f"{self.params.max_batch_size} rows, max_enqueued_batches); "
                               "retry later")
        task = _Task(inputs, request_rows, time.perf_counter(), self.loop.create_future())
        queue.tasks.append(task)
        queue.rows += request_rows
        self._schedule()
        try:
            return await task.future
        except asyncio.CancelledError:
            self._withdraw(key, task)
            raise

    def _withdraw(self, key: Hashable, task: _Task) -> None:
        """Takes a cancelled caller's request out of its queue, if no call has taken it."""
        queue = self._queues.get(key)
        if queue is None or task not in queue.tasks:
            return
        queue.tasks.remove(task)
        queue.rows -= task.rows
        if not queue.tasks:
            del self._queues[key]
        self.registry.count("batch_cancelled", queue.model)

    def _schedule(self) -> None:
        """Drains once the loop has queued every request ready now (call_soon runs after
        the callbacks already waiting)."""
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._drain)

    def _ready(self, now: float) -> tuple[Optional[Hashable], float]:
        """(the key to run now or None, seconds until the next queue times out)."""
        timeout = self.params.batch_timeout_micros / 1e6
        best, best_age, wait = None, -1.0, float("inf")
        for key, queue in self._queues.items():
            if not queue.tasks:
                continue
            age = now - queue.tasks[0].enqueued
            if queue.rows >= self.params.max_batch_size or age >= timeout:
                if age > best_age:
                    best, best_age = key, age
            else:
                wait = min(wait, timeout - age)
        return best, wait

    def _take(self, key: Hashable) -> tuple[_Queue, list[_Task]]:
        queue = self._queues[key]
        batch, batch_rows = [], 0
        while queue.tasks and (not batch or batch_rows + queue.tasks[0].rows
                               <= self.params.max_batch_size):
            task = queue.tasks.popleft()
            batch.append(task)
            batch_rows += task.rows
        queue.rows -= batch_rows
        if not queue.tasks:
            del self._queues[key]
        started = time.perf_counter()
        for task in batch:
            self.registry.observe("batch_queue_ms", queue.model, (started - task.enqueued) * 1000)
        self.registry.observe("batch_rows", queue.model, batch_rows)
        return queue, batch

    def _drain(self) -> None:
        """Starts merged calls while a slot is free and a queue is ready."""
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._running < self.params.num_batch_threads:
            key, wait = self._ready(time.perf_counter())
            if key is None:
                if wait != float("inf"):
                    self._timer = self.loop.call_later(wait, self._schedule)
                return
            queue, batch = self._take(key)
            self._running += 1
            done = self.loop.run_in_executor(self._pool, _execute, queue, batch)
            done.add_done_callback(lambda future, b=batch: self._finished(b, future))

    def _finished(self, batch: list[_Task], future: asyncio.Future) -> None:
        self._running -= 1
        self._finish(batch, future.result())
        self._schedule()

    @staticmethod
    def _finish(batch: list[_Task],
                outcomes: list[tuple[Optional[Outputs], Optional[BaseException]]]) -> None:
        for task, (result, error) in zip(batch, outcomes):
            if task.future.done():
                continue
            if error is not None:
                task.future.set_exception(error)
            else:
                task.future.set_result(result)

    def stop(self) -> None:
        """Answers queued requests UNAVAILABLE and stops the batch threads (call on `loop`,
        or after it has stopped)."""
        for queue in self._queues.values():
            for task in queue.tasks:
                if not task.future.done():
                    task.future.set_exception(RequestError(grpc.StatusCode.UNAVAILABLE,
                                                           "the server is stopping"))
        self._queues.clear()
        self._pool.shutdown()
