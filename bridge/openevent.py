"""The event catalog as an openevent document, served at ``/.well-known/service/openevent.json``.

The format is Blocklet Server's (its ``openevent.json`` route: ``{openevent: "1.0.0", info:
{title, description}, sources: [{did, title, description, version, logo}], events: [{type,
description, source}]}``, where ``source`` names the publisher of the event by its DID).
paybridge is one publisher with no DID, so its single source is identified by ``id``
(``"paybridge"``), which every event names as its ``source``; ``origin`` tells which providers
produce the type (``both``, ``stripe`` or ``payment_kit``), as in :mod:`bridge.catalog`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from bridge.catalog import CATALOG

__all__ = ["OPENEVENT_VERSION", "SOURCE_ID", "openevent_document"]

OPENEVENT_VERSION = "1.0.0"
SOURCE_ID = "paybridge"
_DESCRIPTION = (
    "Stripe and Payment Kit webhooks normalized into one canonical, exactly-once event stream"
)


def _version() -> str:
    try:
        return metadata.version("paybridge")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"


def openevent_document() -> dict[str, Any]:
    """The openevent document of every catalog type, in catalog order."""
    return {
        "openevent": OPENEVENT_VERSION,
        "info": {"title": "paybridge", "description": _DESCRIPTION},
        "sources": [
            {
                "id": SOURCE_ID,
                "title": "paybridge",
                "description": _DESCRIPTION,
                "version": _version(),
            }
        ],
        "events": [
            {
                "type": spec.type,
                "description": spec.description,
                "source": SOURCE_ID,
                "origin": spec.origin,
            }
            for spec in CATALOG.values()
        ],
    }
