"""``kind: command``: run a program per batch with the events as NDJSON on its stdin.

The simplest way to plug in any language: one JSON object per line (the event dicts every kind
delivers), exit 0 when the batch is handled. Any other exit code, a timeout or a crash is
retried, with the tail of stderr in the error; codes listed in ``permanent_exit_codes`` (say 65,
``EX_DATAERR``) send the batch to the dead letters at once. The program also sees
``LONGLINE_PROCESSOR`` and ``LONGLINE_STREAM`` in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Sequence
from typing import Literal

import orjson
from pydantic import Field, field_validator

from longline.core.model import StoredEvent
from longline.core.secrets import redacted_tail
from longline.processors.base import ProcessorError, event_dicts
from longline.processors.registry import Duration, ProcessorKind, ProcessorSettings

__all__ = ["KIND", "CommandProcessor", "CommandSettings", "build"]

_STDERR_TAIL = 500  # characters of stderr kept in the error


class CommandSettings(ProcessorSettings):
    """``argv`` (no shell), ``timeout`` per batch, extra ``env``, working directory ``cwd``."""

    kind: Literal["command"]
    argv: list[str]
    timeout: Duration = Field(default=60.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    permanent_exit_codes: list[int] = Field(default_factory=list)

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if not v or not v[0]:
            raise ValueError("must start with a program: [program, arg, ...]")
        return v


class CommandProcessor:
    """Starts ``argv`` once per batch; no state survives between batches."""

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    async def start(self) -> None:
        program = self.settings.argv[0]
        if shutil.which(program, path=self._env().get("PATH")) is None:
            raise ProcessorError(f"command not found: {program}", permanent=True)

    def _env(self, stream: str = "") -> dict[str, str]:
        env = {**os.environ, **self.settings.env, "LONGLINE_PROCESSOR": self.settings.name}
        if stream:
            env["LONGLINE_STREAM"] = stream
        return env

    async def deliver(self, stream: str, events: Sequence[StoredEvent]) -> None:
        cfg = self.settings
        data = b"".join(orjson.dumps(ev) + b"\n" for ev in event_dicts(stream, events))
        try:
            proc = await asyncio.create_subprocess_exec(
                *cfg.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(stream),
                cwd=cfg.cwd,
            )
        except OSError as exc:
            raise ProcessorError(f"cannot run {cfg.argv[0]}: {exc.strerror or exc}") from exc
        try:
            _, err = await asyncio.wait_for(proc.communicate(data), cfg.timeout)
        except TimeoutError:
            await _kill(proc)
            raise ProcessorError(f"{cfg.argv[0]} timed out after {cfg.timeout:g}s") from None
        except BaseException:  # cancelled (shutdown): never leave the child behind
            await _kill(proc)
            raise
        code = proc.returncode
        if code == 0:
            return
        # Redacted before it is cut (the dispatcher redacts the error again with the config's
        # secrets, but a piece of one left by the cut would be recognised by no redactor).
        tail = redacted_tail(err.decode("utf-8", "replace").strip(), _STDERR_TAIL)
        what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        raise ProcessorError(
            f"{cfg.argv[0]} failed ({what})" + (f": {tail}" if tail else ""),
            permanent=code in cfg.permanent_exit_codes,
        )

    async def close(self) -> None:
        return None


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        await proc.wait()


def build(settings: CommandSettings) -> CommandProcessor:
    return CommandProcessor(settings)


KIND = ProcessorKind("command", CommandSettings, build)
