"""A local interpreter for the Amazon States Language subset longline's state machine uses.

``lambda-sim`` and the tests run the very definition ``longline deploy --option 2`` ships
through :class:`Interpreter`, with injected side effects (invoke, start execution, sleep) and
a history counted per AWS rules, so the loop's continue-as-new arithmetic can be checked.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from longline.aws.sim._asl import (
    ASLError,
    TaskFailed,
    choose,
    evaluate,
    matches,
    read_path,
    write_path,
)

__all__ = [
    "ALLOWED_RESOURCES",
    "HISTORY_LIMIT",
    "LAMBDA_INVOKE",
    "START_EXECUTION",
    "ASLError",
    "ExecutionResult",
    "Interpreter",
    "Invoke",
    "Sleep",
    "TaskFailed",
    "validate",
]

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
START_EXECUTION = "arn:aws:states:::states:startExecution"
ALLOWED_RESOURCES = frozenset({LAMBDA_INVOKE, START_EXECUTION})
HISTORY_LIMIT = 25_000
_TERMINAL_TYPES = ("Succeed", "Fail")
_TYPES = ("Task", "Wait", "Pass", "Choice", "Succeed", "Fail")


def _targets(state: dict[str, Any]) -> list[str]:
    out = [state["Next"]] if "Next" in state else []
    out += [c["Next"] for c in state.get("Catch", []) if "Next" in c]
    if state.get("Type") == "Choice":
        out += [c.get("Next", "") for c in state.get("Choices", [])]
        out += [state["Default"]] if "Default" in state else []
    return out


def validate(asl: dict[str, Any]) -> list[str]:
    """Structural problems of an ASL definition (empty when it is sound), as AWS would see them.

    Checks what the interpreter relies on: StartAt and every Next exist, each non-terminal
    state says where to go, a terminal state is reachable, every state is reachable, and Tasks
    use only the allowed resources (the Lambda invoke asynchronously).
    """
    states: dict[str, Any] = asl.get("States") or {}
    problems: list[str] = []
    if asl.get("StartAt") not in states:
        problems.append(f"StartAt {asl.get('StartAt')!r} is not a state")
    for name, st in states.items():
        kind = st.get("Type")
        if kind not in _TYPES:
            problems.append(f"{name}: unsupported type {kind!r}")
            continue
        for target in _targets(st):
            if target not in states:
                problems.append(f"{name}: Next {target!r} is not a state")
        ends = kind in _TERMINAL_TYPES or st.get("End") is True
        if kind == "Choice":
            if not st.get("Choices"):
                problems.append(f"{name}: a Choice needs Choices")
        elif ends == ("Next" in st):
            problems.append(f"{name}: needs exactly one of Next and End")
        if kind == "Task":
            resource = st.get("Resource")
            if resource not in ALLOWED_RESOURCES:
                problems.append(f"{name}: resource {resource!r} is not allowed")
            elif resource == LAMBDA_INVOKE and (
                st.get("Parameters", {}).get("InvocationType") != "Event"
            ):
                problems.append(f"{name}: the Lambda must be invoked with InvocationType Event")
        if kind == "Wait" and not ({"Seconds", "SecondsPath"} & set(st)):
            problems.append(f"{name}: a Wait needs Seconds or SecondsPath")
    seen: set[str] = set()
    todo = [asl.get("StartAt", "")]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo += _targets(states[name])
    problems += [f"{name}: not reachable from StartAt" for name in states if name not in seen]
    if not any(
        states[n].get("Type") in _TERMINAL_TYPES or states[n].get("End") is True for n in seen
    ):
        problems.append("no terminal state (End, Succeed or Fail) is reachable")
    return problems


Invoke = Callable[[Any], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class ExecutionResult:
    """How one execution ended: status, output or error, and the history it produced."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = "RUNNING"
        self.output: Any = None
        self.error: str | None = None
        self.cause: str | None = None
        self.history: list[tuple[str, str | None]] = []  # (event type, state name)
        self.transitions = 0  # billed state transitions (states entered + retries)
        self.started: list[tuple[str | None, Any]] = []  # (name, input) of StartExecution calls

    def __repr__(self) -> str:
        return f"ExecutionResult({self.name!r}, {self.status}, {len(self.history)} events)"


