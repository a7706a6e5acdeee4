"""Pieces every template shares: intrinsics, parameters, the tables, roles, the processor.

Least privilege is built in here: a role is a list of statements, each naming the actions and
the exact resources it needs; ARNs that would create a reference cycle (a function invoking
itself, a state machine starting itself) are built from names with ``Fn::Sub``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from longline.stores.dynamodb.schema import TABLES, TableSpec

__all__ = [
    "CONNECTOR_HANDLER",
    "PROCESSOR_HANDLER",
    "PROCESSOR_WRITES",
    "STORE_ACTIONS",
    "TABLES",
    "Settings",
    "getatt",
    "ref",
    "secret_parameter",
    "sub",
]

CONNECTOR_HANDLER = "longline.aws.lambda_handler.handler"
PROCESSOR_HANDLER = "longline.aws.stream_processor.handler"
# python3.11 can no longer be chosen for new functions (creation blocked since 2026-07-31);
# longline supports 3.11+, so the functions use the newest runtime with the longest support.
RUNTIME = "python3.13"
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9-]{2,31}$"
# What the DynamoDB store calls (TransactWriteItems is authorized per item action).
STORE_READS = ["dynamodb:BatchGetItem", "dynamodb:DescribeTable", "dynamodb:GetItem",
               "dynamodb:Query", "dynamodb:Scan"]  # fmt: skip
STORE_WRITES = ["dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
                "dynamodb:PutItem", "dynamodb:UpdateItem"]  # fmt: skip
STORE_ACTIONS = STORE_READS + STORE_WRITES
PROCESSOR_WRITES = ("delivery", "deadletters")  # the processor reads all, writes only these
LOG_RETENTION = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653]


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``longline deploy`` decided: names, the inline config (None = a parameter), secrets.

    ``config`` is the config text as the option needs it; ``secrets`` are the ``${VAR}`` names
    it references, each becoming a NoEcho parameter passed as an environment variable.
    """

    name: str = "longline"
    config: str | None = None
    secrets: tuple[str, ...] = ()
    margin_s: int = 60
    code_uri: str = "build"


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def sub(text: str) -> dict[str, Any]:
    return {"Fn::Sub": text}


def getatt(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def arn(service: str, resource: str) -> dict[str, Any]:
    """An ARN in this stack's partition, region and account (``resource`` may use ${...})."""
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def secret_parameter(var: str) -> str:
    """The parameter name of an environment variable: ``X_BEARER_TOKEN`` -> ``EnvXBearerToken``."""
    return "Env" + "".join(p[:1].upper() + p[1:].lower() for p in re.split(r"_+", var) if p)


def table_id(spec: TableSpec) -> str:
    return spec.suffix.capitalize() + "Table"


def common_parameters(s: Settings, config_help: str, config_default: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Name": {
            "Type": "String",
            "Default": s.name,
            "AllowedPattern": NAME_PATTERN,
            "Description": "Prefix of every resource name (functions, log groups, ...).",
        },
        "LogRetentionDays": {"Type": "Number", "Default": 30, "AllowedValues": LOG_RETENTION},
    }
    if s.config is None:
        params["LonglineConfig"] = {"Type": "String", "NoEcho": True, "Description": config_help}
        if config_default is not None:
            params["LonglineConfig"]["Default"] = config_default
    for var in s.secrets:
        params[secret_parameter(var)] = {
            "Type": "String",
            "NoEcho": True,
            "Description": f"Value of ${{{var}}} in the longline config.",
        }
    return params


def table_parameters(s: Settings) -> dict[str, Any]:
    return {
        "TablePrefix": {
            "Type": "String",
            "Default": s.name,
            "AllowedPattern": "^[A-Za-z0-9_.-]{3,200}$",
            "Description": "DynamoDB tables are PREFIX_events, PREFIX_streams, ...",
        }
    }


def tables() -> dict[str, Any]:
    """One on-demand table per store table; kept when the stack is deleted (they hold data)."""
    out: dict[str, Any] = {}
    for spec in TABLES:
        keys = [spec.hash_key] + ([spec.range_key] if spec.range_key else [])
        props: dict[str, Any] = {
            "TableName": sub(f"${{TablePrefix}}_{spec.suffix}"),
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, t in keys],
            "KeySchema": [
                {"AttributeName": a, "KeyType": kind}
                for (a, _), kind in zip(keys, ("HASH", "RANGE"), strict=False)
            ],
            "SSESpecification": {"SSEEnabled": True},
        }
        if spec.stream:
            props["StreamSpecification"] = {"StreamViewType": "NEW_IMAGE"}
        out[table_id(spec)] = {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": props,
        }
    return out


