"""``connect_rate``: new connections per second across a process, jittered.

At start, and when a provider-wide outage ends, every stream wants to connect at once: tens of
thousands of TLS handshakes in the same second overload the process, the provider (which may
answer with 429s) and the NAT in between. Every connection attempt reserves the next slot of a
schedule spaced ``1 / rate`` apart on average (each gap drawn from 0.5x to 1.5x of it, so
processes started together drift apart), and waits for it. A reservation is two floats: no
task or queue per waiting stream.
"""

from __future__ import annotations

import asyncio
import random

__all__ = ["ConnectGate"]


class ConnectGate:
    """Hands out connection slots at ``rate`` per second on average."""

    def __init__(self, rate: float, rng: random.Random | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, not {rate!r}")
        self.interval = 1.0 / rate
        self._next = 0.0  # loop time of the next free slot
        self._rng = rng or random.Random()

    def reserve(self, now: float | None = None) -> float:
        """Take the next slot; return how long to wait for it (0 when it is now).

        ``now``: the loop time to count from (default: the running loop's clock)."""
        if now is None:
            now = asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self.interval * self._rng.uniform(0.5, 1.5)
        return slot - now
