"""bridge.openevent: the catalog in Blocklet Server's openevent.json format."""

from __future__ import annotations

from bridge.catalog import CATALOG
from bridge.openevent import SOURCE_ID, openevent_document


def test_openevent_document_has_blocklet_server_top_level_shape() -> None:
    doc = openevent_document()
    assert doc["openevent"] == "1.0.0"
    assert doc["info"]["title"] == "paybridge" and doc["info"]["description"]
    [source] = doc["sources"]
    assert source["id"] == SOURCE_ID and source["version"]


def test_openevent_document_lists_every_catalog_type_once() -> None:
    events = openevent_document()["events"]
    assert [e["type"] for e in events] == list(CATALOG)
    for entry in events:
        spec = CATALOG[entry["type"]]
        assert entry == {
            "type": spec.type,
            "description": spec.description,
            "source": SOURCE_ID,
            "origin": spec.origin,
        }


def test_openevent_document_includes_payment_kit_only_types() -> None:
    by_type = {e["type"]: e for e in openevent_document()["events"]}
    assert by_type["checkout.session.nft_minted"]["origin"] == "payment_kit"
    assert by_type["payment.succeeded"]["origin"] == "both"
