"""The hub's configuration and the state it keeps per connection and per room. NO I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from wschat import protocol as p
from wschat.ratelimit import TokenBucket
from wschat.records import Message

GENERAL = "general"
MAX_HELD = 1000  # requests held per room while it loads (each was already rate limited)


@dataclass(frozen=True, slots=True)
class Config:
    history_size: int = 50
    resume_cap: int = 1000
    large_room: int = 100
    max_rooms: int = 1000  # rooms with people in them at once
    loaded_rooms: int = 200  # rooms kept in memory although nobody is in them
    history_bytes: int = 256 * 1024  # what a newcomer's history may weigh, at most
    window_budget: int = 64 * 1024 * 1024  # all rooms' in-memory history together
    max_rooms_per_user: int = 50
    max_messages_per_room: int = 10_000
    max_message_chars: int = 4000
    name_timeout: float = 10.0
    chat_rate: float = 5.0
    chat_burst: float = 20.0
    control_rate: float = 2.0
    control_burst: float = 30.0
    flood_strikes: int = 50
    remembered_ids_per_user: int = 1000
    remembered_ids: int = 200_000  # in all; the users heard from longest ago are forgotten first
    presence_names: int = 10
    page_size: int = p.MAX_PAGE
    store_retry: float = 5.0  # the retry_after of a store_failed error
    # file sharing (wschat.features.files)
    max_file_bytes: int = 25 * 1024 * 1024
    daily_upload_bytes: int = 500 * 1024 * 1024  # per user and UTC day
    upload_chunk: int = 256 * 1024  # the largest binary frame's file bytes (upload_ready.chunk_size)
    thumb_pixels: int = 4096 * 4096  # images with more pixels get no thumbnail (decompression bombs)
    # accounts (wschat.features.accounts)
    accounts_required: bool = False  # --accounts required: no guests
    max_hashes: int = 8  # password hashes asked of the store and not yet answered, at most
    account_free_failures: int = 5  # failed log-ins to one name before it must wait
    address_free_failures: int = 20  # failed log-ins from one address before it must wait
    free_registrations: int = 5  # accounts one address may create before it must wait
    login_wait: float = 1.0  # the first wait; each further failure doubles it
    login_wait_cap: float = 900.0
    # moderation (wschat.features.moderation): --admin, as name keys
    admins: frozenset[str] = frozenset()
    # --admin-poll: seconds between looks at what the host's admin command line changed (bans,
    # operators: features/mod_hooks; ended sessions: features/session_watch)
    admin_poll: float = 2.0
    # calls (wschat.features.calls): how long a call rings; the ICE servers handed to the pages
    call_timeout: float = 45.0
    ice_servers: tuple[dict, ...] = ()


@dataclass(slots=True, eq=False)
class Session:
    cid: int
    client_id: str
    chat_bucket: TokenBucket
    control_bucket: TokenBucket
    name: str = ""
    key: str = ""
    token: str = ""
    rooms: dict[str, None] = field(default_factory=dict)
    strikes: int = 0
    looks: frozenset[str] = frozenset()  # look-alike keys of the name, held while online
    claiming: bool = False  # cluster mode: its name claim awaits the store's answer
    address: str = ""  # the peer's IP address (per-address log-in limits)
    account: bool = False  # logged in to an account (not a guest)
    session_id: str = ""  # the account's session on this device


@dataclass(slots=True, eq=False)
class Room:
    name: str
    epoch: str
    last_seq: int = 0  # highest seq assigned (possibly not yet committed)
    first_seq: int = 1  # lowest seq the store still holds
    members: dict[int, None] = field(default_factory=dict)  # join order
    # members that are another device of a user counted here already (wschat.hub.devices)
    doubles: dict[int, None] = field(default_factory=dict)
    window: list[Message] = field(default_factory=list)  # committed, seq order
    window_bytes: int = 0
    inflight: int = 0  # messages handed to the store and not yet committed
    joins: list[str] = field(default_factory=list)  # batched presence (large rooms)
    leaves: list[str] = field(default_factory=list)
    joined_count: int = 0
    left_count: int = 0
    joins_resumed: bool = True  # every batched join so far is a reconnect (not news)
    leaves_reason: str | None = ""  # of every batched leave so far; None: mixed
    # Cluster mode (wschat.hub.cluster): messages that arrived ahead of a gap, by seq; whether
    # the missing range is being read from the store; the highest seq known stored when that
    # read was issued (it saw everything up to it: `_read` tells a trimmed gap by it).
    early: dict[int, Message] = field(default_factory=dict)
    catching_up: bool = False
    read_covers: int = 0
    # name -> the processes it is in the room on, for those elsewhere; a user may be on several
    # (an account's devices), and here too: those are in `both` (listed and counted once)
    remote: dict[str, dict[str, None]] = field(default_factory=dict)
    both: dict[str, None] = field(default_factory=dict)
    # typing (wschat.features.live): who types here (cid -> when it expires), when the next
    # `typing` frame may go out, and whether the list changed since the last one
    typing: dict[int, float] = field(default_factory=dict)
    typing_next: float = 0.0
    typing_dirty: bool = False
    typing_shown: dict[int, tuple] = field(default_factory=dict)  # member -> the list it was sent


class Loading(Exception):
    """A request about a room that is being loaded: hold it until the room is in memory."""

    def __init__(self, room: str) -> None:
        self.room = room
