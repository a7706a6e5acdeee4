"""The store contract on every backend (the suite moved to longline.testing.conformance.stores)."""

from longline.testing.conformance.stores import *  # noqa: F403
