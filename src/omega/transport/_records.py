"""The secure channel's record layer: application frames as Noise transport messages, sans I/O.

After the handshake, every frame on the underlying connection is one Noise
transport message: ``ChaCha20-Poly1305(k, n, ad = "", plaintext)`` where
``n`` counts the messages sent in that direction from 0 and never repeats.
A transport message is at most 65535 bytes (Noise section 3), so its
plaintext is at most 65519 bytes: a one-byte record type, then a body.

======  =================  ==================================================
type    name               body
======  =================  ==================================================
``00``  FRAME_END          the last (or only) piece of an application frame
``01``  FRAME_CONTINUES    a piece of a frame that continues; exactly
                           :data:`MAX_RECORD_BODY` (65518) bytes
``02``  KEY_UPDATE         empty; the sender rekeyed (Noise ``Rekey()``) its
                           sending key right after this record
``03``  END_OF_STREAM      empty; the sender will send nothing more
======  =================  ==================================================

An application frame of ``L`` bytes is therefore ``max(1, ceil(L / 65518))``
records: FRAME_CONTINUES records of exactly 65518 bytes, then one FRAME_END
record with the remaining 1..65518 bytes (0 only for the empty frame). The
encoding is canonical: a receiver refuses a shorter FRAME_CONTINUES. It
reassembles up to its ``max_frame_size``
(:class:`~omega.errors.FrameTooLargeError` beyond).

A sender rekeys after every ``rekey_interval`` messages it encrypted under
one key (its own policy: the KEY_UPDATE record tells the receiver when),
so no key protects more than ``rekey_interval`` messages; the nonce keeps
counting across rekeys, as Noise prescribes. END_OF_STREAM authenticates a
half-close: a stream whose transport ends without it was truncated.
"""

from __future__ import annotations

from typing import Final

from omega.errors import (
    ConnectionClosedError,
    CryptoError,
    FrameTooLargeError,
    SecureChannelError,
)
from omega.transport._noise_cipher import TAG_LENGTH, CipherState

__all__ = [
    "MAX_NOISE_MESSAGE_SIZE",
    "MAX_RECORD_BODY",
    "RECORD_END_OF_STREAM",
    "RECORD_FRAME_CONTINUES",
    "RECORD_FRAME_END",
    "RECORD_KEY_UPDATE",
    "RecordReceiver",
    "RecordSender",
]

MAX_NOISE_MESSAGE_SIZE: Final = 65535
"""Largest Noise message (Noise section 3)."""
MAX_RECORD_BODY: Final = MAX_NOISE_MESSAGE_SIZE - TAG_LENGTH - 1
"""Most frame bytes one record carries: 65518."""

RECORD_FRAME_END: Final = 0x00
RECORD_FRAME_CONTINUES: Final = 0x01
RECORD_KEY_UPDATE: Final = 0x02
RECORD_END_OF_STREAM: Final = 0x03

_EMPTY_AD: Final = b""
_KEY_UPDATE: Final = bytes([RECORD_KEY_UPDATE])
_END_OF_STREAM: Final = bytes([RECORD_END_OF_STREAM])
_FRAME_END: Final = bytes([RECORD_FRAME_END])
_FRAME_CONTINUES: Final = bytes([RECORD_FRAME_CONTINUES])


class RecordSender:
    """Seal outgoing frames into Noise transport messages, rekeying on schedule."""

    __slots__ = ("_cipher", "_ended", "_messages_under_key", "_rekey_interval", "rekeys")

    def __init__(self, cipher: CipherState, *, rekey_interval: int) -> None:
        self._cipher = cipher
        self._rekey_interval = rekey_interval
        self._messages_under_key = 0
        self._ended = False
        self.rekeys = 0
        """How many times the sending key was replaced."""

    @property
    def nonce(self) -> int:
        """The nonce the next message will use (= messages sent so far)."""
        return self._cipher.nonce

    def seal_frame(self, frame: bytes | bytearray | memoryview) -> list[bytes]:
        """Return the Noise messages carrying ``frame``, in order (KEY_UPDATEs included)."""
        if self._ended:
            raise ConnectionClosedError("cannot send after the end of stream")
        view = memoryview(frame)
        messages: list[bytes] = []
        start = 0
        while len(view) - start > MAX_RECORD_BODY:
            end = start + MAX_RECORD_BODY
            self._seal(messages, _FRAME_CONTINUES + view[start:end])
            start = end
        self._seal(messages, _FRAME_END + view[start:])
        return messages

    def seal_end_of_stream(self) -> list[bytes]:
        """Return the messages announcing the end of our stream; nothing can follow."""
        if self._ended:
            return []
        messages: list[bytes] = []
        self._seal(messages, _END_OF_STREAM)
        self._ended = True
        return messages

    def _seal(self, messages: list[bytes], plaintext: bytes) -> None:
        if self._messages_under_key >= self._rekey_interval - 1:
            messages.append(self._cipher.encrypt_with_ad(_EMPTY_AD, _KEY_UPDATE))
            self._cipher.rekey()
            self._messages_under_key = 0
            self.rekeys += 1
        messages.append(self._cipher.encrypt_with_ad(_EMPTY_AD, plaintext))
        self._messages_under_key += 1


