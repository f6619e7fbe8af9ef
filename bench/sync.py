"""Benchmark multi-device sync: a new device's initial history sync, and one new message.

Figures, each beside its baseline from the same run:

* ``initial``: a history of N messages (one conversation, 60-byte texts)
  synced to a new device, sans-I/O: the sending device computes what the
  new one lacks (``SyncReplica.missing_all``) and packs it into sync
  messages; the new device reassembles and applies them (every entry
  validated against the schema). ``wire_bytes`` is the total size of the
  encoded ``MessageContent.sync`` plaintexts (the ratchet adds a constant
  ~100 bytes per message on top); the baseline ``raw_bytes`` is the history
  itself: the sum of its encoded ``SyncedMessage`` records and message ids.
* ``clients``: the same N messages end to end with real clients on the
  memory transport: the phone (history already in its stores) links a
  laptop, and the clock runs until the laptop's history holds all N.
  This includes the phone writing its existing history into the sync
  documents when the laptop is added (a device alone does not keep them).
* ``incremental``: the Yjs update for one new message, beside the size of
  that message's record (the baseline).

    python bench/sync.py            # N = 10,000
    python bench/sync.py --quick    # N = 2,000, under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from omega.client import Client, ClientConfig
from omega.client._sync import synced_message
from omega.crypto import Identity
from omega.protocol import MessageContent, TextContent, encode_message
from omega.session.content import encode_content
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_base import (
    ContactRecord,
    DeliveryState,
    Direction,
    StoredMessage,
)
from omega.storage.message_memory import MemoryMessageStore
from omega.sync import Reassembler, SyncReplica, history_document, pack_sync
from omega.transport import MemoryNetwork, MemoryTransport, TransportRegistry

NOW = 1_700_000_000_000


def _history(me: Identity, friend: Identity, count: int) -> list[StoredMessage]:
    messages = []
    for n in range(count):
        outgoing = n % 2 == 0
        text = f"message {n:06d} " + "lorem ipsum dolor sit amet, consectetur adipiscing"
        content = encode_content(MessageContent(text=TextContent(text=text)))
        messages.append(
            StoredMessage(
                message_id=str(uuid.UUID(bytes=os.urandom(16), version=4)),
                conversation_id=friend.user_id,
                sender_id=me.user_id if outgoing else friend.user_id,
                sender_device_key=(me if outgoing else friend).device.device_key,
                direction=Direction.OUTGOING if outgoing else Direction.INCOMING,
                timestamp=NOW + n,
                received_at=None if outgoing else NOW + n + 5,
                content=content,
                text=text,
                state=DeliveryState.SENT if outgoing else DeliveryState.DELIVERED,
            )
        )
    return messages


def _sans_io(messages: list[StoredMessage], conversation: str) -> dict[str, float]:
    document = history_document(conversation)
    records = {m.message_id: synced_message(m) for m in messages}
    raw = sum(len(k) + len(v) for k, v in records.items())
    phone = SyncReplica(os.urandom(32))
    started = time.perf_counter()
    phone.set(document, records)
    write = time.perf_counter() - started
    laptop = SyncReplica(os.urandom(32))
    started = time.perf_counter()
    contents = pack_sync(phone.missing_all(laptop.state_vectors()), transfer_id=os.urandom(16))
    wire = sum(len(encode_message(MessageContent(sync=c))) for c in contents)
    reassembler = Reassembler()
    for content in contents:
        updates = [(u.document, u.update) for u in content.updates]
        if content.chunk is not None and (whole := reassembler.add(b"p", content.chunk)):
            updates.append((whole.document, whole.update))
        for name, update in updates:
            laptop.apply(name, update)
    elapsed = time.perf_counter() - started
    assert len(laptop.entries(document)) == len(messages)
    one = synced_message(
        _history(
            Identity.create(device_name="a", created_at=1),
            Identity.create(device_name="b", created_at=1),
            1,
        )[0]
    )
    update = phone.set(document, {"one-more-message-id-0000000000000000": one})
    assert update is not None
    return {
        "messages": len(messages),
        "raw_bytes": raw,
        "wire_bytes": wire,
        "wire_over_raw": wire / raw,
        "sync_messages": len(contents),
        "initial_seconds": elapsed,
        "write_history_seconds": write,
        "incremental_update_bytes": len(update),
        "incremental_record_bytes": len(one) + 36,
        "incremental_over_record": len(update) / (len(one) + 36),
    }


async def _clients(
    messages: list[StoredMessage], me: Identity, friend: Identity
) -> dict[str, float]:
    network = MemoryNetwork()
    registry = TransportRegistry()
    registry.register("memory", lambda: MemoryTransport(network))
    db = MemoryMessageStore()
    async with db.transaction() as tx:
        await tx.put_contact(
            ContactRecord(
                user_id=friend.user_id,
                display_name="Friend",
                identity_key=friend.identity_key,
                added_at=NOW,
            )
        )
        for message in messages:
            await tx.add_message(message)
    config = ClientConfig()
    phone = Client(
        identity=me,
        key_store=MemoryKeyStore(),
        message_store=db,
        transports=registry,
        listen=["/memory/bench-phone"],
        config=config,
    )
    async with phone:
        link = await phone.create_link_code()
        started = time.perf_counter()
        linked = await Client.link(link.code, device_name="laptop", transports=registry)
        laptop = Client(
            identity=linked.identity,
            key_store=MemoryKeyStore(),
            message_store=MemoryMessageStore(),
            transports=registry,
            listen=["/memory/bench-laptop"],
            config=config,
        )
        laptop.add_device_addresses(linked.addresses)
        async with laptop:
            with anyio.fail_after(600):
                while len(
                    await laptop.history(friend.user_id, limit=min(len(messages), 10_000))
                ) < len(messages):
                    await anyio.sleep(0.05)
            elapsed = time.perf_counter() - started
    return {"clients_seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages, under a minute")
    parser.add_argument("--messages", type=int, default=None, help="history size")
    args = parser.parse_args()
    count = args.messages or (2_000 if args.quick else 10_000)
    me = Identity.create(device_name="phone", created_at=NOW, display_name="Me")
    friend = Identity.create(device_name="phone", created_at=NOW, display_name="Friend")
    messages = _history(me, friend, count)
    figures = _sans_io(messages, friend.user_id)
    figures.update(anyio.run(_clients, messages, me, friend))
    print(f"history: {count} messages, raw {figures['raw_bytes'] / 1e6:.2f} MB")
    print(
        f"initial sync (sans-I/O): {figures['initial_seconds']:.2f} s, "
        f"{figures['wire_bytes'] / 1e6:.2f} MB on the wire in {figures['sync_messages']} "
        f"messages = {figures['wire_over_raw']:.2f} x raw"
    )
    print(
        f"initial sync (clients, memory transport): {figures['clients_seconds']:.2f} s "
        "(link, history into the sync documents, transfer, apply, store)"
    )
    print(
        f"one new message: update {figures['incremental_update_bytes']} B vs record "
        f"{figures['incremental_record_bytes']} B = {figures['incremental_over_record']:.2f} x"
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
