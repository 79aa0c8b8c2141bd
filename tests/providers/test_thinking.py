from providers.clients.thinking import SnapshotOrDelta, ThinkTagSplitter


def _run(chunks):
    splitter = ThinkTagSplitter()
    pieces = [piece for chunk in chunks for piece in splitter.feed(chunk)] + splitter.flush()
    reasoning = "".join(text for kind, text in pieces if kind == "reasoning")
    answer = "".join(text for kind, text in pieces if kind == "text")
    return reasoning, answer


def test_inline_think_block_is_split_from_the_answer():
    assert _run(["<think>plan it</think>Answer"]) == ("plan it", "Answer")


def test_tags_split_across_deltas_are_recognised():
    chunks = ["<thi", "nk>step one", " and two</thi", "nk>", "Final ans", "wer"]
    assert _run(chunks) == ("step one and two", "Final answer")


def test_a_lone_angle_bracket_is_not_swallowed():
    assert _run(["a < b and <", "b> done"]) == ("", "a < b and <b> done")


def test_a_held_back_prefix_is_released_at_the_end():
    assert _run(["text ending in </th"]) == ("", "text ending in </th")


def test_incremental_reasoning_passes_through():
    tracker = SnapshotOrDelta()
    assert [tracker.feed(c) for c in ["Hel", "lo", " world"]] == ["Hel", "lo", " world"]


def test_cumulative_snapshots_yield_only_the_new_tail():
    tracker = SnapshotOrDelta()
    assert [tracker.feed(c) for c in ["Hel", "Hello", "Hello world"]] == ["Hel", "lo", " world"]
    assert tracker.text == "Hello world"


def test_a_partial_tag_at_the_end_of_a_chunk_is_the_longest_suffix_that_starts_the_tag():
    import random

    from providers.clients.thinking import _partial_tag_suffix

    def longest(text: str, tag: str) -> int:  # the definition, tried length by length
        return next(
            (n for n in range(min(len(tag) - 1, len(text)), 0, -1) if tag.startswith(text[-n:])),
            0,
        )

    chooser = random.Random(8)
    for _ in range(20_000):
        text = "".join(chooser.choice("<>/thinkab ") for _ in range(chooser.randint(0, 12)))
        for tag in ("<think>", "</think>"):
            assert _partial_tag_suffix(text, tag) == longest(text, tag), (text, tag)
    assert _partial_tag_suffix("reasoning </thi", "</think>") == 5
    assert _partial_tag_suffix("a < b", "</think>") == 0
