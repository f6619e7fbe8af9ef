"""Discovery: find a user's devices and where they can be reached, knowing only the user id.

* :mod:`omega.discovery.base`: the :class:`Resolver` and :class:`Publisher`
  interfaces and :class:`PeerRecordInfo`, a verified peer record.
* :mod:`omega.discovery.records`: signing and verifying peer records.
* :mod:`omega.discovery.static`: :class:`StaticResolver` (a table or a file)
  and :class:`ChainResolver`.
* :mod:`omega.discovery.dht`: :class:`DhtNode`, a node of the Kademlia DHT
  (the ``kademlia`` package, extended through its own seams), and its
  :class:`DhtConfig`.
* :mod:`omega.discovery.dht_values`: the DHT keys and values.

docs/discovery.md specifies the records, the DHT keys and values byte for
byte, and what a DHT node learns from a lookup.
"""

from __future__ import annotations

from omega.discovery.base import PeerRecordInfo, Publisher, Resolver, WallClock, unix_ms
from omega.discovery.dht import DhtConfig, DhtNode, LookupResult
from omega.discovery.dht_values import (
    MAX_DHT_VALUE_SIZE,
    DhtValue,
    ValueKind,
    device_list_key,
    encode_dht_value,
    peer_record_key,
    read_dht_value,
)
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
    "MAX_DHT_VALUE_SIZE",
    "MAX_MAILBOXES",
    "MAX_MAILBOX_URL_LENGTH",
    "MAX_PEER_RECORD_SIZE",
    "MAX_RELAYS",
    "PEER_RECORD_CONTEXT",
    "ChainResolver",
    "DhtConfig",
    "DhtNode",
    "DhtValue",
    "LookupResult",
    "PeerRecordInfo",
    "Publisher",
    "Resolver",
    "StaticResolver",
    "StaticTable",
    "ValueKind",
    "WallClock",
    "check_mailbox_url",
    "device_list_key",
    "encode_dht_value",
    "peer_record_key",
    "read_dht_value",
    "sign_peer_record",
    "unix_ms",
    "verify_peer_record",
]
