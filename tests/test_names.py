"""wschat.names: which user and room names are allowed, and when two names are the same or look alike."""

from __future__ import annotations

import json

import pytest
from support import Client, logged_in, start_server

from wschat.confusables_data import VERSION
from wschat.hub import Hub, Send
from wschat.names import InvalidName, check_room, check_username, lookalike_keys, name_key, skeleton


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


# ---------------------------------------------------------------- look-alikes and invisibles


def looks_alike(a: str, b: str) -> bool:
    return bool(lookalike_keys(a) & lookalike_keys(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Alice", "\u0410lice"),  # Cyrillic capital A
        ("alice", "\u0430lice"),  # Cyrillic small a
        ("Alice", "AIice"),  # capital I for small l
        ("paypal", "paypa1"),  # digit one for l
        ("Sam", "Sarn"),  # rn for m
        ("Bob", "B0B"),  # zero for O
        ("Olga", "\u039flga"),  # Greek capital omicron
        ("Alice", "\U0001d400lice"),  # MATHEMATICAL BOLD CAPITAL A (NFKC folds it too)
        ("Alice", "ALICE"),  # plain case: also the same key
    ],
)
def test_look_alike_names_share_a_key(a: str, b: str) -> None:
    assert looks_alike(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Alice", "Alicia"), ("Zoë", "Zoe"), ("José", "Jose"), ("Ann", "Anna"), ("Bob", "Rob"), ("李", "季")],
)
def test_different_names_do_not(a: str, b: str) -> None:
    assert not looks_alike(a, b)


def test_skeleton_follows_uts39_on_the_data_shipped() -> None:
    assert VERSION == "13.0.0"
    assert skeleton("\u0440\u0430ypal") == "paypal"  # Cyrillic er and a
    assert skeleton("m") == "rn"
    assert skeleton(skeleton("𝔭𝒶ỿ𝕡𝕒ℓ")) == skeleton("𝔭𝒶ỿ𝕡𝕒ℓ")  # idempotent


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("Al\u200bice", 0x200B),  # ZERO WIDTH SPACE
        ("Al\u200dice", 0x200D),  # ZERO WIDTH JOINER
        ("Alice\ufeff", 0xFEFF),  # ZERO WIDTH NO-BREAK SPACE
        ("\u202eecilA", 0x202E),  # RIGHT-TO-LEFT OVERRIDE
        ("Al\u202dice", 0x202D),  # LEFT-TO-RIGHT OVERRIDE
        ("Al\u2066ice\u2069", 0x2066),  # LEFT-TO-RIGHT ISOLATE
        ("Al\u200eice", 0x200E),  # LEFT-TO-RIGHT MARK
        ("Al\u00adice", 0x00AD),  # SOFT HYPHEN
        ("Alice\u3164", 0x3164),  # HANGUL FILLER
        ("Al\U000e0041ice", 0xE0041),  # TAG LATIN CAPITAL LETTER A
    ],
)
def test_invisible_and_bidi_control_characters_are_refused(name: str, bad: int) -> None:
    with pytest.raises(InvalidName) as info:
        check_username(name)
    assert info.value.code == "name_invalid_chars"
    assert f"U+{bad:04X}" in str(info.value)


def _hub_login(hub: Hub, cid: int, name: str, **extra: object) -> dict:
    hub.connect(cid, 0.0)
    out = hub.receive(cid, json.dumps({"type": "set_username", "username": name, **extra}), 0.0)
    return next(json.loads(a.data) for a in out if isinstance(a, Send) and cid in a.targets)


def test_hub_refuses_a_look_alike_of_someone_online_and_frees_it_when_they_leave() -> None:
    hub = Hub()
    assert _hub_login(hub, 1, "Alice")["type"] == "username_accepted"
    refused = _hub_login(hub, 2, "\u0410lice")
    assert refused == {
        "type": "username_error",
        "code": "name_confusable",
        "message": "'\u0410lice' looks too much like 'Alice', who is online; choose another name.",
    }
    assert _hub_login(hub, 3, "ALICE")["code"] == "name_taken"  # the same name stays name_taken
    hub.disconnect(1, 1.0)
    assert _hub_login(hub, 4, "AIice")["type"] == "username_accepted"
    assert _hub_login(hub, 5, "Alice")["code"] == "name_confusable"


def test_session_takeover_of_a_name_is_not_blocked_by_its_own_look_alike_keys() -> None:
    hub = Hub()
    token = _hub_login(hub, 1, "ALICE")["session_token"]
    assert _hub_login(hub, 2, "ALICE", session_token=token)["type"] == "username_accepted"
    assert hub.by_look and set(hub.by_look.values()) == {2}


async def test_look_alike_name_is_refused_end_to_end() -> None:
    srv = await start_server()
    try:
        alice = await logged_in(srv.port, "Alice")
        mallory = await Client.open(srv.port)
        await mallory.send({"type": "set_username", "username": "\u0410lice"})
        err = await mallory.expect("username_error")
        assert err["code"] == "name_confusable" and "'Alice', who is online" in err["message"]
        await mallory.send({"type": "set_username", "username": "Al\u200bice"})
        assert (await mallory.expect("username_error"))["code"] == "name_invalid_chars"
        await mallory.send({"type": "set_username", "username": "Mallory"})
        await mallory.expect("username_accepted")
        await alice.close()
        await mallory.close()
    finally:
        await srv.stop()
