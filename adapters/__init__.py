"""Provider adapters: one module per provider, each satisfying :mod:`adapters.base`."""
