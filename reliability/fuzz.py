"""Fuzz the SSE parser, the line splitter, the keyer and the config loader with hypothesis.

The invariants, for every generated input: no exception but the documented ones; any chunking
of the same bytes gives the same items; the SSE parser agrees with the literal WHATWG reference
(tests/core/test_sse.py) and the splitter with its reference (tests/core/test_lines.py); the
keyer returns an event whose payload is the message or a quarantine reason; the config loader
either returns a config or raises ConfigError whose lines never quote a secret. No input may
take more than a second (hang), and the process's peak RSS is reported (bounded memory).
"""

from __future__ import annotations

import itertools
import random
import resource
import time
from collections.abc import Callable
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from longline.config import ConfigError, loads_config
from longline.core.keys import Keyer
from longline.core.lines import LineSplitter
from longline.core.model import Event, Message, Oversized, Quarantined
from longline.core.sse import SSEParser
from reliability.report import Row
from tests.core import test_lines, test_sse

HANG = 1.0  # seconds one input may take
SECRET = "fuzzSECRETc4a1"

Item = Message | Oversized


class Probe:
    """Counts inputs and the slowest one."""

    def __init__(self) -> None:
        self.inputs = 0
        self.slowest = 0.0

    def time(self, t0: float) -> None:
        self.inputs += 1
        self.slowest = max(self.slowest, time.perf_counter() - t0)
        if self.slowest > HANG:
            raise AssertionError(f"one input took {self.slowest:.2f} s (a hang)")


def chunked(feed: Callable[[bytes], list[Item]], data: bytes, rng: random.Random) -> list[Item]:
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(6)))
    out: list[Item] = []
    for a, b in itertools.pairwise([0, *cuts, len(data)]):
        out += feed(data[a:b])
    return out


def sse_target(probe: Probe, n: int) -> None:
    @settings(**profile(n))
    @given(test_sse.streams, test_sse.limits, st.randoms(use_true_random=False))
    def check(stream: bytes, limit: int | None, rng: random.Random) -> None:
        t0 = time.perf_counter()
        expected, last_id, retry = test_sse.reference(stream, limit)
        parser = SSEParser(limit)
        assert chunked(parser.feed, stream, rng) == expected
        assert parser.last_event_id == last_id and parser.retry == retry
        parser.close()
        probe.time(t0)

    check()


def lines_target(probe: Probe, n: int) -> None:
    @settings(**profile(n))
    @given(test_lines.streams, st.none() | st.integers(0, 20), st.randoms(use_true_random=False))
    def check(stream: bytes, limit: int | None, rng: random.Random) -> None:
        t0 = time.perf_counter()
        splitter = LineSplitter(limit)
        assert chunked(splitter.feed, stream, rng) == test_lines.reference(stream, limit)
        probe.time(t0)

    check()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=8,
)
_paths = st.sampled_from(["$.id", "$.a.b", "$.x[0]", "$['k']", '$["a b"]', "$[1]", "$"])


def keyer_target(probe: Probe, n: int) -> None:
    bodies = _json.map(orjson.dumps) | st.binary(max_size=40)

    @settings(**profile(n))
    @given(bodies, _paths, st.sampled_from(["hash", "path"]), st.none() | _paths,
           st.sampled_from(["ws", "lines", "sse"]), st.none() | st.text(max_size=6))
    def check(body: bytes, path: str, key: str, cursor: str | None, transport: str,
              sse_id: str | None) -> None:
        t0 = time.perf_counter()
        keyer = Keyer(path if key == "path" else "hash", cursor, transport)
        own = sse_id is not None and transport == "sse"
        msg = Message(body, "message", sse_id if own else None, own)
        got = keyer.make(msg, 1.0)
        if isinstance(got, Event):
            assert got.payload == body.decode("utf-8") and isinstance(got.key, str)
            again = keyer.make(msg, 2.0)  # deterministic
            assert isinstance(again, Event) and again.key == got.key
        else:
            assert isinstance(got, Quarantined) and got.reason and got.raw == body
        probe.time(t0)

    check()


