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
from headwater.core._state_codec import StateValueError, encode_state

__all__ = ["BroadcastProcessOperator"]

BROADCAST_INPUT = 1


class CheckedBroadcastState(dict[Any, Any]):
    """Broadcast state that refuses what the state codec cannot write, when it is written.

    ``state[key] = value``, ``update`` and ``setdefault`` fail at once (not at the next
    checkpoint), naming the operator, the state and the type. Objects changed in place after they
    were stored are checked at the next checkpoint.
    """

    __slots__ = ("_name", "_operator")

    def __init__(self, entries: Mapping[Any, Any], operator: str, name: str) -> None:
        super().__init__(entries)
        self._operator = operator
        self._name = name

    def _check(self, key: Any, value: Any) -> None:
        try:
            encode_state([key, value])
        except StateValueError as exc:
            raise StateValueError(
                f"operator '{self._operator}': broadcast state '{self._name}' cannot hold the "
                f"value: {exc}"
            ) from exc

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check(key, value)
        super().__setitem__(key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """``state[key]``, set to ``default`` first if absent."""
        if key not in self:
            self._check(key, default)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set every given entry (each checked first)."""
        items = dict(*args, **kwargs)
        for key, value in items.items():
            self._check(key, value)
        super().update(items)


class _Context:
    __slots__ = ("_operator", "_states")

    def __init__(self, states: dict[str, dict[str, Any]], operator: str) -> None:
        self._states = states
        self._operator = operator

    def broadcast_state(self, name: str) -> dict[str, Any]:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = CheckedBroadcastState({}, self._operator, name)
        return state


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
            name: CheckedBroadcastState(entries, self.name, name)
            for name, entries in context.restored.get("broadcast", {}).items()
        }
        self.ctx = _Context(self.states, self.name)
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
        state["broadcast"] = {name: dict(entries) for name, entries in self.states.items()}
        return state
