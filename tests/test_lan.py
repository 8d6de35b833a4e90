"""Joining on a LAN, the parts without a network: the announcement's name, TXT records and
addresses, what a found service reads back as, the client's list and the meaning of an answer
(wschat.lan); the QR codes (wschat.qr), and the banner's code read back from a real server's
output and compared with segno's own matrix for the web client's address."""

from __future__ import annotations

import io
import logging
import re

import pytest
import segno
from PIL import Image
from support import ServerProcess

from wschat import __version__, qr
from wschat.lan import (
    SERVICE_TYPE,
    BadChoice,
    Found,
    announce_plan,
    choose,
    found,
    instance_name,
    listing,
    ordered,
    prompt,
    txt_records,
)
from wschat.mdns import Announcement
from wschat.webapp import PNG_ICONS, STATIC, icon_png

FP = ":".join(["AB"] * 32)


def test_the_instance_name_is_the_option_or_wschat_on_the_host_and_fits_one_dns_label() -> None:
    assert instance_name(None, "box.example.org") == "wschat on box"
    assert instance_name("  Team   chat ", "box") == "Team chat"
    long = instance_name("é" * 40, "box")
    assert len(long.encode()) <= 63 and long == "é" * 31


def test_txt_records_say_the_protocol_tls_and_the_fingerprint_only_with_tls() -> None:
    assert txt_records(tls=False, fingerprint=FP) == {
        "protocol": "1",
        "tls": "0",
        "server": f"wschat/{__version__}",
    }
    assert txt_records(tls=True, fingerprint=FP)["fp"] == FP
    assert txt_records(tls=True, fingerprint=FP)["tls"] == "1"


def test_a_loopback_server_is_not_announced_and_a_wildcard_one_announces_its_network_addresses() -> None:
    assert announce_plan("127.0.0.1", ["192.0.2.5"], [], dual_stack=False) is None
    assert announce_plan("localhost", ["192.0.2.5"], [], dual_stack=False) is None
    plan = announce_plan("0.0.0.0", ["192.0.2.5", "198.51.100.7"], ["2001:db8::5"], dual_stack=False)
    assert plan is not None and plan.ipv4 == ("192.0.2.5", "198.51.100.7") and plan.ipv6 == ()
    assert plan.interfaces is None
    only = announce_plan("192.0.2.5", ["192.0.2.5", "198.51.100.7"], [], dual_stack=False)
    assert only is not None and only.ipv4 == ("192.0.2.5",) and only.interfaces == ("192.0.2.5",)
    v6 = announce_plan("::", ["192.0.2.5"], ["2001:db8::5"], dual_stack=True)
    assert v6 is not None and v6.ipv4 == ("192.0.2.5",) and v6.ipv6 == ("2001:db8::5",)
    alone = announce_plan("0.0.0.0", [], [], dual_stack=False)  # no network: only this machine
    assert alone is not None and alone.ipv4 == ("127.0.0.1",)


def test_a_found_service_reads_back_from_its_records() -> None:
    props = {b"protocol": b"1", b"tls": b"1", b"fp": FP.encode(), b"odd": None}
    f = found(f"Team\\.chat.{SERVICE_TYPE}", ["fe80::1", "2001:db8::5", "192.0.2.5"], 8443, props)
    assert f == Found("Team.chat", "192.0.2.5", 8443, True, FP, "1")
    assert f.address == "wss://192.0.2.5:8443" and f.compatible
    plain = found(f"x.{SERVICE_TYPE}", ["2001:db8::5"], 8765, {b"tls": b"0", b"fp": FP.encode()})
    assert plain is not None and plain.address == "[2001:db8::5]:8765" and plain.fingerprint == ""
    assert not plain.compatible  # no protocol record: not a server this client knows how to talk to
    assert found(f"x.{SERVICE_TYPE}", ["fe80::1"], 8765, {}) is None  # link-local only
    # a container bridge's address sorts first, but the one on this client's network is used
    addresses = ["172.17.0.1", "192.168.1.20"]
    mine = found(f"x.{SERVICE_TYPE}", addresses, 8765, {}, ("192.168.1.0/24", "127.0.0.0/8"))
    assert mine is not None and mine.host == "192.168.1.20"
    assert found(f"x.{SERVICE_TYPE}", ["192.0.2.5"], 0, {}) is None


def server(name: str, host: str, port: int = 8765, tls: bool = False, protocol: str = "1") -> Found:
    return Found(name, host, port, tls, FP if tls else "", protocol)


