"""Length-prefixed framing of byte streams, sans I/O.

Every Omega stream carries frames: a minimal unsigned LEB128 varint giving the
payload length (at most 5 bytes), then the payload. :func:`encode_frame`
builds one frame; :class:`FrameDecoder` turns received bytes, in any
chunking, back into payloads, refusing a frame longer than its
``max_frame_size`` (``DEFAULT_MAX_FRAME_SIZE``, 1 MiB, unless configured; at
most ``MAX_FRAME_SIZE_LIMIT``) as soon as its prefix arrives. The exact wire
format and the decoder's guarantees are documented in
:mod:`omega.protocol._framing_py`.

The names here come from the compiled Cython twin when it was built, and from
the pure-Python reference otherwise or when ``OMEGA_PURE_PYTHON=1`` is set;
both behave identically. ``omega.accelerator_status()["framing"]`` tells
which one is live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omega import _accel
from omega.protocol import _framing_py

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "MAX_FRAME_SIZE_LIMIT", "FrameDecoder", "encode_frame"]

_impl = _accel.select("framing", _framing_py)

if TYPE_CHECKING:
    # Both implementations share one API; the pure one carries the annotations.
    from omega.protocol._framing_py import (
        DEFAULT_MAX_FRAME_SIZE,
        MAX_FRAME_SIZE_LIMIT,
        FrameDecoder,
        encode_frame,
    )
else:
    DEFAULT_MAX_FRAME_SIZE = _impl.DEFAULT_MAX_FRAME_SIZE
    MAX_FRAME_SIZE_LIMIT = _impl.MAX_FRAME_SIZE_LIMIT
    FrameDecoder = _impl.FrameDecoder
    encode_frame = _impl.encode_frame
