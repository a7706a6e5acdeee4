"""The Step Functions loop of option 2 (ASL), its history arithmetic, and a local runner.

One Standard execution invokes the connector function asynchronously, waits the handoff
interval, counts the cycle and loops; after ``cycles_per_execution`` cycles it starts a fresh
execution of itself ("continue as new") because an execution fails once its history passes
25 000 events. ``lambda-sim`` runs :func:`definition` through :class:`Interpreter` (from
:mod:`longline.aws.sim.asl_interpreter`), so the local harness exercises the definition that
``longline deploy --option 2`` ships, not a copy.

History arithmetic (Standard workflows, one event per line of the execution history):
a Task that succeeds adds 5 (TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
TaskStateExited), a Wait, Pass or Choice adds 2 (entered, exited), every failed attempt that is
retried adds 3 (TaskScheduled, TaskStarted, TaskFailed). One cycle is Invoke + Wait + Count +
Loop = 5 + 2 + 2 + 2 = 11 events and 4 state transitions; an execution adds 9 more
(ExecutionStarted, Start 2, ContinueAsNew 5, ExecutionSucceeded). 1 000 cycles = 11 009
events; even if every invocation needed all 3 retries (+9 per cycle) it is 20 018 < 25 000.
"""

from __future__ import annotations

import asyncio
from typing import Any

from longline.aws.sim.asl_interpreter import (
    ALLOWED_RESOURCES,
    HISTORY_LIMIT,
    LAMBDA_INVOKE,
    START_EXECUTION,
    ASLError,
    ExecutionResult,
    Interpreter,
    Invoke,
    Sleep,
    TaskFailed,
    validate,
)

__all__ = [
    "ALLOWED_RESOURCES",
    "DEFAULT_CYCLES_PER_EXECUTION",
    "EVENTS_PER_CYCLE",
    "EVENTS_PER_EXECUTION",
    "HISTORY_LIMIT",
    "LAMBDA_INVOKE",
    "START_EXECUTION",
    "ASLError",
    "ExecutionResult",
    "Interpreter",
    "TaskFailed",
    "definition",
    "history_events",
    "run_local_state_machine",
    "validate",
    "worst_case_history_events",
]

DEFAULT_CYCLES_PER_EXECUTION = 1_000
EVENTS_PER_CYCLE = 11  # Invoke 5 + Wait 2 + Count 2 + Loop 2
EVENTS_PER_EXECUTION = 9  # ExecutionStarted 1 + Start 2 + ContinueAsNew 5 + ExecutionSucceeded 1
EVENTS_PER_RETRY = 3  # TaskScheduled, TaskStarted, TaskFailed of the attempt that failed
INVOKE_RETRIES = 3
CONTINUE_RETRIES = 3
_LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def history_events(cycles: int, retries: int = 0) -> int:
    """History events of one execution of :func:`definition` running ``cycles`` cycles."""
    return EVENTS_PER_EXECUTION + EVENTS_PER_CYCLE * cycles + EVENTS_PER_RETRY * retries


def worst_case_history_events(cycles: int) -> int:
    """History events when every task uses every retry it is allowed."""
    return history_events(cycles, retries=cycles * INVOKE_RETRIES + CONTINUE_RETRIES)


def definition(
    function_arn: str,
    handoff_interval_s: int,
    cycles_per_execution: int = DEFAULT_CYCLES_PER_EXECUTION,
) -> dict[str, Any]:
    """The ASL of the loop: invoke (async), wait, count, loop or continue as new.

    ``function_arn`` may be a ``${Placeholder}`` for CloudFormation's DefinitionSubstitutions.
    The successor execution's name is a hash of the current one, so a retried StartExecution
    whose first attempt did succeed finds the same execution instead of starting a second loop.
    """
    if handoff_interval_s < 1:
        raise ValueError("handoff_interval_s must be >= 1 second")
    if cycles_per_execution < 1:
        raise ValueError("cycles_per_execution must be >= 1")
    if worst_case_history_events(cycles_per_execution) >= HISTORY_LIMIT:
        raise ValueError(
            f"{cycles_per_execution} cycles may reach {HISTORY_LIMIT} history events "
            f"(worst case {worst_case_history_events(cycles_per_execution)})"
        )
    retry = {"IntervalSeconds": 2, "BackoffRate": 2.0}
    return {
        "Comment": (
            f"longline: invoke the connector every {handoff_interval_s} s; continue as a new "
            f"execution after {cycles_per_execution} cycles (at most "
            f"{worst_case_history_events(cycles_per_execution)} of {HISTORY_LIMIT} history events)"
        ),
        "StartAt": "Start",
        "States": {
            "Start": {"Type": "Pass", "Result": {"cycle": 0}, "Next": "Invoke"},
            "Invoke": {
                "Type": "Task",
                "Resource": LAMBDA_INVOKE,
                "Parameters": {
                    "FunctionName": function_arn,
                    "InvocationType": "Event",
                    "Payload": {
                        "source": "stepfunctions",
                        "execution.$": "$$.Execution.Id",
                        "cycle.$": "$.cycle",
                    },
                },
                "ResultPath": None,
                "Retry": [{"ErrorEquals": _LAMBDA_ERRORS, "MaxAttempts": INVOKE_RETRIES, **retry}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Wait"}],
                "Next": "Wait",
            },
            "Wait": {"Type": "Wait", "Seconds": handoff_interval_s, "Next": "Count"},
            "Count": {
                "Type": "Pass",
                "Parameters": {"cycle.$": "States.MathAdd($.cycle, 1)"},
                "Next": "Loop",
            },
            "Loop": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.cycle",
                        "NumericLessThan": cycles_per_execution,
                        "Next": "Invoke",
                    }
                ],
                "Default": "ContinueAsNew",
            },
            "ContinueAsNew": {
                "Type": "Task",
                "Resource": START_EXECUTION,
                "Parameters": {
                    "StateMachineArn.$": "$$.StateMachine.Id",
                    "Name.$": "States.Hash($$.Execution.Name, 'SHA-1')",
                    "Input": {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"},
                },
                "Retry": [
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": CONTINUE_RETRIES, **retry}
                ],
                "End": True,
            },
        },
    }


async def run_local_state_machine(
    *,
    invoke_lambda: Invoke,
    handoff_interval_s: int,
    cycles_per_execution: int = DEFAULT_CYCLES_PER_EXECUTION,
    sleep: Sleep = asyncio.sleep,
    executions: int | None = None,
) -> list[ExecutionResult]:
    """Run the loop as deployed, continuing as new, until cancelled (or ``executions`` ran).

    Each StartExecution of the definition queues the next execution, named and fed as the call
    asked; the loop ends when an execution ends without starting a successor.
    """
    asl = definition("arn:aws:lambda:local:000000000000:function:longline-connector",
                     handoff_interval_s, cycles_per_execution)  # fmt: skip
    queue: list[Any] = []

    async def start(execution_input: Any) -> None:
        queue.append(execution_input)

    interpreter = Interpreter(asl, invoke_lambda=invoke_lambda, start_execution=start, sleep=sleep)
    results: list[ExecutionResult] = []
    name: str | None = None
    execution_input: Any = {}
    while executions is None or len(results) < executions:
        result = await interpreter.run(execution_input, name=name)
        results.append(result)
        if not queue:
            break
        execution_input = queue.pop(0)
        name = result.started[-1][0]
    return results
