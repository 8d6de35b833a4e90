"""wschat.features.moderation without sockets, and its tables on a real SQLite file: who may
moderate, a guest banned by address, a mute's expiry at the tick, the store's re-read applied
(a ban written by the admin command line closes the connection), and the audit rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hubharness import Harness, only

from wschat import protocol as p
from wschat.features.mod_records import Moderate, ModState, ReadModeration, Restriction
from wschat.hub import sessions
from wschat.modstore import SCHEMA, audit, moderate, read
from wschat.names import name_key


class ModHarness(Harness):
    """Answers moderation's store commands: writes are kept, re-reads answered with `state`."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.written: list[Moderate] = []
        self.state: ModState | None = None

    def execute(self, token: int, command: Any) -> None:
        if isinstance(command, Moderate):
            self.written.append(command)
            self.answer(token, None)
        elif isinstance(command, ReadModeration):
            if self.state is not None:
                self.answer(token, self.state)
        else:
            super().execute(token, command)

    def member(self, cid: int, name: str, address: str, account: bool = False) -> None:
        self.run(self.hub.connect(cid, self.now, address))
        if not account:
            self.send(cid, {"type": "set_username", "username": name})
        else:  # an account's log-in as accounts._logged_in ends it (the password check is elsewhere)
            self.hub.accounts.add(name)
            s = self.hub.sessions[cid]
            s.account = True
            named = p.SetUsername(name, ("general",), {})
            key = name_key(name)
            self.run(sessions.accept(self.hub, s, name, key, frozenset(), named, self.now, ("t", "s")))
        self.take(cid)


def test_a_guest_banned_by_an_operator_cannot_come_back_under_another_name() -> None:
    h = ModHarness(admins=frozenset({"op"}))
    h.member(1, "Op", "10.0.0.1", account=True)
    h.member(2, "Troll", "10.0.0.9")
    h.send(2, {"type": "ban", "username": "Op"})
    assert only(h.take(2), "error")[0]["code"] == "not_moderator"
    h.send(1, {"type": "ban", "username": "Troll", "reason": "spam"})
    assert h.closed[2][0] == 4003
    assert [w.action for w in h.written] == ["ban"] and h.written[0].subject == "address:10.0.0.9"
    h.leave(2)
    h.run(h.hub.connect(3, h.now, "10.0.0.9"))
    h.send(3, {"type": "set_username", "username": "Friendly"})
    (refused,) = h.take(3)
    assert refused["type"] == "username_error" and refused["code"] == "banned"
    assert "spam" in refused["message"]
    h.run(h.hub.connect(4, h.now, "10.0.0.10"))  # another address is not banned
    h.send(4, {"type": "set_username", "username": "Friendly"})
    assert h.take(4)[0]["type"] == "username_accepted"


def test_a_mute_ends_at_the_tick_with_a_room_event_by_the_server() -> None:
    h = ModHarness(admins=frozenset({"op"}))
    h.member(1, "Op", "10.0.0.1", account=True)
    h.member(2, "Bob", "10.0.0.2")
    h.send(1, {"type": "mute", "room": "general", "username": "Bob", "seconds": 5})
    h.chat(2, "hello?")
    assert only(h.take(2), "error")[0]["code"] == "muted"
    h.advance(6)
    h.run(h.hub.tick(h.now))
    (ended,) = [f for f in h.take(2) if f["type"] == "moderation" and f["action"] == "unmute"]
    assert ended["by"] == "Server" and ended["username"] == "Bob" and ended["seq"] > 0
    h.chat(2, "hello!")
    assert only(h.take(2), "chat")[0]["message"] == "hello!"


def test_a_muted_user_shares_no_file_and_a_newcomer_sees_the_mute_in_its_history() -> None:
    h = ModHarness(admins=frozenset({"op"}))
    h.member(1, "Op", "10.0.0.1", account=True)
    h.member(2, "Bob", "10.0.0.2")
    h.chat(1, "before")
    h.send(1, {"type": "mute", "room": "general", "username": "Bob", "seconds": 60})
    h.take(2)
    h.send(2, {"type": "upload_begin", "room": "general", "name": "a.txt", "size": 3, "sha256": "0" * 64})
    refused = only(h.take(2), "error")
    assert refused[0]["code"] == "muted" and "your file was not sent" in refused[0]["message"]
    h.chat(1, "after")
    h.member(3, "Carol", "10.0.0.3")  # a newcomer: the mute is in its recent history, in seq order
    h.send(3, {"type": "join", "room": "general"})
    history = only(h.take(3), "history")[0]["messages"]
    kinds = [(m["type"], m.get("message") or m.get("action")) for m in history]
    assert kinds == [("chat", "before"), ("moderation", "mute"), ("chat", "after")]


def test_a_ban_the_store_holds_now_closes_the_connection_at_the_re_read() -> None:
    h = ModHarness()
    h.member(1, "Bob", "10.0.0.2", account=True)
    banned = Restriction("ban", "", "account:bob", "Bob", 0.0, "from the host", "admin (host)")
    h.state = ModState(restrictions=[banned])
    h.advance(3)
    h.run(h.hub.tick(h.now))
    assert h.closed[1][0] == 4003
    assert "from the host" in only(h.take(1), "system")[0]["message"]


def test_the_tables_keep_bans_rules_and_the_audit(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "chat.db", isolation_level=None)
    db.executescript(SCHEMA)
    r = Restriction("ban", "dev", "account:bob", "Bob", 100.0, "rude", "Carol")
    moderate(db, Moderate("ban", "Carol", "dev", r.subject, "Bob", "", 10.0, r))
    moderate(db, Moderate("topic", "Carol", "dev", "", "", "plans", 11.0))
    moderate(db, Moderate("invite", "Carol", "dev", "dan", "Dan", "", 12.0))
    moderate(db, Moderate("grant", "admin (host)", "", "dan", "Dan", "", 13.0))
    state = read(db, 50.0)
    assert state.restrictions == [r]
    assert state.rooms["dev"].topic == "plans" and state.rooms["dev"].invited == {"dan"}
    assert state.operators == {"dan": True}
    assert read(db, 100.0).restrictions == []  # run out
    moderate(db, Moderate("kick", "Carol", "dev", "account:eve", "Eve", "", 101.0))
    assert db.execute("SELECT count(*) FROM restrictions").fetchone() == (0,)  # deleted at the next write
    assert [row[2] for row in audit(db)] == ["kick", "grant", "invite", "topic", "ban"]
