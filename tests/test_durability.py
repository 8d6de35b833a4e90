"""Durable history and gap-free resume, against real servers with real SQLite files."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, Client, ServerProcess, logged_in, start_server
from websockets.exceptions import ConnectionClosed

FAST = ("--rate", "10000", "--burst", "10000", "--control-rate", "1000", "--control-burst", "1000")


async def position(client: Client, room: str = "general") -> dict[str, Any]:
    """The (epoch, last seq) a client holds for a room, from what it has received."""
    epoch = next(f["epoch"] for f in reversed(client.seen) if f["type"] == "joined" and f["room"] == room)
    seqs = [f["seq"] for f in client.seen if f["type"] == "chat" and f["room"] == room]
    seqs += [m["seq"] for f in client.seen if f["type"] == "history" for m in f["messages"]]
    return {"epoch": epoch, "seq": max(seqs, default=0)}


async def send_numbered(client: Client, count: int, prefix: str = "m") -> None:
    for i in range(count):
        await client.chat(f"{prefix}{i}", client_msg_id=f"{prefix}{i}")
    await client.expect("ack", client_msg_id=f"{prefix}{count - 1}")


# ---------------------------------------------------------------- crash durability


async def test_every_acknowledged_message_survives_20_kill_9_restarts(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    rng = random.Random(20261125)
    acked: dict[str, tuple[str, int]] = {}
    outbox: dict[str, str] = {}
    counter = 0

    async def take_ack(client: Client) -> None:
        ack = await client.expect("ack")
        previous = acked.setdefault(ack["client_msg_id"], (ack["id"], ack["seq"]))
        assert previous == (ack["id"], ack["seq"]), "one message acknowledged with two ids"
        outbox.pop(ack["client_msg_id"], None)

    async def crash_round(kill_after: int) -> None:
        nonlocal counter
        srv = ServerProcess(*FAST, db=str(db)).wait_ready()
        try:
            client = await logged_in(srv.port, "Sender")
            for cmid, text in list(outbox.items()):  # resend what was never acknowledged
                await client.chat(text, client_msg_id=cmid)
            for _ in range(kill_after):
                while len(outbox) < 40:  # keep up to 40 messages in flight
                    counter += 1
                    outbox[f"msg-{counter}"] = f"durable {counter}"
                    await client.chat(outbox[f"msg-{counter}"], client_msg_id=f"msg-{counter}")
                await take_ack(client)
            srv.kill()  # SIGKILL with messages in flight: only what was committed may survive
            with pytest.raises(ConnectionClosed):
                while True:
                    await client.recv()
        finally:
            await srv.astop()

    for _ in range(20):
        await crash_round(kill_after=rng.randint(5, 40))
    srv = ServerProcess(*FAST, db=str(db)).wait_ready()  # a clean last round delivers the rest
    try:
        client = await logged_in(srv.port, "Sender")
        for cmid, text in list(outbox.items()):
            await client.chat(text, client_msg_id=cmid)
        while outbox:
            await take_ack(client)
    finally:
        await srv.astop()
    assert len(acked) == counter
    rows = stored_once(db, acked)
    await replayed_in_order(db, rows)


async def replayed_in_order(db: Path, rows: list[tuple]) -> None:
    """Through the protocol: the whole history, once, in seq order."""
    with sqlite3.connect(db) as conn:
        epoch = conn.execute("SELECT epoch FROM rooms WHERE name = 'general'").fetchone()[0]
    srv = ServerProcess(db=str(db)).wait_ready()
    try:
        reader = await logged_in(srv.port, "Reader", resume={"general": {"epoch": epoch, "seq": 0}})
        history = next(f for f in reader.seen if f["type"] == "history")
        assert history["mode"] == "resume"
        assert [(m["client_msg_id"], m["seq"]) for m in history["messages"]] == [
            (cmid, seq) for _, seq, cmid, _ in rows
        ]
    finally:
        await srv.astop()


def stored_once(db: Path, acked: dict[str, tuple[str, int]]) -> list[tuple]:
    """Every acknowledged message is in the database once, with the id and seq it was acked with."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT id, seq, client_msg_id, text FROM messages ORDER BY seq").fetchall()
    by_cmid: dict[str, list[tuple[str, int]]] = {}
    for mid, seq, cmid, _ in rows:
        by_cmid.setdefault(cmid, []).append((str(mid), seq))
    assert {cmid: found for cmid, found in by_cmid.items()} == {c: [a] for c, a in acked.items()}
    seqs = [seq for _, seq, _, _ in rows]
    assert seqs == sorted(set(seqs))
    return rows


