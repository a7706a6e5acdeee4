"""The summary lines themselves: deltas between summaries, the total line, and the cap that
keeps a run of many streams from logging a line per stream every interval."""

from __future__ import annotations

from typing import Any

from longline.engine.stats import StreamStats
from longline.engine.summary import MAX_LINES, stream_lines


def stats(n: int, **kw: Any) -> StreamStats:
    return StreamStats(state=kw.pop("state", "live"), events=n, **kw)


def test_periodic_lines_are_deltas_and_final_is_the_whole_run() -> None:
    s = {"a": stats(100, duplicates=2), "b": stats(10, state="backing-off", reason="HTTP 503")}
    before: dict[str, Any] = {}
    assert stream_lines(s, before, 10.0) == [
        "run, last 10s: 2 streams (1 live): 11.0 events/s, 110 events, 2 duplicates, "
        "0 quarantined, 0 reconnects",
        "stream a: live, last 10s: 10.0 events/s, 100 events, 2 duplicates, 0 quarantined, "
        "0 reconnects",
        "stream b: backing-off, last 10s (HTTP 503): 1.0 events/s, 10 events, 0 duplicates, "
        "0 quarantined, 0 reconnects",
    ]
    s["a"].events, s["a"].reconnects = 160, 1
    assert stream_lines(s, before, 60.0)[1] == (
        "stream a: live, last 1m: 1.0 events/s, 60 events, 0 duplicates, 0 quarantined, "
        "1 reconnects"
    )
    s["a"].state, s["b"].state, s["b"].uncommitted = "stopped", "stopped", 7
    assert stream_lines(s, None, 80.0)[1:] == [
        "stream a: stopped after 1m20s: 2.0 events/s, 160 events, 2 duplicates, 0 quarantined, "
        "1 reconnects",
        "stream b: stopped after 1m20s (HTTP 503): 0.1 events/s, 10 events, 0 duplicates, "
        "0 quarantined, 0 reconnects, 7 uncommitted",
    ]


def test_many_streams_log_a_total_and_only_the_streams_in_trouble() -> None:
    s = {f"s{i}": stats(i) for i in range(MAX_LINES + 5)}
    s["s3"].state = "backing-off"
    s["s7"].state = "failed"
    lines = stream_lines(s, {}, 1.0)
    assert [x.split(":", 1)[0] for x in lines] == ["run, last 1s", "stream s3", "stream s7"]
    assert lines[0].startswith(f"run, last 1s: {MAX_LINES + 5} streams ({MAX_LINES + 3} live): ")
    for x in s.values():
        x.state = "stopped" if x is not s["s7"] else "failed"
    final = stream_lines(s, None, 1.0)
    assert [x.split(":", 1)[0] for x in final] == ["run ended after 1s", "stream s7"]
