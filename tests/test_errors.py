"""One error tree: every exception class bridge/ and adapters/ define is a BridgeError, and
bridge/errors.py's docstring draws exactly the classes it defines."""

from __future__ import annotations

import errno
import importlib
import inspect
import re

import pytest

from bridge import errors
from bridge.errors import (
    BridgeError,
    DeliveryError,
    UnknownEventTypeError,
    UnsafeAddressError,
    UnsafeURLError,
)
from tests.test_import_graph import MODULES


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in MODULES:
        if name.endswith("__main__"):
            continue  # runs the CLI when imported
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
            ):
                found[f"{name}.{attr}"] = value
    return found


def test_every_exception_paybridge_defines_is_a_bridge_error() -> None:
    defined = _defined_exceptions()
    assert "bridge.errors.ResponseError" in defined
    outside = sorted(name for name, cls in defined.items() if not issubclass(cls, BridgeError))
    assert outside == []


def test_the_docstring_draws_exactly_the_tree() -> None:
    drawn = re.findall(r"[├└]── (\w+)", errors.__doc__ or "")
    defined = [
        name
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, BridgeError) and name != "BridgeError"
    ]
    assert sorted(drawn) == sorted(defined) == sorted(set(errors.__all__) - {"BridgeError"})


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (UnknownEventTypeError("x.y"), ValueError),
        (UnsafeURLError("endpoint URL has no host"), ValueError),
        (UnsafeAddressError("10.0.0.1 is not public"), OSError),
    ],
)
def test_errors_that_were_standard_ones_still_are(error: BridgeError, also: type) -> None:
    assert isinstance(error, also) and isinstance(error, BridgeError)


def test_a_refused_address_is_a_delivery_error_with_an_errno() -> None:
    error = UnsafeAddressError("10.0.0.1 is not public")
    assert isinstance(error, DeliveryError)
    assert (error.errno, error.strerror) == (errno.EACCES, "10.0.0.1 is not public")