# ---------------------------------------------------------------- resume


async def test_a_reconnecting_client_gets_exactly_the_120_it_missed_once_in_order() -> None:
    server = await start_server(*FAST)
    try:
        alice = await logged_in(server.port, "Alice")
        bob = await logged_in(server.port, "Bob")
        await send_numbered(bob, 3, "before")
        await alice.expect("chat", message="before2")
        where = await position(alice)
        await alice.close()

        await send_numbered(bob, 120)
        alice = await logged_in(server.port, "Alice", resume={"general": where})
        history = next(f for f in alice.seen if f["type"] == "history")
        assert history["mode"] == "resume" and "skipped" not in history
        assert [m["message"] for m in history["messages"]] == [f"m{i}" for i in range(120)]
        assert [m["seq"] for m in history["messages"]] == list(range(where["seq"] + 1, where["seq"] + 121))

        await bob.chat("after")
        after = await alice.expect("chat")
        assert after["message"] == "after" and after["seq"] == where["seq"] + 121
    finally:
        await server.stop()


async def test_resume_works_across_a_server_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess(*FAST, db=db).wait_ready()
    alice = await logged_in(srv.port, "Alice")
    await send_numbered(alice, 2, "old")
    where = await position(alice)
    await alice.close()
    bob = await logged_in(srv.port, "Bob")
    await send_numbered(bob, 120)
    assert await srv.astop() == 0

    srv = ServerProcess(*FAST, db=db).wait_ready()
    try:
        alice = await logged_in(srv.port, "Alice", resume={"general": where})
        history = next(f for f in alice.seen if f["type"] == "history")
        assert history["mode"] == "resume" and history["epoch"] == where["epoch"]
        assert [m["message"] for m in history["messages"]] == [f"m{i}" for i in range(120)]
    finally:
        await srv.astop()


async def test_a_new_database_changes_the_epoch_and_sends_fresh_history(tmp_path: Path) -> None:
    srv = ServerProcess(*FAST, db=str(tmp_path / "one.db")).wait_ready()
    alice = await logged_in(srv.port, "Alice")
    await send_numbered(alice, 5)
    where = await position(alice)
    await srv.astop()

    srv = ServerProcess(*FAST, db=str(tmp_path / "two.db")).wait_ready()
    try:
        bob = await logged_in(srv.port, "Bob")
        await send_numbered(bob, 2, "new")
        alice = await logged_in(srv.port, "Alice", resume={"general": where})
        history = next(f for f in alice.seen if f["type"] == "history")
        assert history["mode"] == "recent" and history["epoch_changed"] is True
        assert history["epoch"] != where["epoch"]
        assert [m["message"] for m in history["messages"]] == ["new0", "new1"]
    finally:
        await srv.astop()


