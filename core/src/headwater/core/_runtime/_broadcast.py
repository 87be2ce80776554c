"""The broadcast process operator: a main input, and a broadcast input that maintains shared state."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from headwater.core._functions import BroadcastProcessFunction
from headwater.core._runtime._channels import RecordBatch
from headwater.core._runtime._context import OperatorContext
from headwater.core._runtime._operators import Operator

__all__ = ["BroadcastProcessOperator"]

BROADCAST_INPUT = 1


class _Context:
    __slots__ = ("_states",)

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self._states = states

    def broadcast_state(self, name: str) -> dict[str, Any]:
        return self._states.setdefault(name, {})


class _ReadOnlyContext:
    __slots__ = ("_states",)

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self._states = states

    def broadcast_state(self, name: str) -> Mapping[str, Any]:
        return MappingProxyType(self._states.setdefault(name, {}))


class BroadcastProcessOperator(Operator):
    """Input 0 is the main stream, input 1 the broadcast stream."""

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        self.function: BroadcastProcessFunction[Any, Any, Any] = copy.deepcopy(
            self.transformation.payload
        )
        self.states: dict[str, dict[str, Any]] = {
            name: dict(entries) for name, entries in context.restored.get("broadcast", {}).items()
        }
        self.ctx = _Context(self.states)
        self.read_only = _ReadOnlyContext(self.states)
        self.function.open(context)

    async def process(self, batch: RecordBatch) -> None:
        await self.process_input(0, batch)

    async def process_input(self, input_index: int, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        out: list[Any] = []
        stamps: list[int | None] = []
        timestamps = batch.timestamps or [None] * len(values)
        if input_index == BROADCAST_INPUT:
            handle, ctx = self.function.process_broadcast_element, self.ctx
        else:
            handle, ctx = self.function.process_element, self.read_only  # type: ignore[assignment]
        for value, ts in zip(values, timestamps, strict=True):
            try:
                produced = list(handle(value, ctx))
            except Exception as exc:
                raise self._fail(exc, [value], 0) from exc
            out.extend(produced)
            stamps.extend([ts] * len(produced))
        await self._emit(out, stamps if batch.timestamps is not None else None)

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        state = await super().snapshot(checkpoint_id)
        state["broadcast"] = self.states
        return state
