"""``longline deploy``: the four templates pass cfn-lint, grant least privilege, and carry the
config, the tables the store uses, the state machine and the processor trigger they promise."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import lint
from cfnlint.data import AdditionalSpecs
from cfnlint.helpers import load_resource
from click.testing import CliRunner, Result

from longline.aws.stepfunctions import ALLOWED_RESOURCES, validate
from longline.aws.templates.ec2 import unit_text, user_data_script
from longline.aws.templates.ecs import CONTAINER_SCRIPT
from longline.cli.aws import deploy_command
from longline.stores.dynamodb.schema import TABLES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
# a comment that only option 4 keeps
store: sqlite:///local.db
streams:
  - name: wiki
    transport: sse
    url: https://stream.wikimedia.org/v2/stream/recentchange
    headers:
      Authorization: Bearer ${WIKI_TOKEN}
  - name: trades
    transport: ws
    url: wss://stream.binance.com:9443/ws
    subscribe: ['{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}']
    key: $.t
"""
PREPARED = """\
store: ${LONGLINE_STORE}
streams:
- name: wiki
  transport: sse
  url: https://stream.wikimedia.org/v2/stream/recentchange
  headers: {Authorization: 'Bearer ${WIKI_TOKEN}'}
- name: trades
  transport: ws
  url: wss://stream.binance.com:9443/ws
  subscribe: ['{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}']
  key: $.t
"""
SUB_ACCOUNT = "arn:${AWS::Partition}:{}:${AWS::Region}:${AWS::AccountId}:{}"


def sub_arn(service: str, resource: str) -> dict[str, str]:
    return {"Fn::Sub": SUB_ACCOUNT.replace("{}", service, 1).replace("{}", resource, 1)}


def deploy(*args: str) -> Result:
    env = {k: v for k, v in os.environ.items() if k != "WIKI_TOKEN"}
    return CliRunner().invoke(deploy_command, list(args), env=env)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deploy") / "longline.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def templates(config_file: Path) -> dict[tuple[int, bool], str]:
    """The YAML text of every option, without and with --config."""
    out: dict[tuple[int, bool], str] = {}
    for option in (1, 2, 3, 4):
        for with_config in (False, True):
            extra = ["--config", str(config_file)] if with_config else []
            result = deploy("--option", str(option), *extra)
            assert result.exit_code == 0, result.output
            out[option, with_config] = result.stdout
    return out


