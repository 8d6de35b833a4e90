"""The terminal client and calls, against a real server (`--call-timeout 1`): it tells of an
incoming call, `/decline` refuses it, and the outcomes show in the conversation."""

from __future__ import annotations

from support import logged_in, start_server
from terminal import Term


def call(call_id: str, to: str, action: str, **extra: object) -> dict[str, object]:
    return {"type": "call", "call_id": call_id, "to": to, "action": action, **extra}


async def test_the_terminal_client_tells_of_a_call_declines_it_and_shows_its_outcome() -> None:
    server = await start_server("--call-timeout", "1")
    jon = await logged_in(server.port, "Jon")
    term = Term(f"127.0.0.1:{server.port}", "--username", "Kim")
    try:
        await term.expect("Welcome, Kim!")
        await term.expect("#general - 2 online")
        await jon.send(call("call-e2e-0006", "Kim", "invite", kind="video", sdp="v=0"))
        await term.expect("Jon is calling (video call): answer in the web page, or /decline.")
        term.type("/decline")
        assert (await jon.expect("call", action="decline"))["from"] == "Kim"
        await term.expect("You declined Jon's call.")
        await term.expect("📞 Declined video call")
        await jon.send(call("call-e2e-0007", "Kim", "invite", sdp="v=0"))
        await term.expect("Jon is calling (voice call)")
        await term.expect("Jon's call stopped ringing (missed).")
        await term.expect("📞 Missed voice call")
        term.type("/decline")
        await term.expect("Nobody is calling you.")
    finally:
        term.kill()
        await jon.close()
        await server.stop()
