"""Length-prefixed framing of a byte stream: the pure-Python reference implementation.

This module is the reference; :mod:`omega.protocol._framing_c` is its compiled
twin with identical behaviour (same results, same errors with the same
messages, raised at the same point), and :mod:`omega.protocol.framing` picks
one of the two. Nothing here does I/O: callers feed received bytes in and get
whole frames out.

Wire format
===========

A stream is a sequence of frames with nothing before, between or after them.
Each frame is a length prefix followed by the payload::

    stream = *frame
    frame  = prefix payload
    prefix = len(payload) as an unsigned LEB128 varint, 1 to 5 bytes

The prefix is the unsigned LEB128 varint that protobuf uses: the payload
length is cut into 7-bit groups, least significant group first, and each
group is sent in one byte whose high bit (``0x80``) is set when another byte
of the prefix follows and clear on the prefix's last byte.

=====================  =================
payload length         prefix bytes
=====================  =================
0 (empty frame)        ``00``
1                      ``01``
127                    ``7f``
128                    ``80 01``
300                    ``ac 02``
16383                  ``ff 7f``
16384                  ``80 80 01``
1048576 (1 MiB)        ``80 80 40``
2147483647 (2**31-1)   ``ff ff ff ff 07``
=====================  =================

A receiver enforces these rules, in stream order:

1. **Minimal.** Every length has exactly one valid prefix, the shortest: a
   prefix of two or more bytes must not end in ``00`` (a ``0x00`` group
   after a continuation byte adds nothing). ``00`` is the valid prefix of the
   empty frame; ``80 00`` and ``ff 80 00`` are malformed
   (:class:`~omega.errors.MalformedFrameError`), raised when that ``00``
   byte arrives.
2. **At most 5 bytes.** A fifth prefix byte with the high bit set is
   malformed (:class:`~omega.errors.MalformedFrameError`), raised when that
   fifth byte arrives. Five bytes carry 35 bits, more than enough for any
   length a receiver may accept.
3. **At most ``max_frame_size`` bytes of payload.** Each receiver sets its
   own limit, ``DEFAULT_MAX_FRAME_SIZE`` = ``1 << 20`` (1 MiB) unless
   configured, and never above ``MAX_FRAME_SIZE_LIMIT`` = ``2**31 - 1``. A
   larger length, including any valid 5-byte prefix above the limit, is
   refused with :class:`~omega.errors.FrameTooLargeError` as soon as the
   prefix is complete, before any payload byte is buffered; a sender refuses
   to encode it in the first place.
4. **Empty payloads are valid frames** and are delivered as ``b""``.

A stream that ends inside a frame is not malformed as such: the decoder
holds the partial frame and reports its size in ``FrameDecoder.buffered``;
the caller decides what a truncated stream means (for a closed connection,
``buffered != 0`` means the peer stopped mid-frame).

Decoder guarantees
==================

* Input may be split anywhere, including into 1-byte and empty chunks; the
  frames returned do not depend on the split.
* Memory held by one decoder is bounded by the prefix (5 bytes) plus
  ``max_frame_size``: only the one incomplete frame is kept between calls.
* Nothing is lost: when a ``feed`` call completes some frames and then meets
  an error, it returns those frames and the error is raised by the next
  ``feed`` call instead.
* Errors are sticky: once failed, the decoder drops what it held
  (``buffered`` becomes 0), ``failed`` is true, and every later ``feed``
  raises an error of the same type with the same message.
"""

from __future__ import annotations

from typing import Final, final

from omega.errors import ConfigurationError, FrameError, FrameTooLargeError, MalformedFrameError

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "MAX_FRAME_SIZE_LIMIT", "FrameDecoder", "encode_frame"]

DEFAULT_MAX_FRAME_SIZE: Final = 1 << 20
"""The payload limit a decoder or encoder uses unless told otherwise: 1 MiB."""

MAX_FRAME_SIZE_LIMIT: Final = 2**31 - 1
"""The largest ``max_frame_size`` that may be configured; its prefix takes 5 bytes."""

_MAX_PREFIX_LENGTH: Final = 5


