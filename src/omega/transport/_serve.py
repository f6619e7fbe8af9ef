"""What every listener shares: a closable handle, and a supervisor running one task per peer.

Transports accept connections in their own way (an accept loop, a queue, a
library callback); they all hand each one to :class:`ConnectionSupervisor`,
which enforces the connection limit, runs the handler in its own task of the
listener's task group, closes the connection afterwards, and turns a typed
failure of one connection into a log line instead of a dead listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from omega.errors import ConnectionClosedError, OmegaError
from omega.transport.address import Address
from omega.transport.base import ConnectionHandler, FrameConnection, Listener

__all__ = ["ConnectionSupervisor", "ServingListener", "logger"]

logger = logging.getLogger("omega.transport")
"""The logger every transport writes to."""


class ServingListener(Listener):
    """A listener handle whose :meth:`aclose` cancels the scope its ``listen`` task serves in."""

    def __init__(self, addresses: tuple[Address, ...], cancel_scope: anyio.CancelScope) -> None:
        self._addresses = addresses
        self._cancel_scope = cancel_scope
        self._finished = anyio.Event()

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Where peers can reach this listener."""
        return self._addresses

    def finished(self) -> None:
        """Record that the ``listen`` task has stopped serving (called from its ``finally``)."""
        self._finished.set()

    async def aclose(self) -> None:
        """Cancel the serving task and wait until every connection of it is closed."""
        self._cancel_scope.cancel()
        await self._finished.wait()


def _peer_name(connection: FrameConnection) -> str:
    remote = connection.remote_address
    return str(remote) if remote is not None else "an unknown peer"


class ConnectionSupervisor:
    """Run ``handler`` once per admitted connection, in ``task_group``, under a limit."""

    def __init__(
        self,
        handler: ConnectionHandler,
        task_group: TaskGroup,
        *,
        max_connections: int,
        transport: str,
    ) -> None:
        self._handler = handler
        self._task_group = task_group
        self._max_connections = max_connections
        self._transport = transport
        self._active = 0

    @property
    def active(self) -> int:
        """Connections whose handler is running."""
        return self._active

    def admit(self, connection: FrameConnection, on_done: Callable[[], None] | None = None) -> bool:
        """Start serving ``connection``; return False (and log) when the limit is reached.

        A refused connection is the caller's to close. ``on_done`` runs once
        the handler finished and the connection is closed, however that
        happened.
        """
        if self._active >= self._max_connections:
            logger.warning(
                "%s listener refused a connection from %s: %d connections open, the limit",
                self._transport,
                _peer_name(connection),
                self._active,
            )
            return False
        self._active += 1
        self._task_group.start_soon(self._serve, connection, on_done)
        return True

    async def _serve(self, connection: FrameConnection, on_done: Callable[[], None] | None) -> None:
        peer = _peer_name(connection)
        try:
            async with connection:
                await self._handler(connection)
        except ConnectionClosedError as exc:
            logger.info("%s connection from %s closed: %s", self._transport, peer, exc)
        except OmegaError as exc:
            self._log_dropped(peer, exc)
        except BaseExceptionGroup as group:  # the handler's own task group failed
            typed, rest = group.split(OmegaError)
            if rest is not None:
                raise rest from None  # a bug: never swallowed
            if typed is not None:
                for failure in typed.exceptions:
                    self._log_dropped(peer, failure)
        finally:
            self._active -= 1
            if on_done is not None:
                on_done()

    def _log_dropped(self, peer: str, exc: BaseException) -> None:
        code = exc.code if isinstance(exc, OmegaError) else type(exc).__name__
        logger.warning(
            "%s listener dropped the connection from %s: %s [%s]",
            self._transport,
            peer,
            exc,
            code,
        )