def parsed(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def resources(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == kind}


@pytest.mark.parametrize("option", [1, 2, 3, 4])
@pytest.mark.parametrize("with_config", [False, True])
def test_cfn_lint_finds_nothing(
    templates: dict[tuple[int, bool], str], option: int, with_config: bool, tmp_path: Path
) -> None:
    path = tmp_path / f"option{option}.yaml"
    path.write_text(templates[option, with_config])
    matches = lint(path.read_text())
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_cfn_lint_does_catch_a_broken_template(templates: dict[tuple[int, bool], str]) -> None:
    doc = parsed(templates[1, False])
    doc["Resources"]["EventsTable"]["Properties"]["Bogus"] = 1
    doc["Resources"]["Watchdog"]["Properties"]["Target"]["RoleArn"] = {
        "Fn::GetAtt": ["Nowhere", "Arn"]
    }
    assert [m.rule.id for m in lint(yaml.safe_dump(doc))] == ["E3002", "E1010"]


@pytest.mark.parametrize("option", [1, 2, 3])
def test_tables_are_the_stores_tables(templates: dict[tuple[int, bool], str], option: int) -> None:
    doc = parsed(templates[option, False])
    tables = resources(doc, "AWS::DynamoDB::Table")
    names = [t["Properties"]["TableName"]["Fn::Sub"] for t in tables.values()]
    assert names == [f"${{TablePrefix}}_{spec.suffix}" for spec in TABLES]
    for spec, table in zip(TABLES, tables.values(), strict=True):
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["KeySchema"][0] == {"AttributeName": spec.hash_key[0], "KeyType": "HASH"}
        assert ("StreamSpecification" in props) == spec.stream
        assert table["DeletionPolicy"] == "Retain"
    assert tables["EventsTable"]["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_IMAGE"
    }
    assert doc["Parameters"]["TablePrefix"]["Default"] == "longline"


def statements(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, role in resources(doc, "AWS::IAM::Role").items():
        out[name] = [
            s
            for p in role["Properties"].get("Policies", [])
            for s in p["PolicyDocument"]["Statement"]
        ]
    return out


@pytest.mark.parametrize("option", [1, 2, 3, 4])
def test_iam_is_least_privilege(templates: dict[tuple[int, bool], str], option: int) -> None:
    known = load_resource(AdditionalSpecs, "Policies.json")
    doc = parsed(templates[option, True])
    for role, stmts in statements(doc).items():
        for s in stmts:
            assert s["Effect"] == "Allow"
            for action in s["Action"]:
                service, name = action.split(":")
                assert "*" not in action, f"{role}: wildcard action {action}"
                assert name.lower() in known[service]["Actions"], f"{role}: unknown {action}"
            if "*" in s["Resource"]:  # only where AWS has no resource-level permission
                assert (role, s["Action"], s["Resource"]) in [
                    ("ExecutionRole", ["ecr:GetAuthorizationToken"], ["*"]),
                    ("ProcessorRole", ["dynamodb:ListStreams"], ["*"]),
                ]
                service, name = s["Action"][0].split(":")
                assert known[service]["Actions"][name.lower()] == {}  # no resource types
    for name, role in resources(doc, "AWS::IAM::Role").items():
        managed = role["Properties"].get("ManagedPolicyArns")
        if name == "InstanceRole":
            ssm = "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
            assert managed == {
                "Fn::If": ["SessionManager", [{"Fn::Sub": ssm}], {"Ref": "AWS::NoValue"}]
            }
        else:
            assert managed is None, name


def test_option1_invokes_only_itself_and_the_watchdog_only_it(
    templates: dict[tuple[int, bool], str],
) -> None:
    doc = parsed(templates[1, False])
    stmts = statements(doc)
    invoke = [s for s in stmts["ConnectorRole"] if s["Action"] == ["lambda:InvokeFunction"]]
    assert invoke == [
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [sub_arn("lambda", "function:${Name}-connector")],
        }
    ]
    assert stmts["WatchdogRole"] == [
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [{"Fn::GetAtt": ["Connector", "Arn"]}],
        }
    ]
    fn = doc["Resources"]["Connector"]["Properties"]
    assert fn["FunctionName"] == {"Fn::Sub": "${Name}-connector"}
    assert (fn["Handler"], fn["Timeout"]) == ("longline.aws.lambda_handler.handler", 900)
    env = fn["Environment"]["Variables"]
    assert (env["LONGLINE_MODE"], env["LONGLINE_MARGIN"]) == ("self", "60")
    assert env["LONGLINE_CONFIG"] == {"Ref": "LonglineConfig"}
    assert env["LONGLINE_STORE"] == {"Fn::Sub": "dynamodb://${TablePrefix}?region=${AWS::Region}"}
    target = doc["Resources"]["Watchdog"]["Properties"]
    assert target["ScheduleExpression"] == "rate(5 minutes)"
    assert json.loads(target["Target"]["Input"]) == {"watchdog": True}


def test_option2_state_machine_is_sound_and_its_role_scoped(
    templates: dict[tuple[int, bool], str],
) -> None:
    doc = parsed(templates[2, False])
    machine = doc["Resources"]["Loop"]["Properties"]
    asl = machine["Definition"]
    assert validate(asl) == []
    states = asl["States"]
    targets = {s["Next"] for s in states.values() if "Next" in s}
    targets |= {c["Next"] for s in states.values() for c in s.get("Choices", [])}
    targets |= {s["Default"] for s in states.values() if "Default" in s}
    assert targets | {asl["StartAt"]} == set(states)
    assert [n for n, s in states.items() if s.get("End")] == ["ContinueAsNew"]
    assert {s["Resource"] for s in states.values() if s["Type"] == "Task"} == ALLOWED_RESOURCES
    assert states["Invoke"]["Parameters"]["FunctionName"] == "${ConnectorArn}"
    assert machine["DefinitionSubstitutions"] == {
        "ConnectorArn": {"Fn::GetAtt": ["Connector", "Arn"]}
    }
    assert states["Wait"]["Seconds"] == 840
    assert states["Loop"]["Choices"][0]["NumericLessThan"] == 1000
    assert statements(doc)["LoopRole"] == [
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": [{"Fn::GetAtt": ["Connector", "Arn"]}],
        },
        {
            "Effect": "Allow",
            "Action": ["states:StartExecution"],
            "Resource": [sub_arn("states", "stateMachine:${Name}-loop")],
        },
    ]
    assert machine["StateMachineName"] == {"Fn::Sub": "${Name}-loop"}
    env = doc["Resources"]["Connector"]["Properties"]["Environment"]["Variables"]
    assert env["LONGLINE_MODE"] == "stepfunctions"
    assert "Watchdog" not in doc["Resources"]


