"""moto's DynamoDB in server mode for the DynamoDB scenarios, on a free loopback port.

It serves one request at a time, as the test suite's fixture does (tests/services.py): moto's
threaded default is not atomic for cancelled transactions, DynamoDB is. moto also deep-copies a
whole table once per *item* of a ``TransactWriteItems`` (to roll back), so a 99-item
transaction copies each table ~50 times; here each table is copied once per transaction (the
same rollback, ~50 times less work). It is still O(table) per transaction, so the scenarios
keep their tables to a few thousand items.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_ONE_AT_A_TIME = """
import copy, sys, types
import moto.dynamodb.models as models
import moto.server as server

copies = None  # id(table) -> its copy, during one TransactWriteItems

def deepcopy(obj, memo=None):
    if copies is None:
        return copy.deepcopy(obj, memo)
    if id(obj) not in copies:
        copies[id(obj)] = copy.deepcopy(obj)
    return copies[id(obj)]

models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
transact = models.DynamoDBBackend.transact_write_items

def transact_once(self, items):
    global copies
    copies = {}
    try:
        return transact(self, items)
    finally:
        copies = None

models.DynamoDBBackend.transact_write_items = transact_once
run = server.run_simple
server.run_simple = lambda *a, **k: run(*a, **{**k, "threaded": False})
server.main(sys.argv[1:])
"""


def unavailable() -> str | None:
    """Why moto cannot run here (None: it can)."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        return f"moto[server] and boto3 are needed: {exc}"
    return None


@contextlib.asynccontextmanager
async def moto_server() -> AsyncIterator[str]:
    """``http://127.0.0.1:PORT`` of a fresh moto server; dummy AWS credentials in
    ``os.environ`` meanwhile (the `longline` subprocesses inherit them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ONE_AT_A_TIME, "-p", str(port), "-H", "127.0.0.1",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if proc.returncode is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
