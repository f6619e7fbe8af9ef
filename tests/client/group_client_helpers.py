"""Three clients in a group, for the group tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio
from client_helpers import World

from omega.client import Client, Event, Group, GroupJoined
from omega.mailbox.memory import MemoryStoreServer


@dataclass
class Trio:
    """Alice (owner), Bob and Carol in one group; Bob and Carol know only Alice."""

    world: World
    alice: Client
    bob: Client
    carol: Client
    group: Group

    def of(self, client: Client) -> Group:
        return client.group(self.group.group_id)


async def wait_until(
    client: Client, predicate: Callable[[Event], bool], action: Callable[[], object] | None = None
) -> Event:
    """Subscribe, run ``action`` (sync or async), and return the first matching event."""
    receive = client._core.subscribe(10_000)
    async with receive:
        if action is not None:
            result = action()
            if hasattr(result, "__await__"):
                await result
        with anyio.fail_after(10):
            async for event in receive:
                if predicate(event):
                    return event
    raise AssertionError("the client closed")


async def eventually(check: Callable[[], object], timeout: float = 10) -> None:
    """Poll the async or sync ``check`` until it returns true."""
    with anyio.fail_after(timeout):
        while True:
            result = check()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)


@asynccontextmanager
async def trio(world: World | None = None) -> AsyncIterator[Trio]:
    """Alice creates a group with Bob and Carol; yields once both joined."""
    world = world or World(store=MemoryStoreServer())
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(world.client(world.identity("Alice")))
        bob = await stack.enter_async_context(world.client(world.identity("Bob")))
        carol = await stack.enter_async_context(world.client(world.identity("Carol")))
        for friend in (bob, carol):
            await alice.add_contact(str(friend.contact_uri), addresses=friend.addresses)
            await friend.add_contact(str(alice.contact_uri), addresses=alice.addresses)
        bob_joined = bob._core.subscribe(1000)
        carol_joined = carol._core.subscribe(1000)
        group = await alice.create_group("Friends", [bob.user_id, carol.user_id])
        for stream in (bob_joined, carol_joined):
            async with stream:
                with anyio.fail_after(10):
                    async for event in stream:
                        if isinstance(event, GroupJoined):
                            break
        trio = Trio(world=world, alice=alice, bob=bob, carol=carol, group=group)
        await ready(trio)
        yield trio


async def ready(trio: Trio) -> None:
    """Wait until every member holds every other member's sender key."""
    clients = (trio.alice, trio.bob, trio.carol)

    def complete() -> bool:
        for client in clients:
            session = client._groups.sessions[trio.group.group_id]
            senders = {user for user, _ in session._inbound.values()}
            others = set(session.log.state.members) - {client.user_id}
            if not others <= senders:
                return False
        return True

    await eventually(complete)
