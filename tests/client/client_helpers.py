"""Building clients wired together in memory for the client tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from omega.client import Client, ClientConfig, Event
from omega.crypto import Identity
from omega.mailbox.memory import MemoryStoreServer
from omega.session.delivery import DeliveryConfig
from omega.storage.memory import MemoryKeyStore
from omega.storage.message_memory import MemoryMessageStore
from omega.transport import MemoryNetwork, MemoryTransport, TransportRegistry

FAST = ClientConfig(
    delivery=DeliveryConfig(initial_backoff=0.05, max_backoff=0.2, ack_timeout=0.5, jitter=0.0),
    key_request_timeout=2.0,
    mailbox_poll_interval=0.2,
    sweep_interval=0.05,
)

_names = itertools.count()


@dataclass
class World:
    """A memory network, an optional store server, and the clients on them."""

    network: MemoryNetwork = field(default_factory=MemoryNetwork)
    store: MemoryStoreServer | None = None
    frozen_at: int | None = None

    def registry(self) -> TransportRegistry:
        registry = TransportRegistry()
        registry.register("memory", lambda: MemoryTransport(self.network))
        return registry

    def wall_clock(self) -> int:
        return self.frozen_at if self.frozen_at is not None else time.time_ns() // 1_000_000

    def identity(self, name: str) -> Identity:
        return Identity.create(device_name="phone", created_at=self.wall_clock(), display_name=name)

    def client(
        self,
        identity: Identity,
        *,
        key_store: MemoryKeyStore | None = None,
        message_store: MemoryMessageStore | None = None,
        listen: bool = True,
        mailbox: bool = True,
        config: ClientConfig = FAST,
        wall_clock: Callable[[], int] | None = None,
    ) -> Client:
        store_client = (
            self.store.client(source=identity.user_id[:20])
            if self.store is not None and mailbox
            else None
        )
        return Client(
            identity=identity,
            key_store=key_store or MemoryKeyStore(),
            message_store=message_store or MemoryMessageStore(),
            transports=self.registry(),
            listen=[f"/memory/peer-{next(_names)}"] if listen else [],
            mailbox=store_client,
            key_directory=store_client,
            config=config,
            wall_clock=wall_clock or self.wall_clock,
        )


@asynccontextmanager
async def pair(world: World) -> AsyncIterator[tuple[Client, Client]]:
    """Alice and Bob, running, each with the other as a contact reachable directly."""
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(world.client(world.identity("Alice")))
        bob = await stack.enter_async_context(world.client(world.identity("Bob")))
        await alice.add_contact(str(bob.contact_uri), addresses=bob.addresses)
        await bob.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        yield alice, bob


def of_type(kind: type[Event], **fields: object) -> Callable[[Event], bool]:
    """A predicate for :meth:`Client.wait_for`: an event of ``kind`` with these field values."""

    def matches(event: Event) -> bool:
        return isinstance(event, kind) and all(
            getattr(event, name) == value for name, value in fields.items()
        )

    return matches


async def link_device(world: World, phone: Client, name: str = "laptop") -> Client:
    """Link a new device named ``name`` to ``phone``'s identity; return its (unstarted) client."""
    link = await phone.create_link_code(lifetime=60)
    linked = await Client.link(
        link.code, device_name=name, transports=world.registry(), wall_clock=world.wall_clock
    )
    device = await link.wait(timeout=5)
    assert device.name == name
    assert link.verification_code == linked.verification_code
    client = world.client(linked.identity)
    client.add_device_addresses(linked.addresses)
    return client
