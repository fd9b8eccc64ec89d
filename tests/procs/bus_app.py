"""A paybridge process with one durable handler ``grant`` that announces it started and then
hangs: the test kills it mid-handler (python -m tests.procs.bus_app CONFIG PORT MARKER)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bridge import Bridge, Event, load_config
from bridge.server import run_app


def main() -> None:
    config_path, port, marker = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    cfg = load_config(config_path)
    bridge = Bridge(cfg)

    @bridge.bus.on("customer.subscription.started", name="grant")
    async def grant(event: Event) -> None:
        marker.write_text(event.id)
        await asyncio.sleep(3600)

    run_app(bridge.web_app(), cfg.server, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
