"""No secret reaches log output: not in the message, not in %-args, not in a traceback."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from longline.core.secrets import (
    add_secrets,
    longest_secret,
    redact,
    redacted_head,
    redacted_tail,
    registered_secrets,
    set_secrets,
)
from longline.ops.logging import RedactingFilter, setup_logging

SECRET = "tok-9f8e7d6c5b4a"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    set_secrets(())


def _capture(json_mode: bool = False, stream: io.StringIO | None = None) -> io.StringIO:
    """Our handler alone on the root logger (pytest's capture handlers would see raw records)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    out = stream if stream is not None else io.StringIO()
    setup_logging("DEBUG", secrets=[SECRET], json=json_mode, stream=out)
    return out


def test_a_cut_never_leaves_a_piece_of_a_secret() -> None:
    """Redacted before the cut: a secret crossing it is replaced whole, even when a shorter
    secret is its prefix (redacting the cut text would leave the longer one's middle)."""
    set_secrets([])  # only the secrets given below (an earlier test may have registered some)
    secrets = ["abc", "abcdef"]
    assert redacted_head("12abcdef34", 4, secrets) == ("12***", True)
    assert redacted_head("12abcdef", 4, secrets) == ("12***", False)
    assert redacted_head("1234abcdef", 4, secrets) == ("1234", True)
    assert redacted_head("12", 4, secrets) == ("12", False)
    assert redacted_tail("12abcdef34", 3, secrets) == "***34"
    assert redacted_tail("12abcdef34", 2, secrets) == "34"
    assert redacted_tail("abc12abc", 100, secrets) == "***12***"
    assert longest_secret(["é"]) == 2  # UTF-8 bytes: what a reader counts


def test_redact_replaces_every_occurrence_longest_first() -> None:
    assert redact("a=abc b=abcdef c=abc", ["abc", "abcdef"]) == "a=*** b=*** c=***"
    assert redact("nothing here", ["abc"]) == "nothing here"
    assert redact("x.y", [".", ""]) == "x***y"  # regex metacharacters are literal
    assert redact("keep", []) == "keep"


def test_secret_in_message_is_redacted() -> None:
    out = _capture()
    logging.getLogger("longline.test").info(f"connecting with Bearer {SECRET} now")
    text = out.getvalue()
    assert SECRET not in text
    assert text.endswith("INFO longline.test: connecting with Bearer *** now\n")


def test_secret_in_percent_args_is_redacted() -> None:
    out = _capture()
    headers = {"Authorization": f"Bearer {SECRET}"}
    logging.getLogger("longline.test").warning("headers %r for %s", headers, SECRET)
    text = out.getvalue()
    assert SECRET not in text
    assert text.endswith("headers {'Authorization': 'Bearer ***'} for ***\n")


def test_secret_in_exception_traceback_is_redacted() -> None:
    out = _capture()
    log = logging.getLogger("longline.test")
    try:
        raise ConnectionError(f"handshake failed for wss://h/?token={SECRET}")
    except ConnectionError:
        log.exception("stream failed")
    text = out.getvalue()
    assert SECRET not in text
    assert "Traceback (most recent call last):" in text
    assert "ConnectionError: handshake failed for wss://h/?token=***" in text


def test_secret_in_exception_chain_and_stack_info_is_redacted() -> None:
    out = _capture()
    log = logging.getLogger("longline.test")
    try:
        try:
            raise KeyError(SECRET)
        except KeyError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError:
        log.error("failed", exc_info=True, stack_info=True)
    text = out.getvalue()
    assert SECRET not in text
    assert "KeyError: '***'" in text
    assert "Stack (most recent call last):" in text


def test_bad_percent_args_do_not_leak_through_logging_error_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _capture()
    logging.getLogger("longline.test").info("one %s two %s", SECRET)  # missing arg
    text = out.getvalue() + capsys.readouterr().err
    assert SECRET not in text
    assert "one %s two %s ('***',)" in text


def test_json_output_is_redacted() -> None:
    out = _capture(json_mode=True)
    log = logging.getLogger("longline.json")
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.error("bad %s", SECRET, exc_info=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert SECRET not in lines[0]
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "longline.json"
    assert entry["msg"] == "bad ***"
    assert entry["exc"].endswith("ValueError: ***")


def test_json_lines_carry_rfc3339_time_and_the_context_fields() -> None:
    out = _capture(json_mode=True)
    log = logging.getLogger("longline.ctx")
    log.warning("reconnecting", extra={"stream": "s1", "cause": "stall", "cursor": SECRET})
    log.info("delivered", extra={"processor": "p", "stream": "s2"})
    log.info("plain")
    first, second, third = (json.loads(x) for x in out.getvalue().splitlines())
    stamp = datetime.fromisoformat(first["ts"])
    assert first["ts"].endswith("Z") and stamp.tzinfo is not None
    assert abs(stamp.timestamp() - time.time()) < 60
    assert first == {
        "ts": first["ts"],
        "level": "WARNING",
        "logger": "longline.ctx",
        "msg": "reconnecting",
        "stream": "s1",
        "cause": "stall",
        "cursor": "***",
    }
    assert (second["processor"], second["stream"], second["msg"]) == ("p", "s2", "delivered")
    assert set(third) == {"ts", "level", "logger", "msg"}


def test_rich_console_output_is_redacted() -> None:
    out = _capture(stream=_Tty())
    log = logging.getLogger("longline.rich")
    try:
        raise OSError(f"refused {SECRET}")
    except OSError:
        log.exception("using %s", SECRET)
    text = out.getvalue()
    assert SECRET not in text
    assert "using ***" in text
    assert "OSError: refused ***" in text


def test_add_secrets_at_runtime() -> None:
    out = _capture()
    log = logging.getLogger("longline.test")
    log.info("late-token-1234")
    add_secrets(["late-token-1234", ""])
    log.info("late-token-1234")
    lines = out.getvalue().splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["late-token-1234", "***"]
    assert registered_secrets() == frozenset({SECRET, "late-token-1234"})


def test_retired_secrets_are_forgotten() -> None:
    set_secrets([SECRET])
    add_secrets(["token-1"])
    add_secrets(["token-2"])
    add_secrets(["token-3"], retire=["token-1", "never-added"])
    assert registered_secrets() == frozenset({SECRET, "token-2", "token-3"})
    assert redact("token-1 token-2 token-3", registered_secrets()) == "token-1 *** ***"


def test_setup_logging_replaces_its_handler_and_registry() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", secrets=["old-secret"], stream=first)
    setup_logging("WARNING", secrets=["new-secret"], stream=second)
    log = logging.getLogger("longline.test")
    log.info("hidden by level")
    log.warning("old-secret new-secret")
    assert first.getvalue() == ""
    assert second.getvalue().endswith("longline.test: old-secret ***\n")
    assert logging.getLogger().level == logging.WARNING
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_longline_handler", False)]
    assert len(marked) == 1


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud")


def test_filter_rewrites_record_once_for_every_handler() -> None:
    add_secrets([SECRET])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s", (SECRET,), None)
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("a ***", None)
