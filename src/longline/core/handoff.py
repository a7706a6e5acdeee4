"""Make-before-break rotation: when to open a successor and when to close its predecessor.

A provider that cuts connections after a fixed lifetime (Binance: 24 h) loses events for a
client that reconnects after the cut. longline opens the successor *before* ``max_lifetime``
and closes the predecessor only once the successor's first events are committed *and* the two
connections have overlapped (one delivered an event the other had already stored: a
duplicate), or a bounded overlap has passed. The overlap matters on a live feed: the successor
starts at the provider's present, and a predecessor lagging behind it (a busy process) still
has events in its socket that only it will deliver. The store's key drops whatever both
delivered. This module only decides; the supervisor does the I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    """What the supervisor should do next for one connection slot."""

    WAIT = "wait"
    OPEN_SUCCESSOR = "open-successor"
    CLOSE_PREDECESSOR = "close-predecessor"
    ABANDON_SUCCESSOR = "abandon-successor"


@dataclass(slots=True)
class Rotation:
    """The per-slot rotation state machine.

    ``max_lifetime`` None means never rotate. ``max_overlap`` bounds how long both connections
    run side by side when the successor has connected but delivered nothing (a quiet feed);
    ``successor_timeout`` bounds how long a successor may take to connect at all.
    """

    max_lifetime: float | None
    max_overlap: float = 30.0
    successor_timeout: float = 30.0
    rotate_at: float = float("inf")
    successor_started: float | None = None
    successor_connected: float | None = None
    successor_committed: bool = False
    overlapped: bool = False  # the two connections delivered one same event

    def on_opened(self, now: float) -> None:
        """The current connection is open: the lifetime clock starts."""
        self.rotate_at = now + self.max_lifetime if self.max_lifetime is not None else float("inf")
        self.successor_started = None
        self.successor_connected = None
        self.successor_committed = False
        self.overlapped = False

    def on_handed_over(self, now: float) -> None:
        """The successor became the current connection (its predecessor was closed, or died
        during the overlap): its lifetime clock started when it was opened, not now. Counted
        from the handover, a successor whose commit was slow (a throttled store) would rotate
        only as the provider's forced close came, and drop its events in between."""
        started = self.successor_started
        self.on_opened(now if started is None else min(started, now))

    def request(self, now: float) -> None:
        """The provider asked for a reconnect: open a successor now (unless one is opening),
        with or without ``max_lifetime``."""
        if self.successor_started is None:
            self.rotate_at = min(self.rotate_at, now)

    def next_deadline(self) -> float | None:
        """When ``decide`` may next return something other than WAIT (None: never by time)."""
        if self.successor_started is None:
            return None if self.rotate_at == float("inf") else self.rotate_at
        if self.successor_connected is None:
            return self.successor_started + self.successor_timeout
        return self.successor_connected + self.max_overlap

    def decide(self, now: float) -> Action:
        """The action due at ``now``."""
        if self.successor_started is None:
            if now >= self.rotate_at:
                self.successor_started = now
                return Action.OPEN_SUCCESSOR
            return Action.WAIT
        if self.successor_committed and self.overlapped:
            return Action.CLOSE_PREDECESSOR
        if self.successor_connected is not None:
            if now >= self.successor_connected + self.max_overlap:
                return Action.CLOSE_PREDECESSOR
            return Action.WAIT
        if now >= self.successor_started + self.successor_timeout:
            return Action.ABANDON_SUCCESSOR
        return Action.WAIT

    def on_successor_connected(self, now: float) -> None:
        """The successor's handshake succeeded."""
        self.successor_connected = now

    def on_successor_committed(self) -> None:
        """Events from the successor are durable."""
        self.successor_committed = True

    def on_overlap(self) -> None:
        """The connections overlapped (a duplicate since the successor started, or a session's
        own handover): with the successor's commit, the predecessor may go."""
        self.overlapped = True

    def on_successor_failed(self, now: float, retry_in: float) -> None:
        """The successor failed before taking over: try again after ``retry_in`` seconds."""
        self.successor_started = None
        self.successor_connected = None
        self.successor_committed = False
        self.overlapped = False
        self.rotate_at = now + retry_in


class Step(enum.Enum):
    """What a time-limited invocation (AWS Lambda) should do next."""

    CONTINUE = "continue"
    START_SUCCESSOR = "start-successor"
    STOP = "stop"


@dataclass(slots=True)
class InvocationPlan:
    """Make-before-break handoff between time-limited invocations, as a pure state machine.

    An invocation captures until its remaining time falls under ``margin``; then (when it
    ``chains`` itself; under Step Functions the state machine does it) it starts its successor.
    The successor takes every stream's lease with a newer epoch, which *supersedes* this
    invocation: its checkpoint writes are refused from then on, though its events still insert
    (idempotently), so it keeps its connections until the successor has committed events
    (``successor_live``) or ``max_overlap`` has passed. It always stops when only
    ``flush_reserve`` seconds remain, to flush before the platform kills it.
    """

    margin: float
    flush_reserve: float
    max_overlap: float
    chains: bool
    chained: bool = False
    superseded_at: float | None = None

    def decide(self, now: float, remaining: float, superseded: bool, successor_live: bool) -> Step:
        """The step due at ``now`` with ``remaining`` seconds left in the invocation."""
        if remaining <= self.flush_reserve:
            return Step.STOP
        if superseded:
            if self.superseded_at is None:
                self.superseded_at = now
            if successor_live or now - self.superseded_at >= self.max_overlap:
                return Step.STOP
            return Step.CONTINUE
        if remaining <= self.margin and self.chains and not self.chained:
            self.chained = True
            return Step.START_SUCCESSOR
        return Step.CONTINUE
