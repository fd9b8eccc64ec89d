"""Field access that hides how Stripe's API versions shape the same object differently.

Before ``2025-03-31.basil`` an invoice names its subscription (``invoice.subscription``) and its
PaymentIntent (``invoice.payment_intent``), and a PaymentIntent names its invoice
(``payment_intent.invoice``). From basil on, the subscription lives at
``invoice.parent.subscription_details.subscription``, the PaymentIntent-invoice link is the
``invoice_payment`` object, and line items carry ``parent.subscription_item_details`` and
``pricing.price_details``. The shape is chosen by the event's ``api_version``; when that is
absent, by which fields are present. Every accessor is pure and total: a missing or oddly typed
field gives ``None`` (or an empty list), never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, Literal

__all__ = [
    "BASIL",
    "Shape",
    "expandable_id",
    "invoice_payment_intents",
    "invoice_products",
    "invoice_subscription",
    "is_basil_version",
    "obj_id",
    "recurring_amount_per_year",
    "shape_of",
    "subscription_items",
]

Shape = Literal["pre_basil", "basil"]

BASIL = "2025-03-31"  # date prefix of 2025-03-31.basil; later versions compare greater

_PER_YEAR: dict[str, Fraction] = {
    "day": Fraction(365),
    "week": Fraction(52),
    "month": Fraction(12),
    "year": Fraction(1),
}


# Stripe's decimal strings (``unit_amount_decimal``: at most 12 decimal places). Anything else is
# refused before Fraction sees it: Fraction also parses "1/0" (ZeroDivisionError) and "1e999999999"
# (builds a billion-digit integer, stalling the event loop).
_DECIMAL_RE = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,12})?")


def is_basil_version(api_version: str) -> bool:
    """True when ``api_version`` (``YYYY-MM-DD[.name]``) is basil or later."""
    return api_version[:10] >= BASIL


def shape_of(api_version: str | None, obj: Mapping[str, Any]) -> Shape:
    """The shape of ``obj``: by ``api_version`` when given, else by field presence."""
    if api_version:
        return "basil" if is_basil_version(api_version) else "pre_basil"
    kind = obj.get("object")
    if kind == "invoice":
        basil = "parent" in obj or ("subscription" not in obj and "payment_intent" not in obj)
    elif kind == "payment_intent":
        basil = "invoice" not in obj
    elif kind == "subscription":
        basil = "current_period_end" not in obj
    else:
        basil = True
    return "basil" if basil else "pre_basil"


def expandable_id(value: Any) -> str | None:
    """The id of an expandable field: the string itself, or ``value["id"]`` when expanded."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def obj_id(obj: Mapping[str, Any]) -> str:
    """``obj["id"]`` as a string (``""`` when absent)."""
    value = obj.get("id")
    return value if isinstance(value, str) else ""


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _list_data(value: Any) -> list[Mapping[str, Any]]:
    """The dicts in a Stripe list object (``{"object": "list", "data": [...]}``) or a list."""
    items = value.get("data") if isinstance(value, Mapping) else value
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, Mapping)]


def invoice_subscription(invoice: Mapping[str, Any], shape: Shape) -> str | None:
    """The subscription an invoice belongs to (shape-specific field first, then the other)."""
    basil = expandable_id(_dig(invoice, "parent", "subscription_details", "subscription"))
    legacy = expandable_id(invoice.get("subscription"))
    return (basil or legacy) if shape == "basil" else (legacy or basil)


def invoice_payment_intents(invoice: Mapping[str, Any], shape: Shape) -> list[str]:
    """The PaymentIntents an invoice names: ``payment_intent`` (pre-basil) and, when the
    ``payments`` list is expanded (basil), each ``payments.data[].payment.payment_intent``."""
    found: list[str] = []
    legacy = expandable_id(invoice.get("payment_intent"))
    if legacy:
        found.append(legacy)
    for payment in _list_data(invoice.get("payments")):
        pi = expandable_id(_dig(payment, "payment", "payment_intent"))
        if pi and pi not in found:
            found.append(pi)
    return found


def _line_product(line: Mapping[str, Any]) -> str | None:
    for path in (
        ("pricing", "price_details", "product"),
        ("price", "product"),
        ("plan", "product"),
    ):
        product = expandable_id(_dig(line, *path))
        if product:
            return product
    return None


def invoice_products(invoice: Mapping[str, Any]) -> list[str]:
    """Distinct product ids of an invoice's line items (basil ``pricing.price_details`` or
    pre-basil ``price``/``plan``), in line order."""
    products: list[str] = []
    for line in _list_data(invoice.get("lines")):
        product = _line_product(line)
        if product and product not in products:
            products.append(product)
    return products


def _unit_amount(price: Mapping[str, Any]) -> Fraction | None:
    """A price's (or legacy plan's) unit amount in minor units, or None (tiered/unknown)."""
    decimal = price.get("unit_amount_decimal")
    if isinstance(decimal, str):
        return Fraction(decimal) if _DECIMAL_RE.fullmatch(decimal) else None
    for key in ("unit_amount", "amount"):
        value = price.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return Fraction(value)
    return None


def _per_year_factor(price: Mapping[str, Any]) -> Fraction | None:
    recurring = price.get("recurring")
    source = recurring if isinstance(recurring, Mapping) else price  # plans carry interval
    factor = _PER_YEAR.get(str(source.get("interval")))
    count = source.get("interval_count", 1)
    if factor is None or not isinstance(count, int) or count <= 0:
        return None
    return factor / count


def _item_amount(item: Mapping[str, Any]) -> Fraction | None:
    price = item.get("price") if isinstance(item.get("price"), Mapping) else item.get("plan")
    if not isinstance(price, Mapping):
        return None
    unit, factor = _unit_amount(price), _per_year_factor(price)
    quantity = item.get("quantity", 1)
    if unit is None or factor is None or not isinstance(quantity, int):
        return None
    return unit * quantity * factor


def recurring_amount_per_year(items: Iterable[Mapping[str, Any]]) -> Fraction | None:
    """Σ unit_amount × quantity of subscription items, normalized to one year; ``None`` when
    any item's amount cannot be known (tiered prices, missing price)."""
    total = Fraction(0)
    for item in items:
        amount = _item_amount(item)
        if amount is None:
            return None
        total += amount
    return total


def subscription_items(sub: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The items of a subscription (``items.data``)."""
    return _list_data(sub.get("items"))
