"""The real server on an ephemeral port, driven by real websockets clients and HTTP requests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from rawws import RawClient  # a raw socket: it never answers pings
from support import ROOT, Client, ServerProcess, logged_in, start_server
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wschat.server import ChatServer


def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, port, path, method)


# ---------------------------------------------------------------- the seed protocol


async def test_seed_flow_username_history_join_chat_users_leave(server: ChatServer) -> None:
    alice = await Client.open(server.port)
    await alice.send({"type": "set_username", "username": "Alice"})
    accepted = await alice.recv()
    assert accepted["type"] == "username_accepted" and accepted["username"] == "Alice"
    assert accepted["client_id"]
    assert (await alice.recv())["type"] == "joined"
    history = await alice.recv()
    assert history["type"] == "history" and history["messages"] == []
    join = await alice.recv()
    assert join["type"] == "user_join" and join["online_users"] == 1 and join["users_list"] == ["Alice"]

    bob = await logged_in(server.port, "Bob")
    join = await alice.expect("user_join", username="Bob")
    assert join["online_users"] == 2 and join["users_list"] == ["Alice", "Bob"]
    assert join["message"] == "Bob joined the chat"

    await bob.chat("Hello everyone!")
    for c in (alice, bob):
        msg = await c.expect("chat")
        assert msg["message"] == "Hello everyone!" and msg["username"] == "Bob"
        assert msg["timestamp"].endswith("+00:00") and msg["id"] and msg["seq"] == 1

    await alice.send({"type": "get_users"})
    users = await alice.expect("online_users")
    assert users["users"] == ["Alice", "Bob"] and users["count"] == 2

    await bob.close()
    leave = await alice.expect("user_leave")
    assert leave["username"] == "Bob" and leave["online_users"] == 1 and leave["users_list"] == ["Alice"]
    await alice.close()


async def test_chat_client_id_is_the_senders_accepted_client_id(server: ChatServer) -> None:
    alice = await Client.open(server.port)
    accepted = await alice.login("Alice")
    await alice.chat("hi")
    assert (await alice.expect("chat"))["client_id"] == accepted["client_id"]
    await alice.close()


async def test_a_spoofed_username_in_a_chat_payload_is_ignored(server: ChatServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    await alice.chat("I am Bob", username="Bob", client_id="fake")
    msg = await bob.expect("chat")
    assert msg["username"] == "Alice" and msg["client_id"] != "fake"
    await alice.close()
    await bob.close()


@pytest.mark.parametrize(
    ("flags", "sent", "seen"),
    [
        ((), 60, range(10, 60)),  # the default: exactly the last 50 of 60, in order
        (("--history-size", "5"), 8, range(3, 8)),
    ],
)
async def test_a_newcomer_gets_the_last_history_size_messages_in_order(
    flags: tuple[str, ...], sent: int, seen: range
) -> None:
    server = await start_server("--burst", "100", *flags)
    try:
        alice = await logged_in(server.port, "Alice")
        for i in range(sent):
            await alice.chat(f"message {i}")
        await alice.expect("chat", message=f"message {sent - 1}")
        bob = await Client.open(server.port)
        await bob.send({"type": "set_username", "username": "Bob"})
        history = await bob.expect("history")
        assert [m["message"] for m in history["messages"]] == [f"message {i}" for i in seen]
        assert all(m["username"] == "Alice" for m in history["messages"])
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("alice", "name_taken"),
        ("ALICE", "name_taken"),
        ("Ａｌｉｃｅ", "name_taken"),
        ("", "name_empty"),
        ("  ", "name_empty"),
        ("n" * 33, "name_too_long"),
        ("Ali\u200bce", "name_invalid_chars"),
        ("\u2060", "name_invalid_chars"),
    ],
)
async def test_name_rules_refuse_with_a_reason_and_allow_a_retry(
    server: ChatServer, name: str, code: str
) -> None:
    alice = await logged_in(server.port, "Alice")
    other = await Client.open(server.port)
    await other.send({"type": "set_username", "username": name})
    err = await other.expect("username_error")
    assert err["code"] == code and len(err["message"]) > 10
    await other.login("Zed")
    await alice.close()
    await other.close()


async def test_join_and_leave_counts_follow_connections(server: ChatServer) -> None:
    watcher = await logged_in(server.port, "Watcher")
    clients = [await logged_in(server.port, f"user{i}") for i in range(5)]
    last = await watcher.expect("user_join", username="user4")
    assert last["online_users"] == 6
    for c in clients[:3]:
        await c.close()
    counts = [(await watcher.expect("user_leave"))["online_users"] for _ in range(3)]
    assert counts == [5, 4, 3]
    await watcher.send({"type": "get_users"})
    assert (await watcher.expect("online_users"))["count"] == 3


# ---------------------------------------------------------------- rooms and private messages


async def test_rooms_keep_history_presence_and_messages_apart(server: ChatServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    await alice.send({"type": "join", "room": "dev"})
    joined = await alice.expect("joined", room="dev")
    assert joined["online_users"] == 1
    await alice.chat("in dev", room="dev")
    await alice.chat("in general")
    await alice.expect("chat", message="in general")
    general_msgs = [f for f in [await bob.expect("chat")] if f["room"] == "general"]
    assert [m["message"] for m in general_msgs] == ["in general"]

    await bob.send({"type": "list_rooms"})
    rooms = (await bob.expect("rooms"))["rooms"]
    assert {"name": "dev", "members": 1, "joined": False} in rooms

    await bob.send({"type": "join", "room": "dev"})
    history = await bob.expect("history", room="dev")
    assert [m["message"] for m in history["messages"]] == ["in dev"]
    assert (await alice.expect("user_join", room="dev", username="Bob"))["online_users"] == 2
    await bob.send({"type": "leave", "room": "dev"})
    await bob.expect("left", room="dev")
    leave = await alice.expect("user_leave", room="dev")
    assert leave["online_users"] == 1
    await alice.close()
    await bob.close()


async def test_private_messages_reach_only_both_ends(server: ChatServer) -> None:
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    carol = await logged_in(server.port, "Carol")
    await alice.send({"type": "private", "to": "Bob", "message": "secret", "client_msg_id": "p1"})
    got = await bob.expect("private")
    assert got["from"] == "Alice" and got["to"] == "Bob" and got["message"] == "secret"
    assert got["id"] and got["seq"] == 1
    assert (await alice.expect("private"))["id"] == got["id"]
    assert (await alice.expect("ack"))["client_msg_id"] == "p1"
    await alice.send({"type": "private", "to": "Nobody", "message": "?"})
    assert (await alice.expect("error"))["code"] == "no_such_user"
    # Carol got nothing private: a chat sent after it arrives first in her queue
    await alice.chat("public")
    assert (await carol.expect("chat"))["message"] == "public"
    assert not [f for f in carol.seen if f["type"] == "private"]
    for c in (alice, bob, carol):
        await c.close()


# ---------------------------------------------------------------- bad input


BAD_FRAMES = [
    ("{oops", "bad_json"),
    ("[1, 2, 3]", "bad_frame"),
    ('{"no_type": 1}', "bad_frame"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "chat"}', "bad_field"),
    ('{"type": "chat", "message": 42}', "bad_field"),
    ('{"type": "set_username", "username": ["x"]}', "bad_field"),
    ("[" * 10_000 + "]" * 10_000, "bad_json"),
    ('{"type":"chat","message":"\\udc00"}', "bad_json"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_input_gets_an_error_and_the_connection_stays_up(
    server: ChatServer, frame: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bystander = await logged_in(server.port, "Bystander")
    c = await logged_in(server.port, "Tester")
    await c.send(frame)
    err = await c.expect("error")
    assert err["code"] == code and err["message"]
    await c.chat("still here")
    assert (await bystander.expect("chat"))["message"] == "still here"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    await c.close()
    await bystander.close()


async def test_chat_before_a_name_is_an_error_and_a_name_still_works(server: ChatServer) -> None:
    c = await Client.open(server.port)
    await c.chat("too early")
    assert (await c.expect("error"))["code"] == "not_logged_in"
    await c.login("Late")
    await c.close()


async def test_binary_frames_get_an_error(server: ChatServer) -> None:
    c = await logged_in(server.port, "Binary")
    await c.send(b"\x00\x01\x02")
    assert (await c.expect("error"))["code"] == "binary_unsupported"
    await c.chat("text works")
    await c.expect("chat", message="text works")
    await c.close()


async def test_fragmented_text_messages_are_understood(server: ChatServer) -> None:
    c = await logged_in(server.port, "Fragments")
    await c.ws.send(iter(['{"type":"chat",', '"message":"in pieces"}']))
    await c.expect("chat", message="in pieces")
    await c.close()


async def test_a_too_long_message_is_refused_with_too_long(server: ChatServer) -> None:
    c = await logged_in(server.port, "Verbose")
    await c.chat("x" * 4001, client_msg_id="big")
    err = await c.expect("error")
    assert err["code"] == "too_long" and err["client_msg_id"] == "big"
    await c.close()


async def test_an_oversized_frame_closes_with_1009_and_others_carry_on(server: ChatServer) -> None:
    other = await logged_in(server.port, "Other")
    big = await logged_in(server.port, "Big")
    await big.send(json.dumps({"type": "chat", "message": "x" * 70_000}))
    with pytest.raises(ConnectionClosed):
        while True:
            await big.recv()
    assert big.ws.close_code == 1009
    await other.chat("fine")
    await other.expect("chat", message="fine")
    await other.close()


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(server: ChatServer) -> None:
    c = await logged_in(server.port, "Bytes")
    # websockets refuses to send invalid UTF-8 as text, so write the frame by hand (masked)
    payload = b'{"type":"chat","message":"\xff\xfe"}'
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    c.ws.transport.write(bytes((0x81, 0x80 | len(payload))) + mask + masked)
    with pytest.raises(ConnectionClosed):
        while True:
            await c.recv()
    assert c.ws.close_code == 1007


# ---------------------------------------------------------------- HTTP on the same port


async def test_http_routes_share_the_websocket_port(server: ChatServer) -> None:
    status, headers, body = await get(server.port, "/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    health = json.loads(body)
    assert health["status"] == "ok" and health["uptime_s"] >= 0
    assert {"connections", "users", "rooms"} <= set(health)

    for path, name in (("/", "chat-web-client.html"), ("/demo", "websocket-demo.html")):
        status, headers, body = await get(server.port, path)
        if (ROOT / name).exists():
            assert status == 200 and headers["Content-Type"].startswith("text/html")
            assert body == (ROOT / name).read_bytes()
        else:
            assert status == 404 and name.encode() in body

    status, _, body = await get(server.port, "/nope")
    assert status == 404
    status, headers, _ = await get(server.port, "/", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, _, body = await get(server.port, "/healthz", method="HEAD")
    assert status == 200 and body == b""


async def test_healthz_counts_users_and_rooms(server: ChatServer) -> None:
    a = await logged_in(server.port, "A")
    await a.send({"type": "join", "room": "dev"})
    await a.expect("history", room="dev")
    health = json.loads((await get(server.port, "/healthz"))[2])
    assert health["users"] == 1 and health["connections"] == 1 and health["rooms"] == 2
    await a.close()


async def test_websocket_on_an_unknown_path_is_refused_with_404(server: ChatServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Client.open(server.port, "/elsewhere")
    assert info.value.response.status_code == 404


async def test_echo_endpoint_echoes(server: ChatServer) -> None:
    c = await Client.open(server.port, "/echo")
    await c.ws.send("ping 1")
    assert await c.ws.recv() == "ping 1"
    await c.ws.send(b"\x00bin")
    assert await c.ws.recv() == b"\x00bin"
    await c.close()


# ---------------------------------------------------------------- the process: banner, options, signals


def test_banner_lists_local_and_network_addresses() -> None:
    srv = ServerProcess("--host", "0.0.0.0", "--no-mdns")  # tests send nothing onto the real LAN
    try:
        srv.wait_ready()
        banner = srv.banner
        assert banner[0] == f"Starting WebSocket chat server on ws://0.0.0.0:{srv.port}"
        assert banner[1] == "=" * 50 and banner[2] == "Server is accessible at:"
        assert banner[3] == f"  ws://localhost:{srv.port} (local only)"
        network = [line for line in banner if line.endswith("(network)")]
        assert all(line.startswith("  ws://") for line in network)
        assert any(line.startswith("  Web client: http://") for line in banner)
        assert banner[-2:] == ["=" * 50, "Share the network address with other users to connect!"]
    finally:
        srv.stop()


def test_help_explains_every_option() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "chat-server.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--host", "--port", "--history-size", "--debug", "--db", "--max-frame-bytes"):
        assert flag in out
    assert "CHAT_PORT" in out and "CHAT_HOST" in out


def test_port_and_host_come_from_the_environment() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "chat-server.py"), "--db", ":memory:"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHAT_PORT": str(port), "CHAT_HOST": "127.0.0.1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.strip() == f"Starting WebSocket chat server on ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_port_in_use_prints_one_sentence_and_exits_2() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "chat-server.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                ":memory:",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"Port {port} is already in use (is another chat server running?); "
        "stop it or choose another port with --port."
    )
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_closes_every_connection_with_1001_and_exits_0(sig: int) -> None:
    srv = ServerProcess()
    srv.wait_ready()
    try:
        a = await logged_in(srv.port, "A")
        b = await logged_in(srv.port, "B")
        srv.signal(sig)
        notice = await a.expect("system")
        assert "shutting down" in notice["message"]
        for c in (a, b):
            with pytest.raises(ConnectionClosed):
                while True:
                    await c.recv()
            assert c.ws.close_code == 1001
        assert await asyncio.to_thread(srv.proc.wait, 10) == 0
        assert "Traceback" not in srv.stderr_text()
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"\\ud800"}',
        '{"type":"set_username","username":"Bob","rooms":["\\ud800"]}',
        '{"type":"set_username","username":"Bob","resume":{"\\udfff":{"epoch":"e","seq":1}}}',
        '{"type":"join","room":"\\ud800"}',
        '{"type":"get_users","room":"\\ud800x"}',
    ],
)
async def test_lone_surrogates_echoed_in_errors_do_not_break_the_connection(
    server: ChatServer, frame: str
) -> None:
    c = await Client.open(server.port)
    await c.send(frame)
    await c.send({"type": "set_username", "username": "Survivor"})
    await c.expect("username_accepted")
    await c.chat("still connected")
    await c.expect("chat", message="still connected")
    await c.close()


async def test_a_bug_in_the_hub_costs_one_frame_not_the_connection(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    c = await logged_in(server.port, "Alice")
    original = server.hub.receive

    def broken(cid: int, text: str, now: float) -> list:
        if "boom" in text:
            raise RuntimeError("planted bug")
        return original(cid, text, now)

    monkeypatch.setattr(server.hub, "receive", broken)
    await c.chat("boom")
    assert (await c.expect("error"))["code"] == "internal_error"
    await c.chat("after")
    await c.expect("chat", message="after")
    assert any("planted bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    await c.close()


async def test_a_silent_echo_connection_is_dropped_by_the_keepalive_sweep() -> None:
    server = await start_server("--ping-interval", "0.5")
    try:
        silent = await RawClient.connect(server.port, "/echo")
        assert silent.status == 101
        assert len(server.echoes) == 1
        while await asyncio.wait_for(silent.reader.read(4096), 10):  # pings, then end of stream
            pass
        silent.close()
    finally:
        await server.stop()
