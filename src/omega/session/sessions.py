"""The ratchet sessions kept per remote device: which one to use, sans-I/O.

Two devices may start sessions with each other at the same time (both send
a prekey message before hearing from the other); each then holds two
sessions with the other. Like Signal, we keep older sessions (at most
:data:`MAX_SESSIONS` per device) to decrypt messages still in flight under
them, encrypt with the newest, and promote a session to newest when a
message decrypts under it, so both sides converge on one session as soon as
they hear from each other.
"""

from __future__ import annotations

import hmac

from omega.crypto import RatchetSession
from omega.errors import DecryptionError, DuplicateMessageError, OmegaError
from omega.protocol import PrekeyMessage, decode_message

__all__ = ["MAX_SESSIONS", "decrypt_with_any", "session_for_prekey"]

MAX_SESSIONS = 4
"""Sessions kept per remote device, newest first."""


def session_for_prekey(sessions: list[RatchetSession], data: bytes) -> RatchetSession | None:
    """The session a repeated prekey message belongs to (same base key), if we have it."""
    try:
        message = decode_message(PrekeyMessage, data)
    except OmegaError:
        return None
    for session in sessions:
        if not session.is_initiator and hmac.compare_digest(session.base_key, message.base_key):
            return session
    return None


def decrypt_with_any(
    sessions: list[RatchetSession], data: bytes
) -> tuple[list[RatchetSession], bytes]:
    """Decrypt ``data`` with the first session that can; promote that session to newest.

    Returns the reordered sessions and the plaintext. Raises what the
    newest session raised when none can decrypt, except that a
    :class:`~omega.errors.DuplicateMessageError` from any session wins (the
    message was decrypted before).
    """
    first_error: OmegaError | None = None
    duplicate: DuplicateMessageError | None = None
    for index, session in enumerate(sessions):
        try:
            plaintext = session.decrypt(data)
        except DuplicateMessageError as exc:
            duplicate = duplicate or exc
            continue
        except OmegaError as exc:
            first_error = first_error or exc
            continue
        return [session, *sessions[:index], *sessions[index + 1 :]], plaintext
    if duplicate is not None:
        raise duplicate
    raise first_error or DecryptionError("no session")
