"""One simulated Lambda invocation: a process with a real deadline (``lambda-sim`` starts it).

As on Lambda, the init phase (starting Python, importing the code) does not count against the
function's timeout: once imported, this process prints ``{"init_done": DEADLINE}`` (now +
``LONGLINE_SIM_TIMEOUT``), and the context's remaining time runs out for real at that deadline,
when the controller SIGKILLs the process as Lambda would. Asynchronous self-invocation goes to
the controller over loopback HTTP, as ``lambda:InvokeFunction`` with ``InvocationType=Event``
would.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import aiohttp
import orjson

from longline.aws.lambda_handler import Settings, load_from_env, run_invocation


class SimContext:
    """A Lambda context whose remaining time is measured against a real deadline."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.aws_request_id = request_id
        self.deadline = deadline
        self.function_name = "longline-sim"
        self.invoked_function_arn = "arn:aws:lambda:local:000000000000:function:longline-sim"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


async def _main(deadline: float) -> dict[str, Any]:
    from longline.ops.logging import setup_logging

    cfg = load_from_env()
    setup_logging(os.environ.get("LONGLINE_LOG_LEVEL", "WARNING"), secrets=cfg.secrets)
    settings = Settings.from_env()
    context = SimContext(os.environ["LONGLINE_SIM_REQUEST_ID"], deadline)
    event = orjson.loads(os.environ.get("LONGLINE_SIM_EVENT", "{}"))
    control = os.environ["LONGLINE_SIM_CONTROL"]

    async def invoke(payload: dict[str, Any]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(control, data=orjson.dumps(payload)) as resp,
        ):
            resp.raise_for_status()

    invoker = invoke if settings.mode == "self" else None
    return await run_invocation(
        cfg, context, settings, invoker, watchdog=bool(event.get("watchdog"))
    )


def main() -> None:
    """Say the init phase is over, run one invocation and print its result as one JSON line."""
    deadline = time.time() + float(os.environ["LONGLINE_SIM_TIMEOUT"])
    sys.stdout.write(orjson.dumps({"init_done": deadline}).decode() + "\n")
    sys.stdout.flush()
    result = asyncio.run(_main(deadline))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
