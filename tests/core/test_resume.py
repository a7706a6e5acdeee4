from longline.core.resume import build_request, with_query


def test_header_resume_sets_last_event_id() -> None:
    req = build_request(
        "http://h/s", {"A": "1"}, [], resume_header="Last-Event-ID", resume_query=None, cursor="42"
    )
    assert req.url == "http://h/s"
    assert req.headers == {"A": "1", "Last-Event-ID": "42"}
    assert req.subscribe == ()


def test_no_cursor_sends_nothing_and_blank_placeholder() -> None:
    req = build_request(
        "http://h/s?x=1",
        {},
        ['{"since":"{cursor}"}'],
        resume_header="Last-Event-ID",
        resume_query="since",
        cursor=None,
    )
    assert req.url == "http://h/s?x=1"
    assert req.headers == {}
    assert req.subscribe == ('{"since":""}',)


def test_query_resume_replaces_existing_parameter() -> None:
    req = build_request(
        "http://h/s?since=1&x=a+b",
        {},
        [],
        resume_header=None,
        resume_query="since",
        cursor="1700000000123456",
    )
    assert req.url == "http://h/s?x=a+b&since=1700000000123456"


def test_subscribe_messages_in_order_with_cursor() -> None:
    req = build_request(
        "ws://h/",
        {},
        ["first {cursor}", "second", "{cursor}{cursor}"],
        resume_header=None,
        resume_query=None,
        cursor="7",
    )
    assert req.subscribe == ("first 7", "second", "77")


def test_with_query_encodes_value() -> None:
    assert with_query("http://h/p", "c", "a b&c") == "http://h/p?c=a+b%26c"
