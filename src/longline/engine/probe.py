"""``longline check``: what a valid config still needs to run.

Without ``--connect``: the optional packages it names (store driver, processor client
libraries). With ``--connect``: also a store that opens, and one connection per stream that the
provider accepts (status line or WebSocket handshake, then closed, no message read), so a wrong
token, URL or port shows up before ``run``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from longline.config import Config, StreamConfig
from longline.core.errors import Outcome
from longline.core.extras import MissingExtra
from longline.core.resume import build_request
from longline.core.secrets import add_secrets, redact
from longline.engine.connections import connection_for
from longline.processors.registry import REGISTRY as PROCESSORS
from longline.processors.registry import check_extra
from longline.stores import SQLiteStore, Store, StoreError, open_store
from longline.transports.http import refusal_trace

__all__ = ["Finding", "connect_findings", "offline_findings"]

_GRACE = 2.0  # seconds beyond the connect timeout before a silent provider is reported


@dataclass(frozen=True, slots=True)
class Finding:
    """One checked part of a config: ``problem`` is None when it is fine."""

    what: str  # "store", "stream NAME", "processor NAME"
    problem: str | None = None
    note: str = ""

    def line(self) -> str:
        """``store: OK``, ``stream a: OK``, ``stream b: HTTP 401 Unauthorized: ...``."""
        if self.problem is not None:
            return f"{self.what}: {self.problem}"
        return f"{self.what}: OK ({self.note})" if self.note else f"{self.what}: OK"


def _store(cfg: Config) -> Store | Finding:
    try:
        return open_store(cfg.store)
    except StoreError as e:
        return Finding("store", str(e))


def offline_findings(cfg: Config) -> list[Finding]:
    """The problems found without connecting: a missing store driver or processor library, a
    store URL the store refuses."""
    out: list[Finding] = []
    store = _store(cfg)
    if isinstance(store, Finding):
        out.append(store)
    for p in cfg.processors:
        try:
            check_extra(PROCESSORS.get(p.kind))
        except MissingExtra as e:
            out.append(Finding(f"processor {p.name}", str(e)))
    return [_redacted(f, cfg) for f in out]


async def connect_findings(cfg: Config) -> list[Finding]:
    """One finding for the store, then one per stream (config order)."""
    add_secrets(cfg.secrets)  # a refusal's body is redacted with the registered secrets
    found = [await _open_store(cfg)]
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),
        trace_configs=[refusal_trace()],
        trust_env=True,  # as `run` does: HTTP(S)_PROXY, NO_PROXY
    )
    async with session:
        found += await asyncio.gather(*(_connect(s, session) for s in cfg.streams))
    return [_redacted(f, cfg) for f in found]


async def _open_store(cfg: Config) -> Finding:
    """Open and close the store; a SQLite file that does not exist yet is not created."""
    store = _store(cfg)
    if isinstance(store, Finding):
        return store
    if isinstance(store, SQLiteStore) and not store.path.exists():
        if not store.path.parent.is_dir():
            where = f"SQLite store {store.path}: directory {store.path.parent}"
            return Finding("store", f"{where} does not exist")
        return Finding("store", note=f"{store.path} does not exist yet; run or init creates it")
    try:
        async with store:
            pass
    except StoreError as e:
        return Finding("store", str(e))
    return Finding("store")


async def _connect(cfg: StreamConfig, session: aiohttp.ClientSession) -> Finding:
    what = f"stream {cfg.name}"
    resume = cfg.resume
    request = build_request(
        cfg.url,
        cfg.headers,
        cfg.subscribe,
        resume_header=resume.header if resume else None,
        resume_query=resume.query if resume else None,
        cursor=None,
    )
    wait = max(cfg.stall_timeout, 5.0) + _GRACE
    try:
        async with asyncio.timeout(wait):
            outcome: Outcome | None = await connection_for(cfg, session, request).probe()
    except TimeoutError:
        return Finding(what, f"no answer within {wait:g}s")
    return Finding(what) if outcome is None else Finding(what, outcome.describe())


def _redacted(finding: Finding, cfg: Config) -> Finding:
    if finding.problem is None:
        return finding
    return Finding(finding.what, redact(finding.problem, cfg.secrets), finding.note)
