"""Option 4: one EC2 instance captures, stores (SQLite on its EBS volume) and processes.

The instance needs no AWS permissions for its work; its role only carries Session Manager (so
no SSH port is open) when ``EnableSessionManager`` is true. User data installs longline in a
virtualenv, writes the config and its secrets, and enables the packaged systemd unit.
"""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

from longline.aws.templates.common import (
    Settings,
    common_parameters,
    getatt,
    ref,
    secret_parameter,
    sub,
)

__all__ = ["USER_DATA_LIMIT", "option4", "unit_text", "user_data_script"]

USER_DATA_LIMIT = 16 * 1024  # bytes of user data before base64
AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
_CONFIG_HELP = (
    "The longline config as YAML text (a one-line JSON object works), written to "
    "/etc/longline/longline.yaml. Empty: copy the file there later and start the service."
)


def _package_text(name: str) -> str:
    return resources.files("longline.aws.templates").joinpath(name).read_text(encoding="utf-8")


def unit_text() -> str:
    """The systemd unit (also in the repository as deploy/systemd/longline.service)."""
    return _package_text("longline.service")


def user_data_script() -> str:
    """The first-boot script, a ``Fn::Sub`` template over Package, Config, Env and Unit."""
    return _package_text("ec2-user-data.sh")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _parameters(s: Settings) -> dict[str, Any]:
    params = common_parameters(s, _CONFIG_HELP, "")
    del params["LogRetentionDays"]  # logs stay in the journal on the instance
    params.update(
        {
            "InstanceType": {
                "Type": "String",
                "Default": "t4g.nano",
                "Description": "An Arm (Graviton) type matches the default image.",
            },
            "ImageId": {
                "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                "Default": AMI,
                "Description": "Amazon Linux 2023; use the x86_64 image for an Intel/AMD type.",
            },
            "VolumeSize": {"Type": "Number", "Default": 8, "MinValue": 8, "MaxValue": 16384},
            "VpcId": {"Type": "AWS::EC2::VPC::Id"},
            "SubnetId": {
                "Type": "AWS::EC2::Subnet::Id",
                "Description": "A subnet with a route to the provider (a public IP or a NAT).",
            },
            "LonglinePackage": {
                "Type": "String",
                "Default": "longline",
                "AllowedPattern": "^[^'\\s]+$",
                "Description": "What pip installs: longline, a wheel URL or git+https://...",
            },
            "EnableSessionManager": {
                "Type": "String",
                "Default": "true",
                "AllowedValues": ["true", "false"],
                "Description": "Reach the instance with SSM Session Manager (no SSH port).",
            },
        }
    )
    return params


def _user_data(s: Settings) -> dict[str, Any]:
    config: Any = _b64(s.config) if s.config is not None else {"Fn::Base64": ref("LonglineConfig")}
    env: Any = ""
    if s.secrets:
        lines: list[Any] = []
        for var in s.secrets:
            lines += [f"{var}=", ref(secret_parameter(var)), "\n"]
        env = {"Fn::Base64": {"Fn::Join": ["", lines]}}
    variables = {
        "Package": ref("LonglinePackage"),
        "Config": config,
        "Env": env,
        "Unit": _b64(unit_text()),
    }
    return {"Fn::Base64": {"Fn::Sub": [user_data_script(), variables]}}


def option4(s: Settings) -> dict[str, Any]:
    """Role and profile, security group, launch template (IMDSv2, encrypted gp3), instance."""
    ssm_core = sub("arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore")
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    resources_: dict[str, Any] = {
        "InstanceRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]},
                "ManagedPolicyArns": {
                    "Fn::If": ["SessionManager", [ssm_core], ref("AWS::NoValue")]
                },
            },
        },
        "InstanceProfile": {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"Roles": [ref("InstanceRole")]},
        },
        "InstanceSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "longline server: outbound connections only, nothing inbound",
                "VpcId": ref("VpcId"),
                "SecurityGroupEgress": [
                    {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0", "Description": "providers, updates"}
                ],
            },
        },
        "LaunchTemplate": {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateData": {
                    "ImageId": ref("ImageId"),
                    "InstanceType": ref("InstanceType"),
                    "IamInstanceProfile": {"Arn": getatt("InstanceProfile", "Arn")},
                    "SecurityGroupIds": [ref("InstanceSecurityGroup")],
                    "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
                    "BlockDeviceMappings": [
                        {
                            "DeviceName": "/dev/xvda",
                            "Ebs": {
                                "VolumeSize": ref("VolumeSize"),
                                "VolumeType": "gp3",
                                "Encrypted": True,
                            },
                        }
                    ],
                    "UserData": _user_data(s),
                }
            },
        },
        "Instance": {
            "Type": "AWS::EC2::Instance",
            "Properties": {
                "LaunchTemplate": {
                    "LaunchTemplateId": ref("LaunchTemplate"),
                    "Version": getatt("LaunchTemplate", "LatestVersionNumber"),
                },
                "SubnetId": ref("SubnetId"),
                "Tags": [{"Key": "Name", "Value": sub("${Name}")}],
            },
        },
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "longline option 4: one EC2 instance capturing and processing "
        "in-process, with SQLite on its EBS volume.",
        "Parameters": _parameters(s),
        "Conditions": {"SessionManager": {"Fn::Equals": [ref("EnableSessionManager"), "true"]}},
        "Resources": resources_,
        "Outputs": {"Instance": {"Value": ref("Instance")}},
    }
