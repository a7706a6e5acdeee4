"""The open-file limit: raised to the hard limit at start; a config that cannot fit under it
is refused in one line (exit 1), and a worker caps itself at what fits. Real processes with a
lowered limit (``preexec_fn``), no mocks."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import yaml


def limited(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def run(
    args: list[str], soft: int, hard: int, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "longline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: limited(soft, hard),
    )


def config(tmp_path: Path, streams: int) -> Path:
    path = tmp_path / "many.yaml"
    data = {
        "store": f"sqlite:///{tmp_path / 'x.db'}",
        "streams": [
            {"name": f"s{i}", "transport": "sse", "url": "http://127.0.0.1:9/sse"}
            for i in range(streams)
        ],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    code = (
        "import resource; from longline.ops.limits import raise_file_limit; "
        "print(raise_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=lambda: limited(256, 2048),
        check=True,
    )
    assert out.stdout.strip() == "(2048, 2048) (2048, 2048)"


def test_a_config_over_the_hard_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    cfg = config(tmp_path, 100)  # 100 connections + 64 reserved > 150
    out = run(["run", str(cfg), "--duration", "1"], soft=100, hard=150)
    assert out.returncode == 1
    assert out.stderr == (
        f"{cfg}: 100 streams need up to 164 open files (connections plus 64 for the store and"
        " runtime), but the open-file limit is 150 (hard limit 150): raise it (ulimit -n,"
        " systemd LimitNOFILE=, docker --ulimit nofile=) or share the streams among several"
        " `longline run --worker` processes\n"
    )
    assert not (tmp_path / "x.db").exists()  # refused before anything started


def test_under_the_hard_limit_it_runs(tmp_path: Path) -> None:
    cfg = config(tmp_path, 100)  # fits once the soft limit 100 is raised to 400
    out = run(["run", str(cfg), "--duration", "1"], soft=100, hard=400)
    assert "open files" not in out.stderr
    assert (tmp_path / "x.db").exists()


def test_a_worker_caps_itself_at_what_fits(tmp_path: Path) -> None:
    cfg = config(tmp_path, 100)
    args = ["run", str(cfg), "--duration", "1", "--worker", "--worker-id", "w"]
    out = run(args, soft=100, hard=150)
    assert "the open-file limit 150 fits 86 streams: this worker holds at most 86" in out.stderr
