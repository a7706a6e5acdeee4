"""The store contract (``longline.testing.conformance.stores``) on every built-in backend.

Each test runs once per backend (see conftest.py); the crash test only on the durable ones (a
memory store ends with its process), with fewer events on DynamoDB, whose emulator is slow.
"""

from __future__ import annotations

import pytest

from longline.testing.conformance.stores import StoreConformance

CRASH_EVENTS = {"sqlite": 4000, "postgresql": 4000, "dynamodb": 150}


class TestStoreContract(StoreConformance):
    @pytest.fixture
    def crash_events(self, backend: str) -> int | None:
        return CRASH_EVENTS.get(backend)
