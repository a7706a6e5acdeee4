"""Option 3: ``DesiredCount`` Fargate tasks hold the connections as ``longline run --worker``,
sharing the streams through leases in the DynamoDB ``streams`` table; DynamoDB and a
stream-fed processor do the rest.

The workers balance the streams among themselves (lease stealing toward a fair share), a dead
task's streams are taken over within about the lease ttl, and a moved stream is handed over
make-before-break with epoch fencing. A deployment starts new tasks before stopping old ones
(200 % maximum, 100 % minimum healthy); a stopping task releases its leases on SIGTERM.
"""

from __future__ import annotations

from typing import Any

from longline.aws.templates.common import (
    STORE_ACTIONS,
    Settings,
    arn,
    common_parameters,
    environment,
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

__all__ = ["CONTAINER_SCRIPT", "option3"]

# The image runs `longline run FILE --worker`; an inline config is written to a file first.
_WORKER = '--worker --lease-ttl "${LONGLINE_LEASE_TTL:-15s}"'
CONTAINER_SCRIPT = (
    f'if [ -f "$LONGLINE_CONFIG" ]; then exec longline run "$LONGLINE_CONFIG" {_WORKER}; fi; '
    'f="${TMPDIR:-/tmp}/longline.yaml"; '
    f'printf \'%s\\n\' "$LONGLINE_CONFIG" > "$f" && exec longline run "$f" {_WORKER}'
)
_CONFIG_HELP = (
    "The longline config: YAML text, or a path inside the image (the Dockerfile's default is "
    "/config/longline.yaml). Its store should be ${LONGLINE_STORE}."
)


def _parameters(s: Settings) -> dict[str, Any]:
    params = common_parameters(s, _CONFIG_HELP, "/config/longline.yaml")
    params.update(table_parameters(s))
    params.update(function_parameters())  # the processor function
    params.update(
        {
            "Image": {"Type": "String", "Description": "The image built from the Dockerfile."},
            "CpuArchitecture": {
                "Type": "String",
                "Default": "ARM64",
                "AllowedValues": ["ARM64", "X86_64"],
                "Description": "Must match the image (docker buildx --platform linux/arm64).",
            },
            "DesiredCount": {
                "Type": "Number",
                "Default": 2,
                "MinValue": 1,
                "Description": "Fargate tasks running `longline run --worker`: the streams are "
                "shared evenly among them, and a dead task's are taken over by the others.",
            },
            "LeaseTtl": {
                "Type": "String",
                "Default": "15s",
                "AllowedPattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m)$",
                "Description": "How long a dead task's leases block its streams (e.g. 15s).",
            },
            "TaskCpu": {"Type": "String", "Default": "256"},
            "TaskMemory": {"Type": "String", "Default": "512"},
            "VpcId": {"Type": "AWS::EC2::VPC::Id"},
            "SubnetIds": {
                "Type": "List<AWS::EC2::Subnet::Id>",
                "Description": "Subnets with a route to the provider (internet or NAT gateway).",
            },
            "AssignPublicIp": {
                "Type": "String",
                "Default": "ENABLED",
                "AllowedValues": ["ENABLED", "DISABLED"],
                "Description": "DISABLED needs a NAT gateway to reach the provider.",
            },
        }
    )
    return params


def option3(s: Settings) -> dict[str, Any]:
    """Cluster, task definition, a service of ``DesiredCount`` worker tasks, roles, log group,
    tables, processor."""
    group = "/ecs/${Name}"
    ecr_pull = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer"]  # fmt: skip
    resources: dict[str, Any] = {
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": sub("${Name}")}},
        "TaskLogGroup": log_group(group),
        "ExecutionRole": role(
            "ecs-tasks.amazonaws.com",
            [
                # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
                statement(["ecr:GetAuthorizationToken"], ["*"]),
                statement(ecr_pull, [arn("ecr", "repository/*")]),
                write_logs(group),
            ],
        ),
        "TaskRole": role("ecs-tasks.amazonaws.com", [statement(STORE_ACTIONS, table_arns())]),
        "TaskDefinition": {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": sub("${Name}"),
                "RequiresCompatibilities": ["FARGATE"],
                "NetworkMode": "awsvpc",
                "Cpu": ref("TaskCpu"),
                "Memory": ref("TaskMemory"),
                "RuntimePlatform": {
                    "CpuArchitecture": ref("CpuArchitecture"),
                    "OperatingSystemFamily": "LINUX",
                },
                "ExecutionRoleArn": getatt("ExecutionRole", "Arn"),
                "TaskRoleArn": getatt("TaskRole", "Arn"),
                "ContainerDefinitions": [
                    {
                        "Name": "longline",
                        "Image": ref("Image"),
                        "Essential": True,
                        "EntryPoint": ["sh", "-c"],
                        "Command": [CONTAINER_SCRIPT],
                        "Environment": [
                            {"Name": k, "Value": v} for k, v in environment(s, {}).items()
                        ]
                        + [{"Name": "LONGLINE_LEASE_TTL", "Value": ref("LeaseTtl")}],
                        "StopTimeout": 60,
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {
                                "awslogs-group": ref("TaskLogGroup"),
                                "awslogs-region": ref("AWS::Region"),
                                "awslogs-stream-prefix": "longline",
                            },
                        },
                    }
                ],
            },
        },
        "TaskSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "longline task: outbound connections only, nothing inbound",
                "VpcId": ref("VpcId"),
                "SecurityGroupEgress": [
                    {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "providers, AWS"}
                ],
            },
        },
        "Service": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "ServiceName": sub("${Name}"),
                "Cluster": ref("Cluster"),
                "TaskDefinition": ref("TaskDefinition"),
                "LaunchType": "FARGATE",
                "DesiredCount": ref("DesiredCount"),
                "DeploymentConfiguration": {
                    "MinimumHealthyPercent": 100,
                    "MaximumPercent": 200,
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                },
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "AssignPublicIp": ref("AssignPublicIp"),
                        "Subnets": ref("SubnetIds"),
                        "SecurityGroups": [ref("TaskSecurityGroup")],
                    }
                },
            },
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "longline option 3: Fargate tasks holding the connections as workers "
        "sharing the streams through DynamoDB leases, DynamoDB tables and a stream-triggered "
        "processor function.",
        "Parameters": _parameters(s),
        "Resources": {**tables(), **resources, **processor(s)},
        "Outputs": {
            "Service": {"Value": getatt("Service", "Name")},
            "ProcessorFailureQueue": {"Value": ref("ProcessorFailures")},
        },
    }