_BASE: dict[str, Any] = {
    "store": "sqlite:///fuzz.db",
    "streams": [{
        "name": "s", "transport": "ws", "url": "wss://u:${PW}@h.example/x",
        "headers": {"X-Api-Key": SECRET}, "subscribe": ['{"t":"${PW}"}'],
        "key": "$.id", "cursor": "$.id", "resume": {"query": "since"},
        "backoff": {"initial": "1s", "max": "5s"}, "max_lifetime": "1h",
    }],
    "processors": [{"name": "p", "type": "webhook", "url": "http://h.example/",
                    "headers": {"Authorization": "Bearer " + SECRET}}],
}
_leaf = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True)
         | st.text(max_size=12) | st.just(SECRET) | st.just("${PW}") | st.just("${NOPE}")
         | st.sampled_from(["0s", "-1s", "1x", "10MB", "$.", "none", "ws", "sse", "lines"]))


def _mutate(obj: Any, rng: random.Random, leaf: Any) -> Any:
    """Replace, drop or add one thing somewhere in a copy of ``obj``."""
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        k = rng.choice(list(obj))
        out = dict(obj)
        roll = rng.random()
        if roll < 0.15:
            del out[k]
        elif roll < 0.25:
            out[rng.choice(["extra", "Name", k + "_"])] = leaf
        else:
            out[k] = _mutate(obj[k], rng, leaf)
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        i = rng.randrange(len(obj))
        return [*obj[:i], _mutate(obj[i], rng, leaf), *obj[i + 1:]]
    return leaf


def config_target(probe: Probe, n: int) -> None:
    @settings(**profile(n))
    @given(st.randoms(use_true_random=False), st.lists(_leaf, min_size=1, max_size=3),
           st.booleans())
    def check(rng: random.Random, leaves: list[Any], as_text: bool) -> None:
        t0 = time.perf_counter()
        data: Any = _BASE
        for leaf in leaves:
            data = _mutate(data, rng, leaf)
        text = yaml.safe_dump(data)
        if as_text and len(text) > 2:  # damage the YAML itself too
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice([":", "\n", "- ", "{", "'", "\t", ""]) + text[i + 1:]
        try:
            cfg = loads_config(text, "fuzz.yaml", {"PW": SECRET})
        except ConfigError as e:
            assert e.errors and SECRET not in str(e), str(e)
        else:
            assert SECRET not in str(cfg.redacted())
        probe.time(t0)

    check()


# -- the bulk: seeded random generation (hypothesis runs ~400 inputs/s here; this ~20x more) --

