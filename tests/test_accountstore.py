"""wschat.accountstore on a real SQLite file: what is stored (argon2id hashes, token SHA-256s,
never a password or a token), rehashing of old parameters, sessions per device."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from wschat.accountstore import AccountStore, token_hash
from wschat.features.account_records import (
    AccountSession,
    CheckPassword,
    CheckToken,
    CreateAccount,
    EndSession,
    ReadSessions,
    SetPassword,
)

PASSWORD = "correct horse battery"


def run(store: AccountStore, command: Any) -> Any:
    """Execute and wait for the answer (the store answers on its own threads)."""
    done = threading.Event()
    box: list[Any] = []
    store.notify = lambda fn, result: (box.append(result), done.set())
    store.execute(command, lambda result: None)
    assert done.wait(10)
    return box[0]


def test_the_database_holds_hashes_not_passwords_or_tokens(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.db")
    store = AccountStore(path, lambda fn, r: fn(r))
    assert store.open() == []
    made = run(store, CreateAccount("alice", "Alice", PASSWORD, "laptop", 1.0))
    assert isinstance(made, AccountSession) and len(made.token) >= 43
    assert run(store, CreateAccount("alice", "ALICE", PASSWORD, "x", 2.0)) is None  # taken
    store.close()
    db = sqlite3.connect(path)
    (stored,) = db.execute("SELECT hash FROM accounts").fetchone()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    (digest,) = db.execute("SELECT token_hash FROM account_sessions").fetchone()
    assert digest == token_hash(made.token)
    dump = "\n".join(db.iterdump())
    assert PASSWORD not in dump and made.token not in dump


def test_a_hash_with_old_parameters_is_upgraded_at_the_next_log_in(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.db")
    store = AccountStore(path, lambda fn, r: fn(r))
    store.open()
    run(store, CreateAccount("bob", "Bob", PASSWORD, "", 1.0))
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    assert store.db is not None
    store.db.execute("UPDATE accounts SET hash = ? WHERE key = 'bob'", (weak,))
    assert isinstance(run(store, CheckPassword("bob", PASSWORD, "phone", 2.0)), AccountSession)
    (now,) = store.db.execute("SELECT hash FROM accounts WHERE key = 'bob'").fetchone()
    assert now != weak and "m=19456,t=2" in now
    assert run(store, CheckPassword("bob", "wrong password", "", 3.0)) is None
    assert run(store, CheckPassword("nobody", PASSWORD, "", 3.0)) is None
    store.close()


def test_sessions_per_device_end_one_by_one_or_all_but_one_with_a_new_password(tmp_path: Path) -> None:
    store = AccountStore(str(tmp_path / "chat.db"), lambda fn, r: fn(r))
    store.open()
    first = run(store, CreateAccount("carol", "Carol", PASSWORD, "laptop", 1.0))
    second = run(store, CheckPassword("carol", PASSWORD, "phone", 2.0))
    third = run(store, CheckPassword("carol", PASSWORD, "tablet", 3.0))
    back = run(store, CheckToken("carol", first.token, 4.0))
    assert back.session_id == first.session_id and back.name == "Carol"
    rows = run(store, ReadSessions("carol"))
    assert [r.device for r in rows] == ["laptop", "tablet", "phone"]  # most recently used first
    assert run(store, CheckToken("carol", second.token + "x", 5.0)) is None
    assert run(store, CheckToken("dave", second.token, 5.0)) is None  # another account's name
    assert run(store, EndSession("carol", second.session_id)) is True
    assert run(store, CheckToken("carol", second.token, 6.0)) is None
    assert run(store, SetPassword("carol", "wrong password", "new password", third.session_id)) is None
    assert run(store, SetPassword("carol", PASSWORD, "new password", third.session_id)) == 1
    assert run(store, CheckToken("carol", first.token, 7.0)) is None
    assert run(store, CheckToken("carol", third.token, 7.0)).session_id == third.session_id
    store.close()