def encode_frame(
    payload: bytes | bytearray | memoryview, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> bytes:
    """Return ``payload`` as one frame: its minimal varint length prefix, then the payload.

    ``payload`` may be any C-contiguous bytes-like object; its raw bytes are
    framed. Raises :class:`~omega.errors.FrameTooLargeError` when the payload
    is longer than ``max_frame_size`` (so a peer with the same limit would
    accept it), and :class:`~omega.errors.ConfigurationError` when
    ``max_frame_size`` is not an int in ``1..MAX_FRAME_SIZE_LIMIT``.

    >>> encode_frame(b"hi")
    b'\\x02hi'
    >>> encode_frame(b"x" * 300)[:2].hex()
    'ac02'
    """
    limit = _checked_max_frame_size(max_frame_size)
    with memoryview(payload) as raw:
        _check_contiguous(raw)
        size = raw.nbytes
        if size > limit:
            raise FrameTooLargeError(size, limit)
        with raw.cast("B") as view:
            return b"".join((_encode_varint(size), view))


@final
class FrameDecoder:
    """Split a byte stream into the frames described in this module's docstring.

    Sans-I/O: feed it whatever bytes arrived, in any chunking, and it returns
    the frames they complete. ``max_frame_size`` is the largest payload
    accepted (``1..MAX_FRAME_SIZE_LIMIT``, else
    :class:`~omega.errors.ConfigurationError`).

    >>> decoder = FrameDecoder()
    >>> decoder.feed(b"\\x02hi\\x03ab")
    [b'hi']
    >>> decoder.buffered
    3
    >>> decoder.feed(b"c\\x00")
    [b'abc', b'']
    """

    __slots__ = (
        "_error",
        "_max_frame_size",
        "_payload",
        "_payload_size",
        "_prefix_length",
        "_prefix_value",
    )

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max_frame_size = _checked_max_frame_size(max_frame_size)
        # The frame in progress: prefix bytes read so far and their value, then, once the
        # prefix is complete, the payload size (-1 until then) and the payload bytes held.
        self._prefix_value = 0
        self._prefix_length = 0
        self._payload_size = -1
        self._payload = bytearray()
        self._error: FrameError | None = None

    @property
    def max_frame_size(self) -> int:
        """The largest payload, in bytes, this decoder accepts."""
        return self._max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete frame (0 between frames and once failed)."""
        return self._prefix_length + len(self._payload)

    @property
    def failed(self) -> bool:
        """True once the stream broke the framing rules; every later :meth:`feed` raises."""
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next bytes of the stream and return the frames they complete, in order.

        ``data`` may be any C-contiguous bytes-like object, including an empty
        one. Returns the payloads as ``bytes``; an incomplete frame at the end
        is held until later calls complete it.

        Raises :class:`~omega.errors.FrameTooLargeError` when a prefix
        announces more than ``max_frame_size`` bytes and
        :class:`~omega.errors.MalformedFrameError` for a non-minimal or too
        long prefix. If frames were completed earlier in the same call, they
        are returned and the error is raised by the next call instead; once
        failed, every call raises the same error again.
        """
        if self._error is not None:
            raise _replay(self._error)
        frames: list[bytes] = []
        with memoryview(data) as raw:
            _check_contiguous(raw)
            with raw.cast("B") as view:
                try:
                    self._decode(view, frames)
                except FrameError as exc:
                    self._fail(exc)
                    if not frames:
                        raise
        return frames

    def _decode(self, view: memoryview, frames: list[bytes]) -> None:
        """Append to ``frames`` every frame ``view`` completes; keep the incomplete rest."""
        end = len(view)
        position = 0
        if self._payload_size >= 0:
            position = self._continue_payload(view)
            if position < 0:
                return
            frames.append(bytes(self._payload))
            self._start_next_frame()
        limit = self._max_frame_size
        while position < end:
            value = self._prefix_value
            length = self._prefix_length
            while True:
                byte = view[position]
                position += 1
                value |= (byte & 0x7F) << (7 * length)
                length += 1
                if byte < 0x80:
                    break
                if length == _MAX_PREFIX_LENGTH:
                    raise _too_long_error(value)
                if position == end:
                    self._prefix_value = value
                    self._prefix_length = length
                    return
            if byte == 0 and length > 1:
                raise _non_minimal_error(value, length)
            if value > limit:
                raise FrameTooLargeError(value, limit)
            if end - position >= value:
                frames.append(view[position : position + value].tobytes())
                position += value
                self._prefix_value = 0
                self._prefix_length = 0
            else:
                self._prefix_value = value
                self._prefix_length = length
                self._payload_size = value
                self._payload += view[position:]
                return

    def _continue_payload(self, view: memoryview) -> int:
        """Add ``view`` to the held payload; return where the rest starts, or -1 if short."""
        missing = self._payload_size - len(self._payload)
        if len(view) < missing:
            self._payload += view
            return -1
        self._payload += view[:missing]
        return missing

    def _start_next_frame(self) -> None:
        self._prefix_value = 0
        self._prefix_length = 0
        self._payload_size = -1
        self._payload = bytearray()

    def _fail(self, error: FrameError) -> None:
        self._error = error
        self._start_next_frame()


def _checked_max_frame_size(value: object) -> int:
    """Return ``value`` if it is a valid ``max_frame_size``, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"max_frame_size must be an int, not {type(value).__name__}",
            details={"max_frame_size": value},
        )
    if not 1 <= value <= MAX_FRAME_SIZE_LIMIT:
        raise ConfigurationError(
            f"max_frame_size must be between 1 and {MAX_FRAME_SIZE_LIMIT}, got {value}",
            details={"max_frame_size": value},
        )
    return int(value)


def _check_contiguous(view: memoryview) -> None:
    """Refuse what the compiled twin's ``PyBUF_SIMPLE`` request refuses, with the same type."""
    if not view.c_contiguous:
        raise BufferError("framing needs a C-contiguous buffer")


def _encode_varint(value: int) -> bytes:
    """Return the minimal unsigned LEB128 encoding of ``value`` (non-negative)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _prefix_bytes(value: int, length: int, *, last_continues: bool) -> bytes:
    """Rebuild the ``length`` prefix bytes read so far from their accumulated ``value``."""
    groups = [(value >> (7 * index)) & 0x7F for index in range(length)]
    if last_continues:
        return bytes(group | 0x80 for group in groups)
    return bytes([*(group | 0x80 for group in groups[:-1]), groups[-1]])


def _non_minimal_error(value: int, length: int) -> MalformedFrameError:
    prefix = _prefix_bytes(value, length, last_continues=False)
    return MalformedFrameError(
        f"length prefix {prefix.hex(' ')} is not a minimal varint: "
        "it ends in a 0x00 byte after a continuation byte",
        details={"prefix": prefix},
    )


def _too_long_error(value: int) -> MalformedFrameError:
    prefix = _prefix_bytes(value, _MAX_PREFIX_LENGTH, last_continues=True)
    return MalformedFrameError(
        f"length prefix {prefix.hex(' ')} ... is longer than {_MAX_PREFIX_LENGTH} bytes",
        details={"prefix": prefix},
    )


def _replay(error: FrameError) -> FrameError:
    """A fresh copy of a stored error, so repeated raises do not grow one traceback."""
    if isinstance(error, FrameTooLargeError):
        return FrameTooLargeError(error.size, error.limit)
    return MalformedFrameError(error.message, details=error.details)