_SSE_TOKENS = [*test_sse.TOKENS, b"id: 7", b"retry: 10", b"event: x", b"data: {}"]
_LINE_PIECES = [b"a", b"{}", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xff", b"xyz" * 5, b'{"id":1}']
_LEAVES: list[Any] = [None, True, False, 0, -1, 7, 10**6, 1.5, float("nan"), "", "x", SECRET,
                      "${PW}", "${NOPE}", "${", "0s", "-1s", "1x", "10MB", "$.", "none", "ws",
                      "sse", "lines", [], {}, ["a"], {"a": 1}]


def _bytes(rng: random.Random, tokens: list[bytes], n: int) -> bytes:
    if rng.random() < 0.15:
        return rng.randbytes(rng.randrange(n))
    return b"".join(rng.choice(tokens) for _ in range(rng.randrange(n)))


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {rng.choice(["id", "a", "b", "x", "k", "a b"]): _json_value(rng, depth + 1)
                for _ in range(rng.randrange(4))}
    if depth < 3 and roll < 0.45:
        return [_json_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return rng.choice([None, True, 0, -3, 2**40, 1.25, "", "s", "é", "1"])


def fast(probe: Probe, n: int, seed: int, one: Callable[[random.Random], None]) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        t0 = time.perf_counter()
        one(rng)
        probe.time(t0)


def sse_one(rng: random.Random) -> None:
    stream = _bytes(rng, _SSE_TOKENS, 60)
    limit = None if rng.random() < 0.3 else rng.randrange(25)
    expected, last_id, retry = test_sse.reference(stream, limit)
    parser = SSEParser(limit)
    got = chunked(parser.feed, stream, rng)
    assert got == expected, (stream, limit)
    assert parser.last_event_id == last_id and parser.retry == retry, (stream, limit)


def lines_one(rng: random.Random) -> None:
    stream = _bytes(rng, _LINE_PIECES, 50)
    limit = None if rng.random() < 0.3 else rng.randrange(21)
    splitter = LineSplitter(limit)
    assert chunked(splitter.feed, stream, rng) == test_lines.reference(stream, limit), stream


def keyer_one(rng: random.Random) -> None:
    body = orjson.dumps(_json_value(rng)) if rng.random() < 0.8 else rng.randbytes(20)
    paths = ["$.id", "$.a.b", "$.x[0]", "$['k']", '$["a b"]', "$[1]", "$"]
    transport = rng.choice(["ws", "lines", "sse"])
    key = rng.choice(paths) if rng.random() < 0.7 else "hash"
    cursor = rng.choice([*paths, None])
    keyer = Keyer(key, cursor, transport)
    own = transport == "sse" and rng.random() < 0.5
    msg = Message(body, "message", "7" if own else None, own)
    got = keyer.make(msg, 1.0)
    if isinstance(got, Event):
        assert got.payload == body.decode("utf-8") and isinstance(got.key, str), body
        again = keyer.make(msg, 2.0)
        assert isinstance(again, Event) and again.key == got.key, body
    else:
        assert isinstance(got, Quarantined) and got.reason and got.raw == body, body


def config_one(rng: random.Random) -> None:
    data: Any = _BASE
    for _ in range(rng.randrange(1, 4)):
        data = _mutate(data, rng, rng.choice(_LEAVES))
    text = yaml.safe_dump(data)
    if rng.random() < 0.3:
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice([":", "\n", "- ", "{", "'", "\t", ""]) + text[i + 1:]
    try:
        cfg = loads_config(text, "fuzz.yaml", {"PW": SECRET})
    except ConfigError as e:
        assert e.errors and SECRET not in str(e), str(e)
    else:
        assert SECRET not in str(cfg.redacted())


def profile(n: int) -> dict[str, Any]:
    return {
        "max_examples": n,
        "deadline": None,
        "database": None,
        "phases": [Phase.generate, Phase.shrink],
        "suppress_health_check": list(HealthCheck),
        "derandomize": False,
    }


TARGETS = {
    "SSE parser vs WHATWG reference": (sse_target, sse_one, 0.4),
    "line splitter vs reference": (lines_target, lines_one, 0.3),
    "keyer": (keyer_target, keyer_one, 0.15),
    "config loader": (config_target, config_one, 0.15),
}
HYPOTHESIS_SHARE = 0.03  # of each target's inputs; the rest are seeded random


def run_all(total: int, seed: int) -> list[Row]:
    rows: list[Row] = []
    for name, (target, one, share) in TARGETS.items():
        probe = Probe()
        n = int(total * share)
        n_hyp = int(n * HYPOTHESIS_SHARE)
        t0 = time.monotonic()
        row = Row(f"fuzz: {name}", "")
        try:
            target(probe, n_hyp)
            hyp = probe.inputs
            fast(probe, n - hyp, seed, one)
        except Exception as exc:  # a falsified invariant (hypothesis re-raises the shrunk case)
            row.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            hyp = min(probe.inputs, n_hyp)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row.injected = (
            f"{probe.inputs:,} inputs ({hyp:,} hypothesis, the rest seeded random, seed {seed})"
        )
        row.produced = row.stored = 0
        row.peak_rss_mb = rss
        row.duration_s = time.monotonic() - t0
        row.notes.append(f"slowest input {probe.slowest * 1000:.1f} ms")
        rows.append(row)
    return rows