def table_arns(suffixes: tuple[str, ...] | None = None) -> list[Any]:
    """ARNs of the tables (all, or those with the given suffixes), and of their indexes."""
    out: list[Any] = []
    for spec in TABLES:
        if suffixes is None or spec.suffix in suffixes:
            out += [getatt(table_id(spec), "Arn"), sub(f"${{{table_id(spec)}.Arn}}/index/*")]
    return out


def statement(actions: list[str], resources: list[Any]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def role(
    principal: str,
    statements: list[dict[str, Any]],
    *,
    same_account: bool = False,
    managed: list[Any] | None = None,
) -> dict[str, Any]:
    """An IAM role ``principal`` assumes, with one inline policy made of ``statements``."""
    trust: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": principal},
        "Action": "sts:AssumeRole",
    }
    if same_account:  # confused-deputy guard recommended for these services
        trust["Condition"] = {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    props: dict[str, Any] = {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]}
    }
    if statements:
        props["Policies"] = [
            {
                "PolicyName": "least-privilege",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
            }
        ]
    if managed:
        props["ManagedPolicyArns"] = managed
    return {"Type": "AWS::IAM::Role", "Properties": props}


def log_group(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {"LogGroupName": sub(name), "RetentionInDays": ref("LogRetentionDays")},
    }


def write_logs(group: str) -> dict[str, Any]:
    """Write to one log group (created by the stack, so no logs:CreateLogGroup)."""
    resource = arn("logs", f"log-group:{group}:*")
    return statement(["logs:CreateLogStream", "logs:PutLogEvents"], [resource])


def environment(s: Settings, extra: dict[str, Any]) -> dict[str, Any]:
    """LONGLINE_CONFIG (inline or the parameter), the store URL, and the secrets."""
    env: dict[str, Any] = {
        "LONGLINE_CONFIG": s.config if s.config is not None else ref("LonglineConfig"),
        "LONGLINE_STORE": sub("dynamodb://${TablePrefix}?region=${AWS::Region}"),
    }
    env.update(extra)
    env.update({var: ref(secret_parameter(var)) for var in s.secrets})
    return env


def function(
    s: Settings, suffix: str, handler: str, timeout: int, env: dict[str, Any]
) -> dict[str, Any]:
    """A SAM function ``NAME-suffix`` running ``handler`` with its own role and log group."""
    logical = suffix.capitalize()
    return {
        "Type": "AWS::Serverless::Function",
        "DependsOn": [f"{logical}LogGroup"],
        "Properties": {
            "FunctionName": sub(f"${{Name}}-{suffix}"),
            "CodeUri": s.code_uri,
            "Handler": handler,
            "Runtime": RUNTIME,
            "Architectures": [ref("Architecture")],
            "MemorySize": ref("MemorySize"),
            "Timeout": timeout,
            "Role": getatt(f"{logical}Role", "Arn"),
            "Environment": {"Variables": env},
        },
    }


def function_parameters() -> dict[str, Any]:
    return {
        "Architecture": {
            "Type": "String",
            "Default": "arm64",
            "AllowedValues": ["arm64", "x86_64"],
        },
        "MemorySize": {
            "Type": "Number",
            "Default": 128,
            "MinValue": 128,
            "MaxValue": 10240,
            "Description": "MB per function; `longline cost` says when 128 is too little.",
        },
    }


def processor(s: Settings) -> dict[str, Any]:
    """The Event Processor: a function fed by the events table's stream, failures to a queue."""
    events = next(t for t in TABLES if t.stream)
    stream_arn = getatt(table_id(events), "StreamArn")
    writes = tuple(t for t in PROCESSOR_WRITES if t in {spec.suffix for spec in TABLES})
    statements = [
        write_logs("/aws/lambda/${Name}-processor"),
        statement(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            [stream_arn],
        ),
        # A DynamoDB trigger needs ListStreams, which has no resource-level permissions: AWS
        # requires "*". It only lists stream ARNs; reading any stream stays scoped above.
        statement(["dynamodb:ListStreams"], ["*"]),
        statement(STORE_READS, table_arns()),
        statement(["sqs:SendMessage"], [getatt("ProcessorFailures", "Arn")]),
    ]
    if writes:
        statements.append(statement(STORE_WRITES, table_arns(writes)))
    return {
        "ProcessorLogGroup": log_group("/aws/lambda/${Name}-processor"),
        "ProcessorRole": role("lambda.amazonaws.com", statements),
        "Processor": function(s, "processor", PROCESSOR_HANDLER, 120, environment(s, {})),
        "ProcessorFailures": {
            "Type": "AWS::SQS::Queue",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
        },
        "ProcessorTrigger": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": stream_arn,
                "FunctionName": ref("Processor"),
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 100,
                "MaximumBatchingWindowInSeconds": 1,
                "BisectBatchOnFunctionError": True,
                "MaximumRetryAttempts": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": {
                    "OnFailure": {"Destination": getatt("ProcessorFailures", "Arn")}
                },
            },
        },
    }
