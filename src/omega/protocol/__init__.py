"""The Omega wire schema and its codecs.

``messages.proto`` beside this file is the single source of truth; the
classes re-exported here are generated from it with betterproto2 (see
``scripts/generate_protocol.py``): every message and enum of the schema is
re-exported, so a new message needs no edit here. Decode untrusted bytes with
:func:`decode_message`, which validates the wire format strictly, never with
the classes' own lenient ``parse``. Framing of byte streams lives in
:mod:`omega.protocol.framing`.
"""

from __future__ import annotations

from omega.protocol._generated import messages as _messages
from omega.protocol._generated.messages import *  # noqa: F403 - the schema, whole
from omega.protocol.wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_NESTING_DEPTH,
    decode_message,
    encode_message,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_NESTING_DEPTH",
    "decode_message",
    "encode_message",
]
__all__ += _messages.__all__
