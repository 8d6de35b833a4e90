"""wschat.names: which user and room names are allowed, and when two names are the same."""

from __future__ import annotations

import pytest

from wschat.names import InvalidName, check_room, check_username, name_key


def code_of(name: str) -> str:
    with pytest.raises(InvalidName) as info:
        check_username(name)
    return info.value.code


def test_names_are_trimmed() -> None:
    assert check_username("  Alice  ") == ("Alice", "alice")


def test_case_and_width_variants_share_a_key() -> None:
    assert name_key("Alice") == name_key("ALICE") == name_key("Ａｌｉｃｅ") == name_key("alice")


def test_nfkc_compatibility_forms_share_a_key() -> None:
    assert name_key("ﬁsh") == name_key("fish")  # U+FB01 LATIN SMALL LIGATURE FI
    assert name_key("Straße") == name_key("STRASSE")


def test_unicode_letters_and_single_spaces_are_fine() -> None:
    assert check_username("Nguyễn Văn An")[0] == "Nguyễn Văn An"
    assert check_username("李雷")[0] == "李雷"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "name_empty"),
        ("   ", "name_empty"),
        ("x" * 33, "name_too_long"),
        ("Al\u200bice", "name_invalid_chars"),  # zero-width space
        ("Alice\u202e", "name_invalid_chars"),  # right-to-left override
        ("Al\u00adice", "name_invalid_chars"),  # soft hyphen
        ("A\x1b[31m", "name_invalid_chars"),  # escape
        ("A\nB", "name_invalid_chars"),
        ("A\u00a0B", "name_invalid_chars"),  # no-break space
        ("\u3164", "name_invalid_chars"),  # Hangul filler, renders blank
        ("\u0301abc", "name_invalid_chars"),  # starts with a combining mark
        ("Al  ice", "name_invalid_chars"),
        ("System", "name_reserved"),
        ("SERVER", "name_reserved"),
    ],
)
def test_refused_names_say_which_rule(name: str, code: str) -> None:
    assert code_of(name) == code


def test_32_characters_is_the_limit() -> None:
    assert check_username("x" * 32)[0] == "x" * 32


def test_errors_are_sentences() -> None:
    with pytest.raises(InvalidName) as info:
        check_username("Al\u200bice")
    assert "U+200B" in str(info.value)


@pytest.mark.parametrize(("raw", "room"), [("general", "general"), ("#Dev", "dev"), (" ops-2_x ", "ops-2_x")])
def test_room_names_normalise(raw: str, room: str) -> None:
    assert check_room(raw) == room


@pytest.mark.parametrize("raw", ["", "#", "a b", "x" * 33, "dév", "a/b", "<script>"])
def test_bad_room_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidName) as info:
        check_room(raw)
    assert info.value.code == "bad_room"
