"""Unit tests of wschat.trust: fingerprints, the known-servers file and the trust decision."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from wschat import tls
from wschat.trust import (
    KNOWN_ENV,
    KnownServersError,
    Verdict,
    changed_warning,
    decide,
    default_known_path,
    fingerprint,
    is_yes,
    noninteractive_refusal,
    normalise_fingerprint,
    parse_known,
    render_known,
    server_key,
)

FP_A = ":".join(["AB"] * 32)
FP_B = ":".join(["0F"] * 32)


def test_fingerprint_has_the_server_banners_format(tmp_path: Path) -> None:
    cert, _, _ = tls.self_signed(str(tmp_path), ["localhost"], ["127.0.0.1"])
    der = ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
    fp = fingerprint(der)
    assert fp == tls.fingerprint(cert)  # what the server prints in its banner
    assert len(fp) == 95 and fp == fp.upper() and fp.count(":") == 31


def test_fingerprints_are_read_in_any_common_spelling_and_bad_ones_refused() -> None:
    assert normalise_fingerprint(FP_A.lower()) == FP_A
    assert normalise_fingerprint(FP_A.replace(":", "")) == FP_A
    assert normalise_fingerprint(FP_A.replace(":", " ")) == FP_A
    assert normalise_fingerprint(FP_A[:-3]) is None  # 31 bytes
    assert normalise_fingerprint(FP_A.replace("AB", "XY", 1)) is None
    assert normalise_fingerprint("") is None


def test_decision_is_trusted_unknown_or_changed() -> None:
    known = {"chat.lan:8765": FP_A}
    assert decide(known, "chat.lan:8765", FP_A) is Verdict.TRUSTED
    assert decide(known, "chat.lan:8765", FP_B) is Verdict.CHANGED
    assert decide(known, "chat.lan:9000", FP_A) is Verdict.UNKNOWN  # another port is another server
    assert decide({}, "chat.lan:8765", FP_A) is Verdict.UNKNOWN


def test_server_keys_ignore_the_case_of_host_names() -> None:
    assert server_key("Chat.LAN:8765") == "chat.lan:8765"
    assert server_key("[::1]:8765") == "[::1]:8765"


def test_only_an_explicit_yes_trusts() -> None:
    assert is_yes("y") and is_yes(" YES ") and is_yes("Yes")
    assert not any(is_yes(a) for a in ("", "n", "no", "yep", "y y", "1"))


def test_known_servers_file_round_trips_and_keeps_other_entries() -> None:
    text = render_known("", "a.lan:8765", FP_A, "2025-01-01T00:00:00+00:00")
    text = render_known(text, "b.lan:8765", FP_B, "2025-01-02T00:00:00+00:00")
    assert parse_known(text, "f.json") == {"a.lan:8765": FP_A, "b.lan:8765": FP_B}
    text = render_known(text, "a.lan:8765", FP_B, "2025-01-03T00:00:00+00:00")  # replaced, not added
    assert parse_known(text, "f.json") == {"a.lan:8765": FP_B, "b.lan:8765": FP_B}
    assert json.loads(text)["servers"]["a.lan:8765"]["trusted_since"] == "2025-01-03T00:00:00+00:00"


def test_known_servers_file_written_by_hand_is_read_leniently() -> None:
    text = json.dumps({"servers": {"Chat.Lan:8765": {"sha256": FP_A.lower().replace(":", "")}}})
    assert parse_known(text, "f.json") == {"chat.lan:8765": FP_A}
    assert parse_known("", "f.json") == {}
    assert parse_known("  \n", "f.json") == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", 'has no "servers" object'),
        ('{"servers": []}', 'has no "servers" object'),
        ('{"servers": {"a:1": "AB"}}', 'The entry "a:1" in the known servers file f.json has no valid'),
        ('{"servers": {"a:1": {"sha256": "AB:CD"}}}', 'The entry "a:1"'),
    ],
)
def test_an_unusable_known_servers_file_is_an_error_naming_it_never_an_empty_list(
    text: str, words: str
) -> None:
    with pytest.raises(KnownServersError) as err:
        parse_known(text, "f.json")
    assert words in str(err.value)
    assert "f.json" in str(err.value) and "delete it" in str(err.value)


def test_default_known_servers_path_follows_env_and_config_folders() -> None:
    home = "/home/ann"
    assert default_known_path({}, home) == "/home/ann/.config/wschat/known_servers.json"
    assert default_known_path({"XDG_CONFIG_HOME": "/cfg"}, home) == "/cfg/wschat/known_servers.json"
    assert default_known_path({KNOWN_ENV: "/tmp/k.json", "XDG_CONFIG_HOME": "/cfg"}, home) == "/tmp/k.json"
    windows = default_known_path({"APPDATA": r"C:\Users\ann\AppData\Roaming"}, home, windows=True)
    assert windows == r"C:\Users\ann\AppData\Roaming\wschat\known_servers.json"


def test_the_changed_warning_shows_both_fingerprints_and_how_to_accept_the_change() -> None:
    text = changed_warning("chat.lan:8765", FP_A, FP_B, "/home/ann/.config/wschat/known_servers.json")
    assert "THE CERTIFICATE OF chat.lan:8765 HAS CHANGED" in text
    assert f"Trusted:   {FP_A}" in text and f"Presented: {FP_B}" in text
    assert 'remove the entry "chat.lan:8765" from /home/ann/.config/wschat/known_servers.json' in text


def test_the_refusal_without_a_terminal_says_what_to_do_instead() -> None:
    text = noninteractive_refusal("chat.lan:8765", FP_A, "self-signed certificate")
    assert text.startswith("Not connecting: the certificate of chat.lan:8765 is not trusted")
    assert FP_A in text and "--cafile" in text and "connect once interactively" in text
    assert "\n" not in text
