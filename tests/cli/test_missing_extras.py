"""Without an optional driver, every command says which extra to install (a real virtualenv).

The package is installed into a fresh virtualenv with its core dependencies only, as
``pip install longline`` would: no asyncpg, boto3, redis or nats-py.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from tests.cli.test_errors import STORE_COMMANDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare_longline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``longline`` script of a virtualenv holding longline without any extra."""
    env_dir = tmp_path_factory.mktemp("bare-venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    probe = subprocess.run(
        [str(python), "-c", "import asyncpg"], capture_output=True, text=True, check=False)
    assert "No module named 'asyncpg'" in probe.stderr  # the premise of every test here
    return env_dir / "bin" / "longline"


def bare(script: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60, check=False)


def config(path: Path, store: str, *processors: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({
        "store": store,
        "streams": [{"name": "a", "transport": "sse", "url": "http://127.0.0.1:9/feed"}],
        "processors": [{"name": "p", "kind": "webhook", "url": "http://127.0.0.1:9/h"},
                       *processors],
    }))
    return path


POSTGRES = ("postgresql://app:pw@127.0.0.1:9/db", "a postgresql:// store needs asyncpg",
            "postgres")
DYNAMODB = ("dynamodb://ll?region=us-east-1&endpoint_url=http://127.0.0.1:9",
            "a dynamodb:// store needs boto3", "dynamodb")


@pytest.mark.parametrize("store", [POSTGRES, DYNAMODB], ids=["postgres", "dynamodb"])
@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_names_the_store_extra(
    bare_longline: Path, tmp_path: Path, store: tuple[str, str, str], command: tuple[str, ...]
) -> None:
    url, what, extra = store
    cfg = config(tmp_path / "c.yaml", url)
    res = bare(bare_longline, command[0], str(cfg), *command[1:])
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (
        f"{cfg}: store: {what}, which is not installed: pip install 'longline[{extra}]'\n"
    )


def test_check_reports_every_missing_extra(bare_longline: Path, tmp_path: Path) -> None:
    cfg = config(
        tmp_path / "c.yaml", POSTGRES[0],
        {"name": "r", "kind": "redis", "url": "redis://127.0.0.1:9/0"},
        {"name": "n", "kind": "nats", "servers": ["nats://127.0.0.1:9"]},
        {"name": "q", "kind": "sqs", "queue_url": "http://127.0.0.1:9/q"},
    )
    for args, stdin, where in ([str(cfg)], None, cfg), (["-"], cfg.read_text(), "-"):
        res = bare(bare_longline, "check", *args, stdin=stdin)
        assert (res.returncode, res.stderr) == (1, "")
        assert res.stdout.splitlines() == [
            f"{where}: store: a postgresql:// store needs asyncpg, which is not installed:"
            " pip install 'longline[postgres]'",
            f"{where}: processor r: processor kind 'redis' needs redis, which is not installed:"
            " pip install 'longline[redis]'",
            f"{where}: processor n: processor kind 'nats' needs nats-py, which is not installed:"
            " pip install 'longline[nats]'",
            f"{where}: processor q: processor kind 'sqs' needs boto3, which is not installed:"
            " pip install 'longline[aws]'",
        ]


@pytest.mark.parametrize("command", [("run", "--duration", "5"), ("dispatch", "--duration", "5")])
def test_a_processor_kind_without_its_library_stops_before_delivering(
    bare_longline: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    cfg = config(tmp_path / "c.yaml", f"sqlite:///{tmp_path / 'x.db'}",
                 {"name": "r", "kind": "redis", "url": "redis://127.0.0.1:9/0"})
    res = bare(bare_longline, command[0], str(cfg), *command[1:])
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (
        f"{cfg}: processor kind 'redis' needs redis, which is not installed:"
        " pip install 'longline[redis]'\n"
    )


def test_the_sqlite_default_needs_no_extra(bare_longline: Path, tmp_path: Path) -> None:
    cfg = config(tmp_path / "c.yaml", f"sqlite:///{tmp_path / 'x.db'}")
    res = bare(bare_longline, "init", str(cfg))
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == f"{cfg}: store ready: up to date\n"