class Interpreter:
    """Runs one ASL definition locally with injected side effects.

    Supports Task (``lambda:invoke`` with InvocationType Event, ``states:startExecution``),
    Wait (Seconds, SecondsPath), Pass, Choice, Succeed and Fail; InputPath, Parameters (``.$``
    paths, ``$$`` context, States.MathAdd/Format/Hash/UUID), ResultSelector, ResultPath,
    OutputPath, Retry and Catch. Approximations: no timeouts or heartbeats, no jitter, the
    history counts events as documented in this module; a callback raises :class:`TaskFailed`
    to simulate an AWS error, and any other exception propagates (a harness bug, not AWS).
    """

    def __init__(
        self,
        asl: dict[str, Any],
        *,
        invoke_lambda: Invoke,
        start_execution: Invoke,
        sleep: Sleep = asyncio.sleep,
        state_machine_arn: str = "arn:aws:states:local:000000000000:stateMachine:longline-loop",
    ) -> None:
        problems = validate(asl)
        if problems:
            raise ASLError("invalid definition: " + "; ".join(problems))
        self.asl = asl
        self.invoke_lambda = invoke_lambda
        self.start_execution = start_execution
        self.sleep = sleep
        self.arn = state_machine_arn

    async def run(self, execution_input: Any = None, name: str | None = None) -> ExecutionResult:
        """Run one execution to its end (or until the history limit fails it)."""
        result = ExecutionResult(name or str(uuid.uuid4()))
        data = {} if execution_input is None else execution_input
        ctx: dict[str, Any] = {
            "Execution": {
                "Id": self.arn.replace(":stateMachine:", ":execution:") + ":" + result.name,
                "Name": result.name,
                "Input": data,
            },
            "StateMachine": {"Id": self.arn, "Name": self.arn.rsplit(":", 1)[-1]},
            "State": {},
        }
        self._event(result, "ExecutionStarted", None)
        current: str | None = self.asl["StartAt"]
        try:
            while current is not None:
                current, data = await self._step(current, data, ctx, result)
        except TaskFailed as failure:
            return self._end(result, "FAILED", error=failure.error, cause=failure.cause)
        except _HistoryFull:
            return self._end(result, "FAILED", "States.Runtime", "history limit exceeded")
        return self._end(result, "SUCCEEDED", output=data)

    def _end(
        self,
        result: ExecutionResult,
        status: str,
        error: str | None = None,
        cause: str | None = None,
        output: Any = None,
    ) -> ExecutionResult:
        result.status, result.error, result.cause, result.output = status, error, cause, output
        kind = "ExecutionSucceeded" if status == "SUCCEEDED" else "ExecutionFailed"
        result.history.append((kind, None))
        return result

    def _event(self, result: ExecutionResult, kind: str, state: str | None) -> None:
        if len(result.history) >= HISTORY_LIMIT - 1:  # room for the closing event
            raise _HistoryFull
        result.history.append((kind, state))

    async def _step(
        self, name: str, raw: Any, ctx: dict[str, Any], result: ExecutionResult
    ) -> tuple[str | None, Any]:
        st = self.asl["States"][name]
        kind = st["Type"]
        ctx["State"] = {"Name": name}
        result.transitions += 1
        self._event(result, f"{kind}StateEntered", name)
        if kind == "Fail":
            raise TaskFailed(st.get("Error", "States.Fail"), st.get("Cause", ""))
        data = read_path(st.get("InputPath", "$"), raw, ctx)
        nxt: str | None = st.get("Next")
        if kind == "Pass":
            value = evaluate(st["Parameters"], data, ctx) if "Parameters" in st else data
            out = write_path(st.get("ResultPath", "$"), data, st.get("Result", value))
        elif kind == "Wait":
            seconds = st["Seconds"] if "Seconds" in st else read_path(st["SecondsPath"], data, ctx)
            if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
                raise TaskFailed("States.Runtime", f"{name}: wait seconds must be an integer >= 0")
            await self.sleep(seconds)
            out = data
        elif kind == "Choice":
            nxt, out = choose(st, data, ctx), data
        elif kind == "Task":
            caught, out = await self._task(name, st, data, ctx, result)
            if caught is not None:  # a Catch skips OutputPath and overrides End
                self._event(result, "TaskStateExited", name)
                return caught, out
        else:  # Succeed
            out, nxt = data, None
        out = read_path(st.get("OutputPath", "$"), out, ctx)
        self._event(result, f"{kind}StateExited", name)
        return (None if st.get("End") else nxt), out

    async def _task(
        self, name: str, st: dict[str, Any], data: Any, ctx: dict[str, Any], result: ExecutionResult
    ) -> tuple[str | None, Any]:
        """Run a Task with its retries; returns (the Catch's Next or None, the output)."""
        params = evaluate(st.get("Parameters", {}), data, ctx)
        attempts: dict[int, int] = {}
        while True:
            self._event(result, "TaskScheduled", name)
            self._event(result, "TaskStarted", name)
            try:
                raw = await self._call(st["Resource"], params, result)
            except TaskFailed as failure:
                self._event(result, "TaskFailed", name)
                delay = self._retry_delay(st.get("Retry", []), failure.error, attempts)
                if delay is not None:
                    result.transitions += 1
                    await self.sleep(delay)
                    continue
                for catcher in st.get("Catch", []):
                    if matches(catcher["ErrorEquals"], failure.error):
                        error = {"Error": failure.error, "Cause": failure.cause}
                        return catcher["Next"], write_path(
                            catcher.get("ResultPath", "$"), data, error
                        )
                raise
            self._event(result, "TaskSucceeded", name)
            if "ResultSelector" in st:
                raw = evaluate(st["ResultSelector"], raw, ctx)
            return None, write_path(st.get("ResultPath", "$"), data, raw)

    @staticmethod
    def _retry_delay(
        retriers: list[dict[str, Any]], error: str, attempts: dict[int, int]
    ) -> float | None:
        for i, retrier in enumerate(retriers):
            if not matches(retrier["ErrorEquals"], error):
                continue
            done = attempts.get(i, 0)
            if done >= retrier.get("MaxAttempts", 3):
                return None
            attempts[i] = done + 1
            delay = float(retrier.get("IntervalSeconds", 1)) * (
                float(retrier.get("BackoffRate", 2.0)) ** done
            )
            return min(delay, float(retrier.get("MaxDelaySeconds", delay)))
        return None

    async def _call(self, resource: str, params: dict[str, Any], result: ExecutionResult) -> Any:
        if resource == LAMBDA_INVOKE:
            await self.invoke_lambda(params.get("Payload"))
            return {"StatusCode": 202, "Payload": ""}
        name, given = params.get("Name"), params.get("Input")
        result.started.append((name, given))
        await self.start_execution(given)
        target = str(params.get("StateMachineArn", self.arn))
        return {"ExecutionArn": target.replace(":stateMachine:", ":execution:") + f":{name}"}


class _HistoryFull(Exception):
    """The execution reached the history limit."""
