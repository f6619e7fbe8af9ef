"""Discovery: find a user's devices and where they can be reached, knowing only the user id.

* :mod:`omega.discovery.base`: the :class:`Resolver` and :class:`Publisher`
  interfaces and :class:`PeerRecordInfo`, a verified peer record.
* :mod:`omega.discovery.records`: signing and verifying peer records.
* :mod:`omega.discovery.static`: :class:`StaticResolver` (a table or a file)
  and :class:`ChainResolver`.

docs/discovery.md specifies the records, the DHT keys and values byte for
byte, and what a DHT node learns from a lookup.
"""

from __future__ import annotations

from omega.discovery.base import PeerRecordInfo, Publisher, Resolver, WallClock, unix_ms
from omega.discovery.records import (
    MAX_ADDRESSES,
    MAX_MAILBOX_URL_LENGTH,
    MAX_MAILBOXES,
    MAX_PEER_RECORD_SIZE,
    MAX_RELAYS,
    PEER_RECORD_CONTEXT,
    check_mailbox_url,
    sign_peer_record,
    verify_peer_record,
)
from omega.discovery.static import ChainResolver, StaticResolver, StaticTable

__all__ = [
    "MAX_ADDRESSES",
    "MAX_MAILBOXES",
    "MAX_MAILBOX_URL_LENGTH",
    "MAX_PEER_RECORD_SIZE",
    "MAX_RELAYS",
    "PEER_RECORD_CONTEXT",
    "ChainResolver",
    "PeerRecordInfo",
    "Publisher",
    "Resolver",
    "StaticResolver",
    "StaticTable",
    "WallClock",
    "check_mailbox_url",
    "sign_peer_record",
    "unix_ms",
    "verify_peer_record",
]