class RecordReceiver:
    """Open incoming Noise transport messages and reassemble frames; sticky on failure."""

    __slots__ = ("_cipher", "_ended", "_error", "_max_frame_size", "_parts", "_size", "rekeys")

    def __init__(self, cipher: CipherState, *, max_frame_size: int) -> None:
        self._cipher = cipher
        self._max_frame_size = max_frame_size
        self._parts: list[bytes] = []
        self._size = 0
        self._ended = False
        self._error: SecureChannelError | FrameTooLargeError | None = None
        self.rekeys = 0
        """How many times the peer replaced its sending key."""

    @property
    def ended(self) -> bool:
        """True once the peer's END_OF_STREAM arrived."""
        return self._ended

    @property
    def buffered(self) -> int:
        """Bytes of a frame whose last record has not arrived yet."""
        return self._size

    def open(self, message: bytes) -> bytes | None:
        """Take the next message; return the frame it completes, or ``None``.

        Raises :class:`~omega.errors.SecureChannelError` for a message that
        fails authentication (tampered, forged, replayed, reordered, dropped
        before it) or breaks the record rules, and
        :class:`~omega.errors.FrameTooLargeError` for a frame over
        ``max_frame_size``. Once it raised, it raises again for every message.
        """
        if self._error is not None:
            raise _replay(self._error)
        try:
            return self._open(message)
        except (SecureChannelError, FrameTooLargeError) as exc:
            self._error = exc
            self._parts = []
            self._size = 0
            raise

    def _open(self, message: bytes) -> bytes | None:
        if self._ended:
            raise SecureChannelError("a record arrived after the peer's end of stream")
        if len(message) > MAX_NOISE_MESSAGE_SIZE:
            raise SecureChannelError(
                f"a Noise message of {len(message)} bytes exceeds {MAX_NOISE_MESSAGE_SIZE}",
                details={"size": len(message)},
            )
        try:
            plaintext = self._cipher.decrypt_with_ad(_EMPTY_AD, message)
        except CryptoError as exc:
            raise SecureChannelError(
                f"record {self._cipher.nonce} failed authentication: tampered, forged, "
                "replayed or out of order",
                details={"nonce": self._cipher.nonce},
            ) from exc
        if not plaintext:
            raise SecureChannelError("empty record: no record type")
        kind = plaintext[0]
        if kind in (RECORD_FRAME_END, RECORD_FRAME_CONTINUES):
            return self._add_piece(kind, plaintext)
        if len(plaintext) != 1:
            raise SecureChannelError(f"record type {kind} carries no body")
        if kind == RECORD_KEY_UPDATE:
            self._cipher.rekey()
            self.rekeys += 1
            return None
        if kind == RECORD_END_OF_STREAM:
            if self._size or self._parts:
                raise SecureChannelError("end of stream in the middle of a frame")
            self._ended = True
            return None
        raise SecureChannelError(f"unknown record type {kind}", details={"type": kind})

    def _add_piece(self, kind: int, plaintext: bytes) -> bytes | None:
        body_size = len(plaintext) - 1
        if kind == RECORD_FRAME_CONTINUES and body_size != MAX_RECORD_BODY:
            raise SecureChannelError(
                f"a FRAME_CONTINUES record carries {body_size} bytes, not {MAX_RECORD_BODY}"
            )
        self._size += body_size
        if self._size > self._max_frame_size:
            raise FrameTooLargeError(self._size, self._max_frame_size)
        if kind == RECORD_FRAME_CONTINUES:
            self._parts.append(plaintext[1:])
            return None
        if not self._parts:
            self._size = 0
            return plaintext[1:]
        self._parts.append(plaintext[1:])
        frame = b"".join(self._parts)
        self._parts = []
        self._size = 0
        return frame


def _replay(error: SecureChannelError | FrameTooLargeError) -> Exception:
    if isinstance(error, FrameTooLargeError):
        return FrameTooLargeError(error.size, error.limit)
    return SecureChannelError(error.message, details=error.details)