def test_margin_sets_the_wait_and_the_handler_margin() -> None:
    result = deploy("--option", "2", "--margin", "90s")
    doc = parsed(result.stdout)
    assert doc["Resources"]["Loop"]["Properties"]["Definition"]["States"]["Wait"]["Seconds"] == 810
    env = doc["Resources"]["Connector"]["Properties"]["Environment"]["Variables"]
    assert env["LONGLINE_MARGIN"] == "90"


@pytest.mark.parametrize("option", [1, 2, 3])
def test_processor_is_fed_by_the_events_stream(
    templates: dict[tuple[int, bool], str], option: int
) -> None:
    doc = parsed(templates[option, False])
    trigger = doc["Resources"]["ProcessorTrigger"]["Properties"]
    assert trigger["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert trigger["BisectBatchOnFunctionError"] is True
    assert trigger["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["ProcessorFailures", "Arn"]}}
    }
    fn = doc["Resources"]["Processor"]["Properties"]
    assert fn["Handler"] == "longline.aws.stream_processor.handler"
    stream_stmt = statements(doc)["ProcessorRole"][1]
    assert stream_stmt["Resource"] == [{"Fn::GetAtt": ["EventsTable", "StreamArn"]}]


def test_config_is_embedded_with_the_stacks_store_and_secret_parameters(
    templates: dict[tuple[int, bool], str], config_file: Path
) -> None:
    for option in (1, 2):
        doc = parsed(templates[option, True])
        env = doc["Resources"]["Connector"]["Properties"]["Environment"]["Variables"]
        assert env["LONGLINE_CONFIG"] == PREPARED
        assert env["WIKI_TOKEN"] == {"Ref": "EnvWikiToken"}
        assert doc["Parameters"]["EnvWikiToken"]["NoEcho"] is True
        assert "LonglineConfig" not in doc["Parameters"]
    result = deploy("--option", "1", "--config", str(config_file))
    assert result.stderr == (
        "note: the config's store is replaced by the stack's tables (${LONGLINE_STORE})\n"
        "note: set the NoEcho parameter(s) EnvWikiToken when deploying\n"
    )


def test_option3_runs_n_fargate_workers_with_table_only_access(
    templates: dict[tuple[int, bool], str],
) -> None:
    doc = parsed(templates[3, True])
    service = doc["Resources"]["Service"]["Properties"]
    assert (service["DesiredCount"], service["LaunchType"]) == ({"Ref": "DesiredCount"}, "FARGATE")
    params = doc["Parameters"]
    assert (params["DesiredCount"]["Type"], params["DesiredCount"]["Default"]) == ("Number", 2)
    assert params["DesiredCount"]["MinValue"] == 1
    assert params["LeaseTtl"]["Default"] == "15s"
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    task_role = statements(doc)["TaskRole"]
    assert len(task_role) == 1
    assert all(a.startswith("dynamodb:") for a in task_role[0]["Action"])
    assert {json.dumps(r) for r in task_role[0]["Resource"]} == {
        json.dumps(r)
        for spec in TABLES
        for r in (
            {"Fn::GetAtt": [f"{spec.suffix.capitalize()}Table", "Arn"]},
            {"Fn::Sub": f"${{{spec.suffix.capitalize()}Table.Arn}}/index/*"},
        )
    }
    container = doc["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["Image"] == {"Ref": "Image"}
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["LONGLINE_CONFIG"] == PREPARED
    assert env["LONGLINE_LEASE_TTL"] == {"Ref": "LeaseTtl"}
    assert container["Command"] == [CONTAINER_SCRIPT]


def run_container_script(tmp_path: Path, config: str, **env: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "longline"
    fake.write_text('#!/bin/sh\necho "args: $*"\ncat "$2"\n')
    fake.chmod(0o755)
    env |= {"PATH": f"{bin_dir}:/usr/bin:/bin", "LONGLINE_CONFIG": config, "TMPDIR": str(tmp_path)}
    out = subprocess.run(["sh", "-c", CONTAINER_SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_container_script_runs_a_worker_on_a_path_or_inline_yaml(tmp_path: Path) -> None:
    baked = tmp_path / "baked.yaml"
    baked.write_text("streams: []\n")
    worker = "--worker --lease-ttl 15s"
    assert run_container_script(tmp_path, str(baked)) == (
        f"args: run {baked} {worker}\nstreams: []\n"
    )
    written = tmp_path / "longline.yaml"
    assert run_container_script(tmp_path, PREPARED, LONGLINE_LEASE_TTL="4s") == (
        f"args: run {written} --worker --lease-ttl 4s\n{PREPARED}\n"
    )


def user_data(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    data = doc["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    script, variables = data["Fn::Base64"]["Fn::Sub"]
    return script, variables


def test_option4_user_data_installs_the_config_secrets_and_unit(
    templates: dict[tuple[int, bool], str], tmp_path: Path
) -> None:
    doc = parsed(templates[4, True])
    script, variables = user_data(doc)
    assert script == user_data_script()
    assert base64.b64decode(variables["Config"]).decode() == CONFIG  # verbatim, comments too
    assert base64.b64decode(variables["Unit"]).decode() == unit_text()
    assert variables["Env"] == {
        "Fn::Base64": {"Fn::Join": ["", ["WIKI_TOKEN=", {"Ref": "EnvWikiToken"}, "\n"]]}
    }
    rendered = script
    for key, value in {**variables, "Package": "longline", "Env": ""}.items():
        rendered = rendered.replace("${" + key + "}", value)
    assert "${" not in rendered
    (tmp_path / "user-data.sh").write_text(rendered)
    assert subprocess.run(["bash", "-n", str(tmp_path / "user-data.sh")]).returncode == 0
    launch = doc["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert launch["MetadataOptions"]["HttpTokens"] == "required"
    assert doc["Parameters"]["InstanceType"]["Default"] == "t4g.nano"
    without = parsed(templates[4, False])
    assert user_data(without)[1]["Config"] == {"Fn::Base64": {"Ref": "LonglineConfig"}}


def test_systemd_unit_in_the_repository_is_the_packaged_one() -> None:
    text = (ROOT / "deploy" / "systemd" / "longline.service").read_text()
    assert text == unit_text()
    assert "ExecStart=/opt/longline/bin/longline run /etc/longline/longline.yaml" in text
    assert "User=longline" in text


def test_dockerfile_runs_longline_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(line.startswith('RUN pip install ".${EXTRAS}"') for line in lines)
    assert "USER 10001:10001" in lines
    assert lines[-2:] == [
        'ENTRYPOINT ["longline"]',
        'CMD ["run", "/config/longline.yaml", "--http", "127.0.0.1:9464"]',
    ]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--option", "5"], "'5' is not one of '1', '2', '3', '4'"),
        (["--option", "1", "--name", "x"], "3-32 characters"),
        (["--option", "2", "--margin", "10m"], "must be between 1s and 450s"),
        (["--option", "2", "--margin", "soon"], "invalid duration 'soon'"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    result = deploy(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_config_errors_exit_2_naming_the_field(tmp_path: Path) -> None:
    result = deploy("--option", "1", "--config", write(tmp_path, "streams:\n  - name: a\n"))
    assert result.exit_code == 2
    assert "streams[0].transport" in result.stderr
    assert result.stdout == ""


def test_errors_in_fields_filled_by_unset_variables_are_not_reported(tmp_path: Path) -> None:
    text = "streams:\n  - {name: a, transport: ws, url: '${FEED_URL}'}\n"
    result = deploy("--option", "1", "--config", write(tmp_path, text))
    assert result.exit_code == 0, result.stderr
    assert "EnvFeedUrl" in parsed(result.stdout)["Parameters"]


def test_option4_refuses_a_dynamodb_store(tmp_path: Path) -> None:
    text = "store: dynamodb://tbl\nstreams:\n  - {name: a, transport: ws, url: 'wss://x/'}\n"
    result = deploy("--option", "4", "--config", write(tmp_path, text))
    assert result.exit_code == 2
    assert "option 4 stores locally" in result.stderr


def test_a_config_too_large_for_a_lambda_environment_is_refused(tmp_path: Path) -> None:
    streams = "".join(
        f"  - {{name: s{i:03d}, transport: ws, url: 'wss://feed.example.com/stream/{i}'}}\n"
        for i in range(60)
    )
    path = write(tmp_path, "streams:\n" + streams)
    result = deploy("--option", "1", "--config", path)
    assert result.exit_code == 2
    assert "a Lambda environment holds 4 KB in all" in result.stderr
    assert deploy("--option", "3", "--config", path).exit_code == 0
