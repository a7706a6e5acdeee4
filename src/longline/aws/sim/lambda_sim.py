"""``longline lambda-sim``: run the Lambda orchestrations locally with real deadlines.

Each invocation is a separate process given a context whose remaining time runs out for real,
and is SIGKILLed at its timeout as Lambda does; as on Lambda, its init phase (Python starting
and importing, at most ``INIT_LIMIT``) comes before the timeout starts to run. ``self`` mode
runs the self-chained handoff plus a watchdog schedule that starts an invocation when a lease
has expired; ``stepfunctions`` mode interprets the very state machine definition that
``longline deploy --option 2`` emits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

INIT_LIMIT = 10.0  # seconds: Lambda's limit on an on-demand function's init phase


@dataclass
class Invocation:
    """One simulated invocation and how it ended."""

    n: int
    request_id: str
    payload: dict[str, Any]
    started: float
    ended: float | None = None
    returncode: int | None = None
    killed: str | None = None  # "init", "timeout" or "planned"
    result: dict[str, Any] | None = None


@dataclass
class SimReport:
    """What happened during a simulation."""

    invocations: list[Invocation] = field(default_factory=list)

    @property
    def handoffs(self) -> int:
        return sum(
            1 for i in self.invocations if i.result and i.result.get("outcome") == "handed-over"
        )

    @property
    def errors(self) -> list[str]:
        """Invocations that crashed or ran into their timeout (a too-small margin)."""
        out = []
        for i in self.invocations:
            if i.killed == "timeout":
                out.append(f"invocation {i.n} was killed at its timeout")
            elif i.killed == "init":
                out.append(f"invocation {i.n} did not finish its init phase in {INIT_LIMIT:g} s")
            elif i.killed is None and i.returncode not in (0, None):
                out.append(f"invocation {i.n} exited with {i.returncode}")
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "invocations": len(self.invocations),
            "started": sum(1 for i in self.invocations if i.result and i.result["started"]),
            "handoffs": self.handoffs,
            "killed_planned": sum(1 for i in self.invocations if i.killed == "planned"),
            "errors": self.errors,
            "epochs": [
                i.result.get("epochs")
                for i in self.invocations
                if i.result and i.result.get("started")
            ],
        }


class LambdaSim:
    """Drives simulated invocations of one config."""

    def __init__(
        self,
        config: Path,
        *,
        mode: str,
        timeout: float,
        margin: float,
        duration: float,
        watchdog_every: float | None = None,
        lease_ttl: float | None = None,
        max_overlap: float | None = None,
        kill: dict[int, float] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        if mode not in ("self", "stepfunctions"):
            raise ValueError("--mode must be self or stepfunctions")
        if not 0 < margin < timeout:
            raise ValueError("--margin must be between 0 and --timeout")
        self.config = config
        self.mode = mode
        self.timeout = timeout
        self.margin = margin
        self.duration = duration
        self.watchdog_every = watchdog_every or max(timeout / 2, 1.0)
        self.lease_ttl = lease_ttl or max(2.0, margin)
        self.max_overlap = max_overlap or max(1.0, margin / 2)
        self.kill = kill or {}
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="longline-sim-"))
        self.report = SimReport()
        self._counter = itertools.count(1)
        self._running: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._control = ""

    # -- invocations ----------------------------------------------------------------------

    def invoke(self, payload: dict[str, Any]) -> None:
        """Start an invocation asynchronously (InvocationType=Event)."""
        if not self._accepting:
            return
        task = asyncio.create_task(self._invocation(payload))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _invocation(self, payload: dict[str, Any]) -> None:
        n = next(self._counter)
        inv = Invocation(n, f"sim-{n:04d}", payload, time.time())
        self.report.invocations.append(inv)
        env = {
            **os.environ,
            "LONGLINE_CONFIG": str(self.config),
            "LONGLINE_MODE": self.mode,
            "LONGLINE_MARGIN": str(self.margin),
            "LONGLINE_LEASE_TTL": str(self.lease_ttl),
            "LONGLINE_MAX_OVERLAP": str(self.max_overlap),
            "LONGLINE_SIM_REQUEST_ID": inv.request_id,
            "LONGLINE_SIM_TIMEOUT": str(self.timeout),
            "LONGLINE_SIM_CONTROL": self._control,
            "LONGLINE_SIM_EVENT": orjson.dumps(payload).decode(),
        }
        with open(self.log_dir / f"{inv.request_id}.log", "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "longline.aws.sim.worker",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
            assert proc.stdout is not None
            try:  # the init phase: Python starting and importing, not counted in the timeout
                first = await asyncio.wait_for(proc.stdout.readline(), INIT_LIMIT)
                deadline = float(orjson.loads(first)["init_done"])
            except (TimeoutError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                deadline = None
            if deadline is None:
                limit, how = 0.0, "init"
            else:  # a planned kill counts from the end of init, as the timeout does
                limit, how = max(0.0, deadline - time.time()), "timeout"
                planned = self.kill.get(n)
                if planned is not None and planned < self.timeout:
                    at = deadline - self.timeout + planned
                    limit, how = max(0.0, at - time.time()), "planned"
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), limit)
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                out, _ = await proc.communicate()
                inv.killed = how
        inv.ended = time.time()
        inv.returncode = proc.returncode
        lines = out.decode(errors="replace").strip().splitlines()
        if lines and inv.killed is None:
            with contextlib.suppress(orjson.JSONDecodeError):
                inv.result = orjson.loads(lines[-1])

    # -- orchestrations -------------------------------------------------------------------

    async def _watchdog(self) -> None:
        """The EventBridge schedule: start an invocation that takes over expired leases."""
        while True:
            await asyncio.sleep(self.watchdog_every)
            self.invoke({"watchdog": True})

    async def _stepfunctions(self) -> None:
        from longline.aws.stepfunctions import run_local_state_machine

        interval = max(1, round(self.timeout - self.margin))
        await run_local_state_machine(invoke_lambda=self._invoke_async, handoff_interval_s=interval)

    async def _invoke_async(self, payload: dict[str, Any]) -> None:
        self.invoke(payload)

    async def _serve_control(self) -> web.AppRunner:
        async def handle(request: web.Request) -> web.Response:
            self.invoke(orjson.loads(await request.read() or b"{}"))
            return web.Response(status=202)

        app = web.Application()
        app.router.add_post("/invoke", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._control = f"http://127.0.0.1:{port}/invoke"
        return runner

    async def run(self) -> SimReport:
        """Run for ``duration``, then let the last invocations finish."""
        control = await self._serve_control()
        orchestrator: asyncio.Task[None]
        if self.mode == "self":
            self.invoke({})
            orchestrator = asyncio.create_task(self._watchdog())
        else:
            orchestrator = asyncio.create_task(self._stepfunctions())
        try:
            await asyncio.sleep(self.duration)
        finally:
            self._accepting = False
            orchestrator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await orchestrator
            while self._running:
                await asyncio.gather(*list(self._running), return_exceptions=True)
            await control.cleanup()
        return self.report