def test_the_list_is_numbered_by_name_once_per_address_with_tls_and_odd_protocols_last() -> None:
    servers = ordered(
        [
            server("zed", "192.0.2.9"),
            server("Alpha", "192.0.2.5", 8443, tls=True),
            server("zed", "192.0.2.9"),
            server("future", "192.0.2.7", protocol="2"),
        ]
    )
    assert listing(servers) == [
        "Chat servers on this network:",
        "  1. Alpha  wss://192.0.2.5:8443  TLS",
        "  2. zed  192.0.2.9:8765",
        "  3. future  192.0.2.7:8765  (protocol 2: this client cannot talk to it)",
    ]
    assert listing([], 2) == ["No chat servers found on this network (looked for 2 s)."]
    assert prompt(servers) == "Enter server address (a number, or default: wss://192.0.2.5:8443): "
    assert prompt([]) == "Enter server address (default: localhost:8765): "  # the seed's question


def test_an_answer_is_a_number_an_address_or_enter_for_the_first_server() -> None:
    servers = [server("a", "192.0.2.5"), server("b", "192.0.2.6")]
    assert choose("", servers) == servers[0]
    assert choose(" 2 ", servers) == servers[1]
    assert choose("192.0.2.9:8765", servers) == "192.0.2.9:8765"
    assert choose("", []) == "localhost:8765"
    with pytest.raises(BadChoice, match="type 1 to 2"):
        choose("3", servers)
    with pytest.raises(BadChoice, match="No servers were found"):
        choose("1", [])


def test_the_terminal_code_is_segnos_matrix_in_half_blocks_within_40_columns() -> None:
    url = "https://[2001:db8:1234:5678:9abc:def0:1234:5678]:8765/"
    lines = qr.terminal(url, color=False)
    assert max(len(line) for line in lines) <= 40
    rows = qr.read_half_blocks(lines)
    matrix = [list(row) for row in segno.make(url, micro=False, boost_error=True).matrix]
    inner = [row[qr.BORDER : qr.BORDER + len(matrix)] for row in rows[qr.BORDER : qr.BORDER + len(matrix)]]
    assert inner == matrix
    coloured = qr.terminal(url, color=True)
    assert all(c.startswith(qr.BLACK_ON_WHITE) and c.endswith(qr.RESET) for c in coloured)
    assert qr.terminal("http://example.org/" + "x" * 200, color=False) == []  # too wide: left out


def test_the_banner_shows_a_qr_code_of_the_web_address_that_decodes_to_it() -> None:
    srv = ServerProcess().wait_ready()
    try:
        url = f"http://127.0.0.1:{srv.port}/"
        heading = srv.banner.index(f"  Scan to open {url} on a phone:")
        code = []
        for line in srv.banner[heading + 1 :]:
            if not re.fullmatch(r"  [ ▀▄█]+", line):
                break
            code.append(line[2:])
        assert code and max(len(line) for line in code) + 2 <= 40
        rows = qr.read_half_blocks(code)
        matrix = [list(row) for row in segno.make(url, micro=False, boost_error=True).matrix]
        size = len(matrix)
        assert [row[qr.BORDER : qr.BORDER + size] for row in rows[qr.BORDER : qr.BORDER + size]] == matrix
        assert all(not any(row) for row in rows[: qr.BORDER])  # a quiet zone around it
    finally:
        srv.stop()
    quiet = ServerProcess("--no-qr").wait_ready()
    try:
        assert not any("Scan to open" in line or "█" in line for line in quiet.banner)
    finally:
        quiet.stop()


def test_the_shipped_icons_are_what_the_generator_draws() -> None:
    for name, (size, maskable) in PNG_ICONS.items():
        shipped = Image.open(STATIC / name)
        drawn = Image.open(io.BytesIO(icon_png(size, maskable=maskable)))
        assert shipped.size == (size, size) and shipped.tobytes() == drawn.tobytes(), (
            f"{name} is stale: run python tools/gen_icons.py"
        )


def test_zeroconf_warnings_while_announcing_become_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    plan = announce_plan("0.0.0.0", ["192.0.2.5"], [], dual_stack=False)
    assert plan is not None
    announcement = Announcement("Team chat", 8765, plan, txt_records(tls=False))
    zeroconf_log = logging.getLogger("zeroconf")
    zeroconf_log.addFilter(announcement.filter)  # as start() does, without opening any socket
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(3):  # e.g. every send refused on a network that blocks multicast
                zeroconf_log.warning("Error sending through socket 7\nTraceback ...")
    finally:
        zeroconf_log.removeFilter(announcement.filter)
    assert [r.name for r in caplog.records] == ["wschat.mdns"]
    assert caplog.records[0].getMessage() == (
        "Not announced on the LAN by mDNS (Error sending through socket 7); "
        "clients can still join with the address above."
    )
