"""What the web layer (provider routes, health, metrics, admin API) needs of a running bridge.

A Protocol, so :mod:`bridge.app` and :mod:`bridge.api` depend on this surface rather than on
:mod:`bridge.service`, which builds the web app (``Bridge.web_app``): the dependency runs one
way, service → app → api. :class:`bridge.service.Bridge` satisfies it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from adapters.base import Adapter, InboundRequest
    from bridge.config import Config
    from bridge.dispatch import Dispatcher
    from bridge.metrics import Metrics
    from bridge.store.base import IngestResult, Store

__all__ = ["ServedBridge"]


class ServedBridge(Protocol):
    """The attributes and operations the routes use; see :class:`bridge.service.Bridge`."""

    @property
    def config(self) -> Config: ...
    @property
    def store(self) -> Store: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def dispatcher(self) -> Dispatcher | None: ...
    @property
    def clock(self) -> Callable[[], float]: ...

    def adapter(self, provider: str) -> Adapter | None: ...
    async def ingest(self, provider: str, request: InboundRequest) -> IngestResult: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
