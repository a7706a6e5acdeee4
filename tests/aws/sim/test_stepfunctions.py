"""The option-2 state machine run by the local ASL interpreter, with recording callbacks.

The loop must invoke, wait, count and continue as new with the counter reset, and its history
must stay far below the 25 000-event limit by the documented arithmetic.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from longline.aws.stepfunctions import (
    DEFAULT_CYCLES_PER_EXECUTION,
    EVENTS_PER_CYCLE,
    EVENTS_PER_EXECUTION,
    HISTORY_LIMIT,
    ASLError,
    ExecutionResult,
    Interpreter,
    TaskFailed,
    definition,
    history_events,
    run_local_state_machine,
    validate,
    worst_case_history_events,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:longline-connector"
MACHINE = "arn:aws:states:local:000000000000:stateMachine:longline-loop"
EXECUTION = "arn:aws:states:local:000000000000:execution:longline-loop"


class Recorder:
    """Fake AWS: records every call in order; ``fail`` scripts errors for the next invokes."""

    def __init__(self, fail: list[str] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = list(fail or [])

    async def invoke(self, payload: Any) -> None:
        self.calls.append(("invoke", payload))
        if self.fail:
            raise TaskFailed(self.fail.pop(0), "scripted")

    async def start(self, execution_input: Any) -> None:
        self.calls.append(("start", execution_input))

    async def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", seconds))

    def interpreter(self, asl: dict[str, Any]) -> Interpreter:
        return Interpreter(
            asl, invoke_lambda=self.invoke, start_execution=self.start, sleep=self.sleep
        )


def invoke(name: str, cycle: int) -> tuple[str, Any]:
    payload = {"source": "stepfunctions", "execution": f"{EXECUTION}:{name}", "cycle": cycle}
    return ("invoke", payload)


async def test_three_cycles_invoke_wait_then_continue_as_new() -> None:
    rec = Recorder()
    result = await rec.interpreter(definition(ARN, 840, 3)).run({}, name="first")
    assert result.status == "SUCCEEDED"
    assert rec.calls == [
        invoke("first", 0),
        ("sleep", 840),
        invoke("first", 1),
        ("sleep", 840),
        invoke("first", 2),
        ("sleep", 840),
        ("start", {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": f"{EXECUTION}:first"}),
    ]
    successor = hashlib.sha1(b"first").hexdigest()
    assert result.started == [(successor, rec.calls[-1][1])]
    assert result.output == {"ExecutionArn": f"{EXECUTION}:{successor}"}


async def test_history_of_one_cycle_is_eleven_events_per_aws_rules() -> None:
    result = await Recorder().interpreter(definition(ARN, 60, 1)).run({}, name="x")
    cycle = [
        ("TaskStateEntered", "Invoke"),
        ("TaskScheduled", "Invoke"),
        ("TaskStarted", "Invoke"),
        ("TaskSucceeded", "Invoke"),
        ("TaskStateExited", "Invoke"),
        ("WaitStateEntered", "Wait"),
        ("WaitStateExited", "Wait"),
        ("PassStateEntered", "Count"),
        ("PassStateExited", "Count"),
        ("ChoiceStateEntered", "Loop"),
        ("ChoiceStateExited", "Loop"),
    ]
    assert len(cycle) == EVENTS_PER_CYCLE
    assert result.history == [
        ("ExecutionStarted", None),
        ("PassStateEntered", "Start"),
        ("PassStateExited", "Start"),
        *cycle,
        ("TaskStateEntered", "ContinueAsNew"),
        ("TaskScheduled", "ContinueAsNew"),
        ("TaskStarted", "ContinueAsNew"),
        ("TaskSucceeded", "ContinueAsNew"),
        ("TaskStateExited", "ContinueAsNew"),
        ("ExecutionSucceeded", None),
    ]
    assert len(result.history) == history_events(1) == EVENTS_PER_EXECUTION + EVENTS_PER_CYCLE
    assert result.transitions == 6  # Start, Invoke, Wait, Count, Loop, ContinueAsNew


async def test_default_execution_continues_as_new_far_below_the_history_limit() -> None:
    rec = Recorder()
    asl = definition(ARN, 840)
    result = await rec.interpreter(asl).run({}, name="long")
    invokes = [c[1]["cycle"] for c in rec.calls if c[0] == "invoke"]
    assert invokes == list(range(DEFAULT_CYCLES_PER_EXECUTION))
    assert rec.calls[-1][0] == "start"
    assert [c[0] for c in rec.calls].count("start") == 1
    assert len(result.history) == history_events(1000) == 11_009
    assert result.transitions == 4 * 1000 + 2
    assert worst_case_history_events(1000) == 20_018 < HISTORY_LIMIT


async def test_chained_executions_reset_the_counter_and_hash_their_names() -> None:
    rec = Recorder()
    results = await run_local_state_machine(
        invoke_lambda=rec.invoke,
        handoff_interval_s=5,
        cycles_per_execution=2,
        sleep=rec.sleep,
        executions=3,
    )
    assert [r.status for r in results] == ["SUCCEEDED"] * 3
    names = [r.name for r in results]
    assert names[1] == hashlib.sha1(names[0].encode()).hexdigest()
    assert names[2] == hashlib.sha1(names[1].encode()).hexdigest()
    assert rec.calls == [
        invoke(names[0], 0),
        ("sleep", 5),
        invoke(names[0], 1),
        ("sleep", 5),
        invoke(names[1], 0),
        ("sleep", 5),
        invoke(names[1], 1),
        ("sleep", 5),
        invoke(names[2], 0),
        ("sleep", 5),
        invoke(names[2], 1),
        ("sleep", 5),
    ]


async def test_run_local_state_machine_runs_until_cancelled() -> None:
    invoked: list[int] = []

    async def inv(payload: Any) -> None:
        invoked.append(payload["cycle"])

    async def tick(seconds: float) -> None:
        await asyncio.sleep(0)

    task = asyncio.create_task(
        run_local_state_machine(
            invoke_lambda=inv, handoff_interval_s=1, cycles_per_execution=2, sleep=tick
        )
    )
    while len(invoked) < 7:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert invoked[:7] == [0, 1, 0, 1, 0, 1, 0]


async def test_a_throttled_invoke_is_retried_with_backoff() -> None:
    rec = Recorder(fail=["Lambda.TooManyRequestsException"])
    result = await rec.interpreter(definition(ARN, 30, 1)).run({}, name="r")
    assert rec.calls[:4] == [invoke("r", 0), ("sleep", 2.0), invoke("r", 0), ("sleep", 30)]
    assert len(result.history) == history_events(1, retries=1)
    assert result.history[3:9] == [
        ("TaskStateEntered", "Invoke"),
        ("TaskScheduled", "Invoke"),
        ("TaskStarted", "Invoke"),
        ("TaskFailed", "Invoke"),
        ("TaskScheduled", "Invoke"),
        ("TaskStarted", "Invoke"),
    ]
    assert result.transitions == 7


async def test_an_invoke_failing_every_retry_is_caught_and_the_loop_goes_on() -> None:
    rec = Recorder(fail=["Lambda.ServiceException"] * 4)
    result = await rec.interpreter(definition(ARN, 30, 2)).run({}, name="c")
    assert result.status == "SUCCEEDED"
    assert rec.calls[:9] == [
        invoke("c", 0),
        ("sleep", 2.0),
        invoke("c", 0),
        ("sleep", 4.0),
        invoke("c", 0),
        ("sleep", 8.0),
        invoke("c", 0),
        ("sleep", 30),
        invoke("c", 1),
    ]
    # the caught 4th failure takes the place of TaskSucceeded: 3 retries, 9 more events
    assert len(result.history) == history_events(2, retries=3)


async def test_an_error_not_in_retry_is_caught_at_once() -> None:
    rec = Recorder(fail=["Lambda.ResourceNotFoundException"])
    result = await rec.interpreter(definition(ARN, 30, 1)).run({}, name="n")
    assert result.status == "SUCCEEDED"
    assert rec.calls == [
        invoke("n", 0),
        ("sleep", 30),
        ("start", {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID": f"{EXECUTION}:n"}),
    ]


async def test_a_start_execution_that_keeps_failing_fails_the_execution() -> None:
    rec = Recorder()

    async def refuse(execution_input: Any) -> None:
        rec.calls.append(("start", execution_input))
        raise TaskFailed("StepFunctions.ExecutionLimitExceededException", "too many")

    interp = Interpreter(
        definition(ARN, 30, 1), invoke_lambda=rec.invoke, start_execution=refuse, sleep=rec.sleep
    )
    result = await interp.run({}, name="f")
    assert (result.status, result.error) == (
        "FAILED",
        "StepFunctions.ExecutionLimitExceededException",
    )
    assert [c for c in rec.calls if c[0] == "sleep"] == [
        ("sleep", 30),
        ("sleep", 2.0),
        ("sleep", 4.0),
        ("sleep", 8.0),
    ]
    assert result.history[-1] == ("ExecutionFailed", None)


async def test_an_endless_loop_fails_at_the_history_limit() -> None:
    asl: dict[str, Any] = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "C"}],
                "Default": "B",
            },
            "B": {"Type": "Wait", "Seconds": 1, "Next": "A"},
            "C": {"Type": "Succeed"},
        },
    }
    result = await Recorder().interpreter(asl).run({})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert len(result.history) == HISTORY_LIMIT


def test_definition_is_valid_and_refuses_unsafe_arguments() -> None:
    assert validate(definition(ARN, 840)) == []
    with pytest.raises(ValueError, match="2000 cycles may reach 25000 history events"):
        definition(ARN, 840, 2000)
    with pytest.raises(ValueError, match="handoff_interval_s"):
        definition(ARN, 0)


def test_validate_names_every_structural_problem() -> None:
    asl = {
        "StartAt": "Go",
        "States": {
            "Go": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "Next": "Gone"},
            "Sync": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"InvocationType": "RequestResponse"},
                "End": True,
            },
            "Idle": {"Type": "Wait", "End": True},
            "Both": {"Type": "Pass", "Next": "Go", "End": True},
            "Map": {"Type": "Map", "End": True},
        },
    }
    assert validate(asl) == [
        "Go: Next 'Gone' is not a state",
        "Go: resource 'arn:aws:states:::sqs:sendMessage' is not allowed",
        "Sync: the Lambda must be invoked with InvocationType Event",
        "Idle: a Wait needs Seconds or SecondsPath",
        "Both: needs exactly one of Next and End",
        "Map: unsupported type 'Map'",
        "Sync: not reachable from StartAt",
        "Idle: not reachable from StartAt",
        "Both: not reachable from StartAt",
        "Map: not reachable from StartAt",
        "no terminal state (End, Succeed or Fail) is reachable",
    ]
    with pytest.raises(ASLError, match="invalid definition: Go: Next 'Gone'"):
        Recorder().interpreter(asl)


async def run(states: dict[str, Any], data: Any, rec: Recorder | None = None) -> ExecutionResult:
    first = next(iter(states))
    return (
        await (rec or Recorder())
        .interpreter({"StartAt": first, "States": states})
        .run(data, name="t")
    )


async def test_pass_paths_parameters_and_intrinsics() -> None:
    states = {
        "P": {
            "Type": "Pass",
            "InputPath": "$.in",
            "Parameters": {
                "sum.$": "States.MathAdd($.n, -3)",
                "text.$": "States.Format('n={} of {}', $.n, $$.Execution.Name)",
                "md5.$": "States.Hash('abc', 'MD5')",
                "list.$": "States.Array(1, 'it\\'s', $.items[1])",
                "json.$": "States.JsonToString($.items)",
                "fixed": {"a.$": "$.n"},
            },
            "ResultPath": "$.out.p",
            "OutputPath": "$.out",
            "End": True,
        }
    }
    result = await run(states, {"in": {"n": 10, "items": ["a", "b"]}})
    assert result.output == {
        "p": {
            "sum": 7,
            "text": "n=10 of t",
            "md5": hashlib.md5(b"abc").hexdigest(),
            "list": [1, "it's", "b"],
            "json": '["a","b"]',
            "fixed": {"a": 10},
        }
    }


async def test_choice_comparisons_wait_seconds_path_and_fail() -> None:
    states = {
        "C": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.name", "StringEquals": "stop", "Next": "Stop"},
                {
                    "And": [
                        {"Variable": "$.n", "NumericGreaterThanEquals": 5},
                        {"Not": {"Variable": "$.flag", "BooleanEquals": True}},
                    ],
                    "Next": "W",
                },
                {"Variable": "$.n", "NumericLessThanPath": "$.limit", "Next": "Done"},
            ],
            "Default": "Stop",
        },
        "W": {"Type": "Wait", "SecondsPath": "$.n", "Next": "Done"},
        "Done": {"Type": "Succeed"},
        "Stop": {"Type": "Fail", "Error": "Stopped", "Cause": "asked to"},
    }
    rec = Recorder()
    waited = await run(states, {"name": "go", "n": 7, "flag": False, "limit": 0}, rec)
    assert (waited.status, rec.calls) == ("SUCCEEDED", [("sleep", 7)])
    done = await run(states, {"name": "go", "n": 1, "flag": False, "limit": 2})
    assert done.status == "SUCCEEDED"
    stopped = await run(states, {"name": "stop", "n": 1, "flag": False, "limit": 0})
    assert (stopped.status, stopped.error, stopped.cause) == ("FAILED", "Stopped", "asked to")
    missing = await run(states, {"name": "go"})
    assert (missing.status, missing.error) == ("FAILED", "States.Runtime")


async def test_a_missing_path_fails_with_states_runtime_even_with_a_catch() -> None:
    states = {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"InvocationType": "Event", "Payload": {"x.$": "$.nope"}},
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "End"}],
            "End": True,
        },
        "End": {"Type": "Succeed"},
    }
    rec = Recorder()
    result = await run(states, {}, rec)
    assert (result.status, result.error, rec.calls) == ("FAILED", "States.Runtime", [])


async def test_a_catch_puts_the_error_at_its_result_path() -> None:
    states = {
        "T": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"InvocationType": "Event", "Payload": {}},
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 0}],
            "Catch": [{"ErrorEquals": ["Custom"], "ResultPath": "$.error", "Next": "End"}],
            "End": True,
        },
        "End": {"Type": "Succeed"},
    }
    result = await run(states, {"keep": 1}, Recorder(fail=["Custom"]))
    assert result.output == {"keep": 1, "error": {"Error": "Custom", "Cause": "scripted"}}
