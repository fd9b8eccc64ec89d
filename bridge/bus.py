"""The in-process bus: durable handlers, the Python twin of Payment Kit's ``EventBus``.

Each handler is its own subscriber (``handler:<name>``), recorded in the store, so it is called
**at least once** per matching event: the store creates its delivery row in the same
transaction as the event, a failing or timed-out handler is retried on the delivery schedule
without blocking other handlers, and what was not handled when a process died is handled after
a restart. Several processes sharing one store share the work: each event runs once per handler
*name* across the cluster. The name defaults to the handler's qualified name.

Built on pyee: the :class:`pyee.asyncio.AsyncIOEventEmitter` holds the listeners, one emitter
event per handler subscriber; the dispatcher awaits them itself (pyee's ``emit`` would not say
when or whether they finished).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pyee.asyncio import AsyncIOEventEmitter

from bridge.catalog import validate_pattern
from bridge.events import Event

__all__ = ["EventBus", "Handler", "HandlerSpec", "handler_subscriber_id"]

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None] | None]
H = TypeVar("H", bound=Handler)


def handler_subscriber_id(name: str) -> str:
    """The store id of the durable subscriber for handler ``name``."""
    return f"handler:{name}"


def _default_name(fn: Handler) -> str:
    module = getattr(fn, "__module__", None) or "handler"
    qual = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{qual}"


@dataclass(slots=True)
class HandlerSpec:
    """One registered handler: its durable name, its patterns, and whether it runs once."""

    name: str
    fn: Handler
    patterns: list[str] = field(default_factory=list)
    once: bool = False

    @property
    def subscriber_id(self) -> str:
        return handler_subscriber_id(self.name)


class EventBus:
    """Register handlers with :meth:`on`, :meth:`once`, :meth:`subscribe`; remove with
    :meth:`off`. Types are checked against the catalog: a typo raises
    :class:`bridge.errors.UnknownEventTypeError` at registration."""

    def __init__(self) -> None:
        self.emitter = AsyncIOEventEmitter()
        self.emitter.on("error", self._on_error)
        self._specs: dict[str, HandlerSpec] = {}
        # Called with the spec whenever a registration changes (the Bridge persists it).
        self.on_change: Callable[[HandlerSpec, bool], None] | None = None

    @staticmethod
    def _on_error(exc: BaseException) -> None:
        log.error("bus listener error: %r", exc)

    # -- registration ---------------------------------------------------------------------------
    @overload
    def on(
        self, event_type: str, handler: None = None, *, name: str | None = None
    ) -> Callable[[H], H]: ...
    @overload
    def on(self, event_type: str, handler: H, *, name: str | None = None) -> H: ...

    def on(
        self, event_type: str, handler: H | None = None, *, name: str | None = None
    ) -> H | Callable[[H], H]:
        """Call ``handler(event)`` at least once for every event ``event_type`` selects (a type,
        ``*`` or a family wildcard such as ``customer.subscription.*``). Use as
        ``bus.on(type, fn)`` or as the decorator ``@bus.on(type)``."""
        if handler is None:
            return lambda fn: self._register(event_type, fn, name=name, once=False)
        return self._register(event_type, handler, name=name, once=False)

    def once(self, event_type: str, handler: H, *, name: str | None = None) -> H:
        """Like :meth:`on`, but the handler is removed after it handled one event."""
        return self._register(event_type, handler, name=name, once=True)

    def subscribe(self, handler: H, *, name: str | None = None) -> H:
        """Call ``handler`` for every event (Payment Kit's ``EventBus.subscribe``)."""
        return self._register("*", handler, name=name, once=False)

    def off(self, event_type: str | None, handler: Handler | str) -> bool:
        """Stop calling ``handler`` (the function or its name) for ``event_type`` (``None``:
        for everything). Returns False when it was not registered."""
        name = handler if isinstance(handler, str) else self._name_of(handler)
        spec = self._specs.get(name) if name else None
        if spec is None:
            return False
        if event_type is not None and event_type in spec.patterns:
            spec.patterns.remove(event_type)
        elif event_type is not None:
            return False
        if event_type is None or not spec.patterns:
            self._specs.pop(spec.name)
            self.emitter.remove_all_listeners(spec.subscriber_id)
            self._changed(spec, removed=True)
        else:
            self._changed(spec, removed=False)
        return True

    def _name_of(self, fn: Handler) -> str | None:
        for spec in self._specs.values():
            if spec.fn is fn:
                return spec.name
        return None

    def _register(self, event_type: str, fn: H, *, name: str | None, once: bool) -> H:
        if not callable(fn):
            raise TypeError("handler must be callable")
        pattern = validate_pattern(event_type)  # raises UnknownEventTypeError
        hname = name or _default_name(fn)
        spec = self._specs.get(hname)
        if spec is not None and spec.fn is not fn:
            raise ValueError(
                f"handler name {hname!r} is already used by another function; pass name=..."
            )
        if spec is None:
            spec = HandlerSpec(hname, fn, [], once)
            self._specs[hname] = spec
            self.emitter.on(spec.subscriber_id, fn)
        if pattern not in spec.patterns:
            spec.patterns.append(pattern)
        self._changed(spec, removed=False)
        return fn

    def _changed(self, spec: HandlerSpec, *, removed: bool) -> None:
        if self.on_change is not None:
            self.on_change(spec, removed)

    # -- introspection -------------------------------------------------------------------------
    @property
    def handlers(self) -> list[HandlerSpec]:
        """The registered handlers."""
        return list(self._specs.values())

    @property
    def names(self) -> list[str]:
        """Names of the registered handlers (what this process can run)."""
        return list(self._specs)

    def spec(self, name: str) -> HandlerSpec | None:
        return self._specs.get(name)

    # -- running -------------------------------------------------------------------------------
    async def run_handler(self, name: str, event: Event, *, timeout_s: float) -> None:
        """Run handler ``name`` on ``event``: every pyee listener of its subscriber, awaited,
        within ``timeout_s``. Raises what the handler raised, ``TimeoutError``, or
        ``LookupError`` when this process has no such handler."""
        spec = self._specs.get(name)
        if spec is None:
            raise LookupError(f"no handler {name!r} in this process")
        listeners = self.emitter.listeners(spec.subscriber_id)
        if not listeners:
            raise LookupError(f"handler {name!r} has no listener")
        async with asyncio.timeout(timeout_s):
            for fn in listeners:
                result: Any = fn(event)
                if inspect.isawaitable(result):
                    await result
        if spec.once:
            self.off(None, name)
