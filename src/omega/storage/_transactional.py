"""What every Omega store shares: one transaction at a time, typed closing, ``async with``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from omega.errors import LocalProtocolError, StorageError

__all__ = ["TransactionalStore"]

T = TypeVar("T")

_active: ContextVar[frozenset[int]] = ContextVar("omega_store_transactions", default=frozenset())


class TransactionalStore(ABC, Generic[T]):
    """A store whose reads and writes happen in transactions of type ``T``.

    A transaction commits when its block exits normally and rolls back when it
    raises. Opening a transaction inside another one of the same store, in the
    same task, raises :class:`~omega.errors.LocalProtocolError` (it would wait
    for itself forever); after :meth:`aclose`, :class:`~omega.errors.StorageError`.
    """

    _kind: ClassVar[str] = "store"
    """How errors name the store ("key store", "message store")."""

    def __init__(self) -> None:
        self._closed = False

    @abstractmethod
    def _begin(self) -> AbstractAsyncContextManager[T]:
        """Open one transaction; commit on normal exit, roll back on an exception."""

    @abstractmethod
    async def _close(self) -> None:
        """Release the backend's resources."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[T]:
        """Run a transaction (see the class docstring)."""
        if self._closed:
            raise StorageError(f"the {self._kind} is closed")
        active = _active.get()
        if id(self) in active:
            raise LocalProtocolError(f"a transaction of this {self._kind} is already open here")
        token = _active.set(active | {id(self)})
        try:
            async with self._begin() as transaction:
                yield transaction
        finally:
            _active.reset(token)

    async def aclose(self) -> None:
        """Close the store; further transactions raise StorageError. Idempotent."""
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
