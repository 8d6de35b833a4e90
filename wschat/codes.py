"""The wire's codes: `error` codes, `username_error` codes and close codes. NO I/O.

PROTOCOL.md's Errors and close-code tables list the same names (a test checks the registry and
PROTOCOL.md agree both ways). `wschat.protocol` re-exports every name here, so `protocol.BAD_FIELD`
and `codes.BAD_FIELD` are the same constant.
"""

from __future__ import annotations

# -- error codes (`error` frames), PROTOCOL.md's Errors table
BAD_JSON = "bad_json"
BAD_FRAME = "bad_frame"
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"
TOO_LONG = "too_long"
BINARY_UNSUPPORTED = "binary_unsupported"
NOT_LOGGED_IN = "not_logged_in"
ALREADY_LOGGED_IN = "already_logged_in"
BAD_ROOM = "bad_room"
NOT_IN_ROOM = "not_in_room"
NO_SUCH_ROOM = "no_such_room"
TOO_MANY_ROOMS = "too_many_rooms"
NO_SUCH_USER = "no_such_user"
RATE_LIMITED = "rate_limited"
INTERNAL_ERROR = "internal_error"
STORE_FAILED = "store_failed"
# -- file uploads (wschat.features.files)
FILE_TOO_LARGE = "file_too_large"
UPLOAD_QUOTA = "upload_quota"
MEDIA_FULL = "media_full"
BAD_UPLOAD = "bad_upload"
HASH_MISMATCH = "hash_mismatch"
NO_SUCH_FILE = "no_such_file"  # profiles: an avatar's media id that is not stored
NOT_AN_IMAGE = "not_an_image"  # profiles: an avatar's file that is not an image shown inline
NO_SUCH_MESSAGE = "no_such_message"  # rich messaging: a reply, reaction, edit or delete target
NOT_ALLOWED = "not_allowed"  # rich messaging: editing or deleting someone else's message
# accounts (wschat.features.accounts)
NOT_AN_ACCOUNT = "not_an_account"
NO_SUCH_SESSION = "no_such_session"
BAD_CREDENTIALS = "bad_credentials"
WEAK_PASSWORD = "weak_password"
# moderation (wschat.features.moderation)
NOT_MODERATOR = "not_moderator"
BANNED = "banned"
MUTED = "muted"
INVITE_ONLY = "invite_only"
# calls (wschat.features.calls)
NOT_IN_CALL = "not_in_call"  # a call frame about a call the sender is not a party of (or that ended)
IN_CALL = "in_call"  # an invite from someone already in another call
# end-to-end encryption (wschat.features.e2ee_wire)
STALE_KEYS = "stale_keys"
ERROR_CODES = (
    BAD_JSON, BAD_FRAME, UNKNOWN_TYPE, BAD_FIELD, TOO_LONG, BINARY_UNSUPPORTED, NOT_LOGGED_IN,
    ALREADY_LOGGED_IN, BAD_ROOM, NOT_IN_ROOM, NO_SUCH_ROOM, TOO_MANY_ROOMS, NO_SUCH_USER,
    RATE_LIMITED, INTERNAL_ERROR, STORE_FAILED, NO_SUCH_MESSAGE, NOT_ALLOWED,
    NOT_AN_ACCOUNT, NO_SUCH_SESSION, BAD_CREDENTIALS, WEAK_PASSWORD,
    NOT_MODERATOR, BANNED, MUTED, INVITE_ONLY,
    FILE_TOO_LARGE, UPLOAD_QUOTA, MEDIA_FULL, BAD_UPLOAD, HASH_MISMATCH,
    NOT_IN_CALL, IN_CALL,
    STALE_KEYS,
    NO_SUCH_FILE, NOT_AN_IMAGE,
)  # fmt: skip

# -- `username_error` codes (the name rules live in wschat.names)
NAME_EMPTY = "name_empty"
NAME_TOO_LONG = "name_too_long"
NAME_INVALID_CHARS = "name_invalid_chars"
NAME_RESERVED = "name_reserved"
NAME_TAKEN = "name_taken"
NAME_CONFUSABLE = "name_confusable"
NAME_REGISTERED = "name_registered"  # a guest asked for a registered name, or one like it
ACCOUNTS_REQUIRED = "accounts_required"  # the server runs with --accounts required
BAD_TOKEN = "bad_token"  # a session token log-in whose session has ended
NAME_ERROR_CODES = (
    NAME_EMPTY, NAME_TOO_LONG, NAME_INVALID_CHARS, NAME_RESERVED, NAME_TAKEN, NAME_CONFUSABLE,
    RATE_LIMITED, NAME_REGISTERED, ACCOUNTS_REQUIRED, BAD_CREDENTIALS, BAD_TOKEN, WEAK_PASSWORD,
    STORE_FAILED, BANNED,
)  # fmt: skip

# -- close codes
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_BAD_DATA = 1007  # a text frame that is not UTF-8
CLOSE_POLICY = 1008  # flooding, or no name chosen in time
CLOSE_TOO_BIG = 1009
CLOSE_TAKEOVER = 4000  # the same user logged in again from another connection
CLOSE_SESSION_ENDED = 4001  # this device's account session was revoked or its password changed
CLOSE_KICKED = 4002  # a moderator kicked the connection off the server (it may come back)
CLOSE_BANNED = 4003  # a moderator banned the user from the server (do not reconnect)
CLOSE_CODES = (
    CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_BAD_DATA, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TAKEOVER,
    CLOSE_SESSION_ENDED, CLOSE_KICKED, CLOSE_BANNED,
)  # fmt: skip
