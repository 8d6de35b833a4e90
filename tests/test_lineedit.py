"""Unit tests of wschat.lineedit: keys in, submitted lines and the redrawn input line out."""

from __future__ import annotations

from wschat.lineedit import Edited, EndOfInput, LineEditor, Submitted

LEFT, RIGHT, UP, DOWN = "\x1b[D", "\x1b[C", "\x1b[A", "\x1b[B"
HOME, END, DELETE = "\x1b[H", "\x1b[F", "\x1b[3~"


def typed(keys: str) -> LineEditor:
    ed = LineEditor()
    assert all(isinstance(e, Edited) for e in ed.feed(keys))
    return ed


def test_typing_then_enter_submits_the_line_and_clears_it() -> None:
    ed = LineEditor()
    assert ed.feed("hello") == [Edited("hello")]
    assert ed.feed("\r") == [Submitted("hello")]
    assert ed.text == ""


def test_several_lines_in_one_read_are_each_submitted() -> None:
    assert LineEditor().feed("one\ntwo\r\nthree\r") == [
        Submitted("one"),
        Submitted("two"),
        Submitted("three"),
    ]


def test_editing_keys_move_and_delete() -> None:
    assert typed("helo" + LEFT + "l").text == "hello"
    assert typed("hello" + "\x7f\x7f").text == "hel"
    assert typed("hello" + HOME + "X" + END + "Y").text == "XhelloY"
    assert typed("hello" + "\x01" + DELETE).text == "ello"
    assert typed("ab" + LEFT + LEFT + LEFT + RIGHT + "-").text == "a-b"
    assert typed("one two three" + "\x17").text == "one two "
    assert typed("one two three" + "\x1b\x7f").text == "one two "
    assert typed("one two" + "\x1bb" + "\x0b").text == "one "
    assert typed("one two" + "\x1b[1;5D" + "\x15").text == "two"


def test_ctrl_d_ends_input_only_on_an_empty_line() -> None:
    assert LineEditor().feed("\x04") == [EndOfInput()]
    ed = typed("ab" + LEFT)
    assert ed.feed("\x04") == [Edited("a")]
    assert ed.text == "a"


def test_control_characters_and_unknown_sequences_never_reach_the_text() -> None:
    ed = typed("a\x00\x07\tb\x1b[15~c\x1b[200~d\x1b[201~\x1bOPe\x0c")
    assert ed.text == "abcde"


def test_an_escape_sequence_split_across_reads_is_still_understood() -> None:
    ed = typed("ab")
    assert ed.feed("\x1b") == []
    assert ed.feed("[") == []
    ed.feed("D")
    ed.feed("X")
    assert ed.text == "aXb"


def test_up_and_down_recall_earlier_lines_and_keep_the_draft() -> None:
    ed = LineEditor()
    ed.feed("first\rsecond\r")
    ed.feed("draft")
    ed.feed(UP)
    assert ed.text == "second"
    ed.feed(UP + UP)
    assert ed.text == "first"
    ed.feed(DOWN + DOWN)
    assert ed.text == "draft"
    assert ed.feed(UP + "\r") == [Submitted("second")]


def test_render_clears_the_line_draws_prompt_and_text_and_places_the_cursor() -> None:
    ed = typed("hello" + LEFT + LEFT)
    assert ed.render("#general> ", 80) == "\r\x1b[K#general> hello\x1b[2D"
    assert typed("hi").render("> ", 80) == "\r\x1b[K> hi"


def test_render_counts_wide_characters_as_two_columns() -> None:
    ed = typed("你好" + LEFT)
    assert ed.render("> ", 80) == "\r\x1b[K> 你好\x1b[2D"


def test_a_line_wider_than_the_terminal_scrolls_to_keep_the_cursor_visible() -> None:
    ed = typed("x" * 50 + "END")
    out = ed.render("> ", 20)
    visible = out.removeprefix("\r\x1b[K> ")
    assert visible.endswith("END") and len(visible) <= 17
    ed.feed("\x01")
    visible = ed.render("> ", 20).removeprefix("\r\x1b[K> ")
    assert visible.startswith("xxx") and "END" not in visible


def test_a_prompt_too_long_for_the_terminal_is_dropped_for_the_text() -> None:
    assert typed("abc").render("Enter server address: ", 20) == "\r\x1b[Kabc"


def test_a_change_of_the_line_is_told_once_per_read_and_not_a_key_that_changes_nothing() -> None:
    ed = LineEditor()
    assert ed.feed("hi") == [Edited("hi")]
    assert ed.feed(LEFT + HOME) == []  # the cursor moved, the text did not
    assert ed.feed("\x0b") == [Edited("")]  # Ctrl+K cut it all: the line is empty again
    assert ed.feed("a\rb") == [Submitted("a"), Edited("b")]  # after the line sent, the new one
    assert ed.feed("\x7f\r") == [Submitted("")]  # emptied, then sent: nothing typed is left
