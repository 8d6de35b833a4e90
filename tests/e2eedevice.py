"""A test device that speaks end-to-end encryption with `wschat.e2ee`: an account's log-in with
its own P-256 key, `publish_key`, `get_keys`, encrypted `private`s and decrypting them."""

from __future__ import annotations

from typing import Any

from support import Client

from wschat import e2ee

PASSWORD = "correct horse battery"


async def answer(c: Client, cmid: str) -> dict[str, Any]:
    """The `ack` or `error` for `cmid`; other frames stay queued for `expect`."""
    skipped: list[dict[str, Any]] = []
    try:
        while True:
            frame = await c.recv()
            if frame.get("type") in ("ack", "error") and frame.get("client_msg_id") == cmid:
                return frame
            skipped.append(frame)
    finally:
        c.backlog[:0] = skipped


class Device:
    def __init__(self, client: Client, name: str, key: Any, accepted: dict[str, Any]) -> None:
        self.client, self.name, self.key, self.accepted = client, name, key, accepted

    @classmethod
    async def login(cls, port: int, name: str, kind: str = "login", key: Any = None, **fields: Any) -> Device:
        c = await Client.open(port)
        secret = {} if "session_token" in fields else {"password": PASSWORD}
        await c.send({"type": kind, "username": name, **secret, **fields})
        accepted = await c.expect("username_accepted")
        me = cls(c, accepted["username"], key or e2ee.new_key(), accepted)
        await c.send({"type": "publish_key", "key": me.public})
        await c.expect("keys", username=me.name)
        return me

    @property
    def public(self) -> str:
        return e2ee.public_text(self.key)

    @property
    def id(self) -> str:
        return e2ee.key_id(self.public)

    async def keys(self, name: str) -> dict[str, Any]:
        await self.client.send({"type": "get_keys", "username": name})
        frame = await self.client.expect("keys")
        return frame

    async def devices(self, name: str) -> list[e2ee.Device]:
        return [e2ee.Device(d["id"], d["key"], d["device"]) for d in (await self.keys(name))["devices"]]

    async def envelope(self, to: str, text: str, mid: str) -> dict[str, Any]:
        targets = {d.id: d for d in [*await self.devices(to), *await self.devices(self.name)]}
        recipient = (await self.keys(to))["username"]
        return e2ee.encrypt(self.key, self.name, recipient, mid, text, list(targets.values()))

    async def send(self, to: str, text: str, cmid: str) -> dict[str, Any]:
        """Encrypt `text` for every device of `to` and of this account; the server's answer."""
        env = await self.envelope(to, text, f"mid-{cmid}")
        await self.client.send({"type": "private", "to": to, "client_msg_id": cmid, "e2ee": env})
        return await answer(self.client, cmid)

    def read(self, frame: dict[str, Any]) -> str:
        return e2ee.decrypt(self.key, frame["from"], frame["to"], frame["e2ee"])

    async def close(self) -> None:
        await self.client.close()
