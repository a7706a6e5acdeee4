"""Options 1 and 2: the connector as a Lambda function, chained by itself or by Step Functions.

Both hand each stream over make-before-break between invocations through the DynamoDB store's
leases; they differ only in who starts the next invocation and what heals a broken chain.
"""

from __future__ import annotations

from typing import Any

from longline.aws.stepfunctions import DEFAULT_CYCLES_PER_EXECUTION, definition
from longline.aws.templates.common import (
    CONNECTOR_HANDLER,
    STORE_ACTIONS,
    Settings,
    arn,
    common_parameters,
    environment,
    function,
    function_parameters,
    getatt,
    log_group,
    processor,
    ref,
    role,
    statement,
    sub,
    table_arns,
    table_parameters,
    tables,
    write_logs,
)

__all__ = ["LAMBDA_TIMEOUT", "handoff_interval", "option1", "option2"]

LAMBDA_TIMEOUT = 900
WATCHDOG_RATE = "rate(5 minutes)"
_CONFIG_HELP = (
    "The longline config: YAML text, or a path to a file packaged with the code "
    "(relative to the code root). Its store should be ${LONGLINE_STORE}."
)


def handoff_interval(s: Settings) -> int:
    """Seconds between two invocations: each runs the whole timeout minus the margin."""
    return LAMBDA_TIMEOUT - s.margin_s


def _template(s: Settings, description: str, resources: dict[str, Any]) -> dict[str, Any]:
    params = common_parameters(s, _CONFIG_HELP, "longline.yaml")
    params.update(table_parameters(s))
    params.update(function_parameters())
    params["MaxConcurrency"] = {
        "Type": "Number",
        "Default": 0,
        "MinValue": 0,
        "Description": "Reserved concurrency of the connector (0 = unreserved); 3 caps a "
        "runaway chain at one invocation, its successor and a watchdog start.",
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": description,
        "Parameters": params,
        "Conditions": {
            "LimitConcurrency": {"Fn::Not": [{"Fn::Equals": [ref("MaxConcurrency"), 0]}]}
        },
        "Resources": {**tables(), **resources, **processor(s)},
        "Outputs": {
            "Connector": {"Value": ref("Connector")},
            "ProcessorFailureQueue": {"Value": ref("ProcessorFailures")},
        },
    }


def _connector(s: Settings, mode: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    env = environment(s, {"LONGLINE_MODE": mode, "LONGLINE_MARGIN": str(s.margin_s)})
    fn = function(s, "connector", CONNECTOR_HANDLER, LAMBDA_TIMEOUT, env)
    fn["Properties"]["ReservedConcurrentExecutions"] = {
        "Fn::If": ["LimitConcurrency", ref("MaxConcurrency"), ref("AWS::NoValue")]
    }
    # A successor that could not start within 5 minutes is stale: the watchdog took over.
    fn["Properties"]["EventInvokeConfig"] = {
        "MaximumEventAgeInSeconds": 300,
        "MaximumRetryAttempts": 2,
    }
    statements = [
        write_logs("/aws/lambda/${Name}-connector"),
        statement(STORE_ACTIONS, table_arns()),
        *extra,
    ]
    return {
        "ConnectorLogGroup": log_group("/aws/lambda/${Name}-connector"),
        "ConnectorRole": role("lambda.amazonaws.com", statements),
        "Connector": fn,
    }


def option1(s: Settings) -> dict[str, Any]:
    """Self-chained: near its margin the function invokes itself; a schedule heals the chain."""
    own_arn = arn("lambda", "function:${Name}-connector")  # not GetAtt: the role would cycle
    resources = _connector(s, "self", [statement(["lambda:InvokeFunction"], [own_arn])])
    resources["WatchdogRole"] = role(
        "scheduler.amazonaws.com",
        [statement(["lambda:InvokeFunction"], [getatt("Connector", "Arn")])],
        same_account=True,
    )
    resources["Watchdog"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "Name": sub("${Name}-watchdog"),
            "Description": "Starts the connector when a stream's lease expired (a broken chain).",
            "ScheduleExpression": WATCHDOG_RATE,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": getatt("Connector", "Arn"),
                "RoleArn": getatt("WatchdogRole", "Arn"),
                "Input": '{"watchdog": true}',
                "RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
            },
        },
    }
    return _template(
        s,
        "longline option 1: a self-chained Lambda connector handing over make-before-break, "
        "a watchdog schedule, DynamoDB tables and a stream-triggered processor.",
        resources,
    )


def option2(s: Settings) -> dict[str, Any]:
    """Step Functions: a Standard state machine invokes the function every handoff interval."""
    resources = _connector(s, "stepfunctions", [])
    machine_arn = arn("states", "stateMachine:${Name}-loop")  # not Ref: the role would cycle
    resources["LoopRole"] = role(
        "states.amazonaws.com",
        [
            statement(["lambda:InvokeFunction"], [getatt("Connector", "Arn")]),
            statement(["states:StartExecution"], [machine_arn]),
        ],
        same_account=True,
    )
    resources["Loop"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": sub("${Name}-loop"),
            "StateMachineType": "STANDARD",
            "RoleArn": getatt("LoopRole", "Arn"),
            "Definition": definition(
                "${ConnectorArn}", handoff_interval(s), DEFAULT_CYCLES_PER_EXECUTION
            ),
            "DefinitionSubstitutions": {"ConnectorArn": getatt("Connector", "Arn")},
        },
    }
    resources["LoopRestartRole"] = role(
        "events.amazonaws.com",
        [statement(["states:StartExecution"], [ref("Loop")])],
        same_account=True,
    )
    resources["LoopRestart"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Description": "Starts the loop again when an execution failed or timed out.",
            "State": "ENABLED",
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["FAILED", "TIMED_OUT"], "stateMachineArn": [ref("Loop")]},
            },
            "Targets": [
                {
                    "Id": "restart-loop",
                    "Arn": ref("Loop"),
                    "RoleArn": getatt("LoopRestartRole", "Arn"),
                    "Input": '{"restarted": true}',
                }
            ],
        },
    }
    template = _template(
        s,
        "longline option 2: a Lambda connector looped by a Step Functions Standard state "
        "machine that continues as new, DynamoDB tables and a stream-triggered processor.",
        resources,
    )
    template["Outputs"]["StateMachine"] = {
        "Value": ref("Loop"),
        "Description": "Start it once: aws stepfunctions start-execution --state-machine-arn ...",
    }
    return template
