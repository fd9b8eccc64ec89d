"""Provider adapters: one module per provider, each satisfying :mod:`adapters.base`."""

# adapters.base needs bridge.events, and importing any bridge module runs bridge/__init__, which
# imports bridge.service, which imports adapters.base again. Importing the bridge package first
# makes `from adapters.stripe import StripeAdapter` work as a program's first import.
import bridge  # noqa: F401
