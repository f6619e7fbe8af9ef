"""Property: whatever deposits and acknowledgements arrive, a mailbox acts like a simple model."""

from __future__ import annotations

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.crypto import Identity
from omega.mailbox import MemoryStoreServer, StoreConfig

DEVICE = Identity.create(device_name="model", created_at=1).device
IDS = st.sampled_from([f"m{n}" for n in range(6)])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), IDS, st.binary(max_size=8)),
        st.tuples(st.just("ack"), st.lists(IDS, max_size=4)),
        st.tuples(st.just("fetch"), st.integers(min_value=1, max_value=4)),
    ),
    max_size=25,
)


@settings(max_examples=60)
@given(operations=OPERATIONS)
def test_a_mailbox_matches_an_ordered_dict_model(operations: list[tuple[object, ...]]) -> None:
    async def run() -> None:
        server = MemoryStoreServer(config=StoreConfig(max_messages_per_recipient=4))
        model: dict[str, bytes] = {}
        async with server.client() as client:
            for operation in operations:
                if operation[0] == "deposit":
                    _, message_id, payload = operation
                    assert isinstance(message_id, str)
                    assert isinstance(payload, bytes)
                    if message_id not in model and len(model) >= 4:
                        continue  # a full mailbox: covered by its own test
                    stored = await client.deposit(DEVICE.device_key, message_id, payload)
                    assert stored == (message_id not in model)
                    model.setdefault(message_id, payload)
                elif operation[0] == "ack":
                    ids = operation[1]
                    assert isinstance(ids, list)
                    deleted = await client.acknowledge(DEVICE, ids)
                    assert deleted == len(set(ids) & set(model))
                    for message_id in ids:
                        model.pop(message_id, None)
                else:
                    limit = operation[1]
                    assert isinstance(limit, int)
                    fetched = await client.fetch(DEVICE, limit=limit)
                    expected = list(model.items())[:limit]
                    assert [(e.message_id, e.payload) for e in fetched] == expected

    anyio.run(run)
