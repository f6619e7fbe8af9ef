"""Two peers with their state on disk: a conversation, a restart, and nothing lost.

Run: python examples/two_peers.py [DIRECTORY]

Alice and Bob each get a data directory (identity encrypted under a
passphrase, SQLite key and message stores). They talk over loopback TCP:
text, a reply, a reaction, read receipts. Then Bob goes away, Alice writes
to him anyway (the message waits in her persistent outbox), both restart
from disk, and the message is delivered. The transcript is printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

from omega.client import (
    Client,
    DataDir,
    DeliveryStateChanged,
    Event,
    MessageReceived,
    ReactionReceived,
)
from omega.crypto import Identity
from omega.crypto.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, export_identity

PASSPHRASE = "correct horse battery staple"


def create(directory: Path, name: str) -> None:
    identity = Identity.create(display_name=name, device_name="laptop", created_at=0)
    data_dir = DataDir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # A low Argon2id cost keeps the example fast; keep the default for real identities.
    export = export_identity(identity, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    (directory / "identity.omega").write_bytes(export)
    data_dir.save_public(identity)


async def open_client(directory: Path) -> Client:
    return await Client.from_data_dir(
        directory, passphrase=PASSPHRASE, listen=["/ip4/127.0.0.1/tcp/0"]
    )


def show(name: str, event: Event) -> None:
    if isinstance(event, MessageReceived):
        reply = f" (reply to {event.message.reply_to[:8]})" if event.message.reply_to else ""
        print(f"  {name} <- {event.message.text!r}{reply}")
    elif isinstance(event, ReactionReceived):
        print(f"  {name} <- reaction {event.emoji} to {event.target_message_id[:8]}")
    elif isinstance(event, DeliveryStateChanged):
        print(f"  {name}: message {event.message_id[:8]} is {event.state.value}")


async def until(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not await condition():
            await anyio.sleep(0.05)


async def main(root: Path) -> None:
    create(root / "alice", "Alice")
    create(root / "bob", "Bob")
    print("1. A conversation")
    async with await open_client(root / "alice") as alice, await open_client(root / "bob") as bob:
        alice.on(Event)(lambda event: show("Alice", event))
        bob.on(Event)(lambda event: show("Bob", event))
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        hello = await alice.send_text(bob.user_id, "Hi Bob! Lunch tomorrow?")
        await until(lambda: _has(bob, alice.user_id, hello.message_id))
        await bob.send(alice.user_id, "Sure, noon?", reply_to=hello.message_id)
        await bob.react(alice.user_id, hello.message_id, "👍")
        await until(lambda: _count(alice, bob.user_id, 3))
        await alice.mark_read(bob.user_id)
        await bob.mark_read(alice.user_id)
        await anyio.sleep(0.3)

    print("2. Bob is offline; Alice writes anyway")
    async with await open_client(root / "alice") as alice:
        late = await alice.send_text(bob.user_id, "See you there!")
        await anyio.sleep(0.3)
        print(f"  the message is {(await _state(alice, bob.user_id, late.message_id))}")
    print("3. Both restart from disk")
    async with await open_client(root / "bob") as bob_again:
        bob_again.on(MessageReceived)(lambda event: show("Bob", event))
        async with await open_client(root / "alice") as alice:
            await alice.add_contact(bob_again.user_id, addresses=bob_again.addresses)
            await until(lambda: _has(bob_again, alice.user_id, late.message_id))
            await anyio.sleep(0.3)
            print(f"  Alice's message is {await _state(alice, bob.user_id, late.message_id)}")
            found = await bob_again.search("lunch")
            print(f"  Bob searches 'lunch': {[m.text for m in found]}")


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation))


async def _count(client: Client, conversation: str, count: int) -> bool:
    return len(await client.history(conversation)) >= count


async def _state(client: Client, conversation: str, message_id: str) -> str:
    for message in await client.history(conversation):
        if message.message_id == message_id:
            return message.state.value
    return "missing"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as temporary:
            anyio.run(main, Path(temporary))
