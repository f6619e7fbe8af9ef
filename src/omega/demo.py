"""``omega demo``: three people, a store server and a DHT, on loopback, in under a minute.

Everything runs in this process on embedded defaults, with real components:
each person's data directory (identity encrypted under a passphrase, SQLite
key and message stores encrypted at rest) in a temporary directory, a
store-and-forward server (the ``omega serve store`` HTTP app on SQLite), a
Kademlia DHT bootstrap node, and three clients talking TCP through the Noise
secure channel. The transcript shows:

1. identities and the infrastructure starting;
2. Alice and Bob exchanging contact URIs and verifying their safety number;
3. a direct end-to-end encrypted conversation, with delivery and read
   states, a reply, a reaction and an edit;
4. a message to Carol while she is offline, deposited in the store as
   ciphertext, fetched and acknowledged when she comes back;
5. what the store server saw;
6. a group of the three: one message encrypted once for everyone, then
   Carol removed, and what is sent afterwards out of her reach.

Every step checks its result; a step that fails stops the tour with
:class:`DemoFailedError` (exit status 1), never a traceback.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TextIO

import anyio
import segno
import uvicorn

import omega
from omega.client import (
    Client,
    ClientConfig,
    DataDir,
    DeliveryStateChanged,
    Event,
    GroupJoined,
    GroupMemberRemoved,
    GroupMessageReceived,
    MessageEdited,
    MessageReceived,
    ReactionReceived,
)
from omega.crypto import ContactUri, Identity
from omega.crypto.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, export_identity
from omega.discovery import DhtConfig, DhtNode
from omega.errors import OmegaError
from omega.mailbox._auth import recipient_hash
from omega.mailbox.http import StoreClient
from omega.mailbox.service import StoreService
from omega.server.store.app import create_app
from omega.server.store.sqlite import SQLiteBackend
from omega.storage.message_base import DeliveryState

__all__ = ["DemoFailedError", "run_demo"]

PASSPHRASE = "omega demo passphrase"  # noqa: S105 - a throwaway demo identity
STEP_TIMEOUT = 20.0


class DemoFailedError(OmegaError):
    """A step of the demo did not produce what it should have."""

    code = "demo_failed"


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._steps = 0

    def title(self, text: str) -> None:
        print(f"\n{text}", file=self._out)

    def step(self, text: str) -> None:
        self._steps += 1
        print(f"\n[{self._steps}] {text}", file=self._out)

    def item(self, text: str) -> None:
        print(f"    {text}", file=self._out)

    def raw(self, text: str) -> None:
        print(text, file=self._out, end="")


def run_demo(out: TextIO, *, qr: bool = True) -> None:
    """Run the tour, printing the transcript to ``out``.

    Raises :class:`DemoFailedError` if a step does not produce what it should.
    """
    say = _Printer(out)
    say.title(f"Omega {omega.__version__} demo (Cython accelerators live: {omega.accelerated()})")
    with tempfile.TemporaryDirectory(prefix="omega-demo-") as temporary:
        try:
            anyio.run(_tour, say, Path(temporary), qr)
        except* DemoFailedError as group:
            raise group.exceptions[0] from None
        except* OmegaError as group:
            first = group.exceptions[0]
            message = first.message if isinstance(first, OmegaError) else str(first)
            raise DemoFailedError(f"demo step failed: {message}") from first
        except* TimeoutError as group:
            raise DemoFailedError("demo step failed: it did not finish in time") from group
    say.title("Done. Try it for real: `omega init`, `omega listen`, `omega chat` (docs/guide.md).")


async def _tour(say: _Printer, root: Path, qr: bool) -> None:
    say.step("Alice, Bob and Carol create identities (Ed25519 keys: no phone number, no e-mail)")
    people = {name: _create_person(root / name.lower(), name) for name in ("Alice", "Bob", "Carol")}
    for name, identity in people.items():
        say.item(f"{name + ':':7}{identity.user_id}")
    say.item("each in a data directory: identity encrypted under a passphrase, SQLite stores")

    async with AsyncExitStack() as stack:
        say.step("Infrastructure on loopback: a store-and-forward server and a DHT bootstrap node")
        store_url, service = await stack.enter_async_context(_store_server(root / "store.db"))
        bootstrap = await stack.enter_async_context(DhtNode(DhtConfig()))
        bootstrap_address = "{}:{}".format(*bootstrap.address)
        say.item(f"store server (SQLite) at {store_url}")
        say.item(f"DHT bootstrap node at udp://{bootstrap_address}")

        def open_client(name: str) -> Awaitable[Client]:
            return _open_client(root / name.lower(), store_url, bootstrap_address, stack)

        say.step("Alice and Bob start their clients and announce themselves")
        alice, bob = await open_client("Alice"), await open_client("Bob")
        _narrate(say, alice, "Alice")
        _narrate(say, bob, "Bob")
        await stack.enter_async_context(alice)
        await stack.enter_async_context(bob)
        for name, client in (("Alice", alice), ("Bob", bob)):
            say.item(f"{name} listens on {client.addresses[0]}")
        say.item("device lists and signed peer records published in the DHT,")
        say.item("prekey bundles published on the store server's key directory")
        await _meet(say, alice, bob, qr)
        await _conversation(say, alice, bob)
        carol = await _offline_delivery(
            say, alice, people["Carol"], open_client=open_client, stack=stack, service=service
        )
        await _group(say, alice, bob, carol)


def _create_person(directory: Path, name: str) -> Identity:
    identity = Identity.create(display_name=name, device_name="laptop", created_at=_now(0))
    directory.mkdir(parents=True)
    # The demo lowers the Argon2id cost to stay fast; `omega init` keeps the default.
    export = export_identity(identity, PASSPHRASE, opslimit=MIN_OPSLIMIT, memlimit=MIN_MEMLIMIT)
    (directory / "identity.omega").write_bytes(export)
    DataDir(directory).save_public(identity)
    return identity


def _now(offset: int) -> int:
    return time.time_ns() // 1_000_000 + offset


@asynccontextmanager
async def _store_server(path: Path) -> AsyncIterator[tuple[str, StoreService]]:
    async with await SQLiteBackend.open(path) as backend:
        service = StoreService(backend)
        config = uvicorn.Config(
            create_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)

        async def serve() -> None:
            # Shielded: on the way out the server is told to exit and closes its
            # sockets itself, even when a failed step cancels everything else.
            with anyio.CancelScope(shield=True):
                await server.serve()

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            with anyio.fail_after(STEP_TIMEOUT):
                while not server.started:
                    await anyio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            try:
                yield f"http://127.0.0.1:{port}", service
            finally:
                server.should_exit = True


async def _open_client(
    directory: Path, store_url: str, bootstrap: str, stack: AsyncExitStack
) -> Client:
    dht = await stack.enter_async_context(DhtNode(DhtConfig(bootstrap=(bootstrap,))))
    store = await stack.enter_async_context(StoreClient(store_url))
    return await Client.from_data_dir(
        directory,
        passphrase=PASSPHRASE,
        listen=["/ip4/127.0.0.1/tcp/0"],
        resolver=dht,
        publisher=dht,
        mailbox=store,
        key_directory=store,
        mailbox_urls=[store_url],
        config=ClientConfig(mailbox_poll_interval=1.0),
    )


async def _meet(say: _Printer, alice: Client, bob: Client, qr: bool) -> None:
    say.step("Alice and Bob exchange contact URIs (shown as QR codes) and verify each other")
    for name, client in (("Alice", alice), ("Bob", bob)):
        say.item(f"{name}'s URI: {client.contact_uri}")
    if qr:
        qr_text = segno.make(str(alice.contact_uri), error="m")
        lines: list[str] = []

        class _Lines:
            def write(self, text: str) -> None:
                lines.append(text)

        qr_text.terminal(out=_Lines(), compact=True)  # type: ignore[arg-type]
        say.raw("".join(lines))
    await alice.add_contact(str(bob.contact_uri))
    await bob.add_contact(ContactUri.parse(str(alice.contact_uri)))
    number = alice.safety_number(bob.user_id)
    _check(number.display() == bob.safety_number(alice.user_id).display(), "safety numbers match")
    say.item(f"safety number (the same on both screens): {number.display()}")
    await alice.verify_contact(
        bob.user_id, scanned_qr=bob.safety_number(alice.user_id).qr_payload()
    )
    await bob.verify_contact(alice.user_id, scanned_qr=number.qr_payload())
    say.item("each scanned the other's safety-number QR code: both contacts verified")


async def _conversation(say: _Printer, alice: Client, bob: Client) -> None:
    say.step("A direct conversation, end to end encrypted (X3DH + Double Ratchet)")
    hello = await alice.send_text(bob.user_id, "Hi Bob! Found you through the DHT.")
    await _until(lambda: _state_is(alice, bob.user_id, hello.message_id, DeliveryState.DELIVERED))
    await bob.mark_read(alice.user_id)
    await _until(lambda: _state_is(alice, bob.user_id, hello.message_id, DeliveryState.READ))
    reply = await bob.send(alice.user_id, "Hi Alice! Lunch at noon?", reply_to=hello.message_id)
    await _until(lambda: _has(alice, bob.user_id, reply.message_id))
    await alice.react(bob.user_id, reply.message_id, "👍")
    await alice.edit(bob.user_id, hello.message_id, "Hi Bob! Found you through the DHT :)")
    await _until(lambda: _text_is(bob, alice.user_id, hello.message_id, ":)"))
    history = await bob.history(alice.user_id)
    say.item(
        f"Bob's history holds {len(history)} messages; search 'lunch' finds "
        f"{[m.text for m in await bob.search('lunch')]}"
    )


async def _offline_delivery(
    say: _Printer,
    alice: Client,
    carol: Identity,
    *,
    open_client: Callable[[str], Awaitable[Client]],
    stack: AsyncExitStack,
    service: StoreService,
) -> Client:
    say.step("Carol is offline: Alice's message waits in the store, encrypted")
    first = await open_client("Carol")
    async with first:  # Carol was online once: her keys are on the key directory
        pass
    await alice.add_contact(f"omega://{carol.user_id}?name=Carol")
    late = await alice.send_text(carol.user_id, "Carol, see you at noon too?")
    await _until(lambda: _state_is(alice, carol.user_id, late.message_id, DeliveryState.SENT))
    held = await _stored_count(service, carol)
    _check(held >= 1, "the store holds the message for Carol")
    say.item(f"the store holds {held} envelope(s) for Carol's device: ciphertext only")

    say.step("Carol comes back online and gets it; Alice sees it delivered")
    carol_client = await open_client("Carol")
    _narrate(say, carol_client, "Carol")
    await stack.enter_async_context(carol_client)
    await _until(lambda: _has(carol_client, alice.user_id, late.message_id))
    await _until(lambda: _state_is(alice, carol.user_id, late.message_id, DeliveryState.DELIVERED))
    _check(await _stored_count(service, carol) == 0, "the store deleted what Carol acknowledged")
    say.item("fetched with a signed, single-use challenge; deleted once acknowledged")
    return carol_client


async def _group(say: _Printer, alice: Client, bob: Client, carol: Client) -> None:
    say.step("A group: Alice creates 'Lunch' with Bob and Carol (Sender Keys, signed log)")
    group = await alice.create_group("Lunch", [bob.user_id, carol.user_id])
    say.item(f"group id {group.group_id[:16]}…: {len(group.members)} members, Alice owns it")
    first = await group.send_text("Lunch at noon, all three of us?")
    for client in (bob, carol):
        await _until(lambda client=client: _has(client, group.group_id, first.message_id))  # type: ignore[misc]
    say.item("encrypted once with Alice's sender key; the same ciphertext went to each device")

    say.step("Alice removes Carol: the others rotate their sender keys")
    await group.remove(carol.user_id)
    await _until(lambda: _not_member(carol, group.group_id))
    _check(group.state.epoch == 1, "the removal moved the group to a new key epoch")
    after = await group.send_text("Carol cannot read this one")
    await _until(lambda: _has(bob, group.group_id, after.message_id))
    _check(
        not await _has(carol, group.group_id, after.message_id),
        "the removed member got nothing she can read",
    )
    say.item("Bob reads the new message; Carol got neither it nor the new sender keys")


async def _not_member(client: Client, group_id: str) -> bool:
    return not client.group(group_id).is_member


def _narrate(say: _Printer, client: Client, name: str) -> None:
    @client.on(Event)
    def tell(event: Event) -> None:
        if isinstance(event, MessageReceived):
            reply = " (a reply)" if event.message.reply_to else ""
            say.item(f"{name} received: {event.message.text!r}{reply}")
        elif isinstance(event, GroupMessageReceived):
            say.item(f"{name} received in the group: {event.message.text!r}")
        elif isinstance(event, GroupJoined):
            say.item(f"{name} joined the group {event.state.name!r}")
        elif isinstance(event, GroupMemberRemoved) and event.user_id == client.user_id:
            say.item(f"{name} learns she was removed from the group")
        elif isinstance(event, DeliveryStateChanged):
            say.item(f"{name}'s message {event.message_id[:8]} is {event.state.value}")
        elif isinstance(event, ReactionReceived):
            say.item(f"{name} got a reaction: {event.emoji}")
        elif isinstance(event, MessageEdited):
            say.item(f"{name} sees an edit: {event.message.text!r}")


async def _stored_count(service: StoreService, identity: Identity) -> int:
    rows = await service.backend.list_messages(
        recipient_hash(identity.device.device_key), now=service.now_ms(), limit=100
    )
    return len(rows)


async def _until(condition: Callable[[], Awaitable[bool]]) -> None:
    with anyio.fail_after(STEP_TIMEOUT):
        while not await condition():
            await anyio.sleep(0.05)


async def _state_is(
    client: Client, conversation: str, message_id: str, state: DeliveryState
) -> bool:
    order = [DeliveryState.PENDING, DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ]
    for message in await client.history(conversation):
        if message.message_id == message_id and message.state in order:
            return order.index(message.state) >= order.index(state)
    return False


async def _has(client: Client, conversation: str, message_id: str) -> bool:
    return any(m.message_id == message_id for m in await client.history(conversation))


async def _text_is(client: Client, conversation: str, message_id: str, suffix: str) -> bool:
    return any(
        m.message_id == message_id and m.text.endswith(suffix)
        for m in await client.history(conversation)
    )


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailedError(f"demo step failed: {what}")
