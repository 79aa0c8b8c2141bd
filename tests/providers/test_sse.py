from providers.clients.sse import LineSplitter, aiter_sse, iter_sse


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


def _split(*chunks: bytes) -> list[str]:
    splitter = LineSplitter()
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.flush()


def test_lines_split_on_every_kind_of_line_ending():
    assert _split(b"a\r\nb\nc\rd\n\n") == ["a", "b", "c", "d", ""]


def test_a_crlf_split_between_two_chunks_ends_one_line():
    assert _split(b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n") == ["data: x", "data: y", ""]


def test_a_lone_cr_at_the_end_of_a_chunk_still_ends_its_line():
    assert _split(b"data: x\r", b"data: y\r") == ["data: x", "data: y"]


def test_a_character_split_across_chunks_arrives_whole():
    encoded = "data: 你好\n".encode()
    assert _split(encoded[:8], encoded[8:]) == ["data: 你好"]


def test_a_line_without_an_ending_is_kept_for_the_next_chunk():
    splitter = LineSplitter()
    assert splitter.feed(b'data: {"a":') == []
    assert splitter.feed(b" 1}\n") == ['data: {"a": 1}']
    assert splitter.flush() == []


async def test_events_come_out_of_bytes_cut_anywhere():
    stream = b'event: delta\r\ndata: {"x": "\xc3\xa9"}\r\n\r\n: ping\n\ndata: last'

    async def chunks():
        for index in range(0, len(stream), 3):
            yield stream[index : index + 3]

    events = [event async for event in aiter_sse(chunks())]
    assert [(e.event, e.data, e.comments) for e in events] == [
        ("delta", '{"x": "é"}', []),
        ("", "", ["ping"]),
        ("", "last", []),
    ]