async def test_an_empty_rooms_epoch_survives_a_restart_with_the_same_database(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess(db=db).wait_ready()
    alice = await logged_in(srv.port, "Alice", rooms=["general", "quiet"])
    epochs = {f["room"]: f["epoch"] for f in alice.seen if f["type"] == "joined"}
    await srv.astop()
    srv = ServerProcess(db=db).wait_ready()
    try:
        resume = {room: {"epoch": epoch, "seq": 0} for room, epoch in epochs.items()}
        alice = await logged_in(srv.port, "Alice", resume=resume)
        histories = [f for f in alice.seen if f["type"] == "history"]
        assert {h["room"]: (h["epoch"], h["mode"]) for h in histories} == {
            room: (epoch, "resume") for room, epoch in epochs.items()
        }
    finally:
        await srv.astop()


async def test_a_rooms_history_is_read_back_when_someone_joins_after_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess(*FAST, db=db).wait_ready()
    alice = await logged_in(srv.port, "Alice", rooms=["dev"])
    for i in range(3):
        await alice.chat(f"dev {i}", room="dev", client_msg_id=f"d{i}")
    await alice.expect("ack", client_msg_id="d2")
    await srv.astop()
    srv = ServerProcess(*FAST, db=db).wait_ready()
    try:
        bob = await logged_in(srv.port, "Bob")
        await bob.send({"type": "list_rooms"})
        assert {"name": "dev", "members": 0, "joined": False} in (await bob.expect("rooms"))["rooms"]
        await bob.send({"type": "join", "room": "dev"})
        history = await bob.expect("history", room="dev")
        assert [m["message"] for m in history["messages"]] == ["dev 0", "dev 1", "dev 2"]
        await bob.chat("dev 3", room="dev")
        assert (await bob.expect("chat", room="dev"))["seq"] == 4
    finally:
        await srv.astop()


async def test_scrollback_pages_through_the_database(tmp_path: Path) -> None:
    srv = ServerProcess(*FAST, db=str(tmp_path / "chat.db")).wait_ready()
    try:
        alice = await logged_in(srv.port, "Alice")
        await send_numbered(alice, 1300)
        before, seen = 1301, []
        while True:
            await alice.send({"type": "fetch_history", "room": "general", "before_seq": before, "limit": 100})
            page = await alice.expect("history", mode="page", before_seq=before)
            assert len(page["messages"]) <= 100
            seen[:0] = [m["seq"] for m in page["messages"]]
            if not page["more"]:
                break
            before = page["messages"][0]["seq"]
        assert seen == list(range(1, 1301))
    finally:
        await srv.astop()


# ---------------------------------------------------------------- idempotent sends


async def test_a_repeated_client_msg_id_is_stored_and_broadcast_once(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.db")
    srv = ServerProcess(*FAST, db=db).wait_ready()
    watcher = await logged_in(srv.port, "Watcher")
    alice = await logged_in(srv.port, "Alice")
    await alice.chat("only once", client_msg_id="same")
    await alice.chat("only once", client_msg_id="same")
    first = await alice.expect("ack", client_msg_id="same")
    second = await alice.expect("ack", client_msg_id="same")
    assert "duplicate" not in first and second["duplicate"] is True
    assert (first["id"], first["seq"]) == (second["id"], second["seq"])

    await alice.close()  # again after a reconnect
    alice = await logged_in(srv.port, "Alice")
    await alice.chat("only once", client_msg_id="same")
    assert (await alice.expect("ack", client_msg_id="same"))["duplicate"] is True
    await alice.chat("marker 1")
    assert [f["message"] for f in [await watcher.expect("chat"), await watcher.expect("chat")]] == [
        "only once",
        "marker 1",
    ]
    await srv.astop()

    srv = ServerProcess(*FAST, db=db).wait_ready()  # and again after a restart
    try:
        watcher = await logged_in(srv.port, "Watcher")
        alice = await logged_in(srv.port, "Alice")
        await alice.chat("only once", client_msg_id="same")
        again = await alice.expect("ack", client_msg_id="same")
        assert again["duplicate"] is True and again["seq"] == first["seq"]
        await alice.chat("marker 2")
        assert (await watcher.expect("chat"))["message"] == "marker 2"
    finally:
        await srv.astop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE client_msg_id = 'same'").fetchone()[0] == 1


# ---------------------------------------------------------------- the database and the event loop


async def test_database_work_never_runs_on_the_event_loop_thread(tmp_path: Path) -> None:
    server = await start_server(*FAST, db=str(tmp_path / "chat.db"))
    threads: set[str] = set()
    server.store.db.set_trace_callback(lambda _sql: threads.add(threading.current_thread().name))
    try:
        alice = await logged_in(server.port, "Alice")
        await send_numbered(alice, 50)
        await alice.send({"type": "fetch_history", "room": "general", "before_seq": 2})
        await alice.expect("history", mode="page")
        assert threads == {"chat-db-write"}
        assert threading.current_thread().name not in threads
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("db", "words"),
    [("{tmp}/no/such/folder/chat.db", "does not exist"), ("{tmp}", "is a folder"), ("{junk}", "corrupt")],
)
def test_a_bad_db_path_exits_2_with_one_sentence(tmp_path: Path, db: str, words: str) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 512)
    path = db.format(tmp=tmp_path, junk=junk)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "chat-server.py"), "--port", "0", "--db", path],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and path in lines[0] and words in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_readme_states_what_survives_a_power_cut() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "power cut" in readme and "--synchronous" in readme
