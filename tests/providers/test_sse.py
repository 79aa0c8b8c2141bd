from providers.clients.sse import iter_sse


def test_it_reads_data_with_and_without_a_space_after_the_colon():
    events = list(iter_sse(["data: one", "", "data:two", ""]))
    assert [e.data for e in events] == ["one", "two"]


def test_it_joins_multi_line_data_with_newlines():
    (event,) = iter_sse(["data: first", "data: second", ""])
    assert event.data == "first\nsecond"


def test_it_keeps_event_and_id_fields_and_comments():
    (event,) = iter_sse(["id:1", "event:result", ":HTTP_STATUS/200", 'data:{"a":1}', ""])
    assert (event.id, event.event, event.data) == ("1", "result", '{"a":1}')
    assert event.comments == ["HTTP_STATUS/200"]


def test_a_comment_alone_is_an_event_without_data():
    (event,) = iter_sse([": keep-alive", ""])
    assert event.data == "" and event.comments == ["keep-alive"]


def test_it_strips_carriage_returns():
    (event,) = iter_sse(["data: crlf\r\n", "\r\n"])
    assert event.data == "crlf"


def test_an_event_cut_off_at_eof_still_counts():
    events = list(iter_sse(["data: complete", "", "data: tail without blank line"]))
    assert [e.data for e in events] == ["complete", "tail without blank line"]


def test_unknown_fields_and_retry_are_ignored():
    (event,) = iter_sse(["retry: 100", "foo: bar", "data: x", ""])
    assert event.data == "x"
