"""Quick start: two Omega clients on loopback TCP exchange an end-to-end encrypted message.

Run: python examples/quickstart.py   (prints what Bob received and the delivery state)
"""

import anyio

from omega.client import Client, MessageReceived
from omega.crypto import Identity
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore


def new_client(name: str) -> Client:
    identity = Identity.create(display_name=name, device_name="laptop", created_at=0)
    return Client(
        identity=identity,
        key_store=MemoryKeyStore(),  # use Client.from_data_dir(...) to keep state on disk
        message_store=MemoryMessageStore(),
        listen=["/ip4/127.0.0.1/tcp/0"],
    )


async def main() -> None:
    async with new_client("Alice") as alice, new_client("Bob") as bob:
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        sent = await alice.send_text(bob.user_id, "Hello Bob, this is end-to-end encrypted!")
        event = await bob.wait_for(lambda e: isinstance(e, MessageReceived), timeout=10)
        assert isinstance(event, MessageReceived)
        print(f"Bob received from {event.message.sender_id[:16]}...: {event.message.text}")
        await anyio.sleep(0.2)  # let Bob's acknowledgement reach Alice
        [mine] = await alice.history(bob.user_id)
        print(f"Alice's message {sent.message_id[:8]} is {mine.state.value}")


if __name__ == "__main__":
    anyio.run(main)
