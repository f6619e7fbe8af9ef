"""The client side of one relay session: its link to the relay, and the streams multiplexed on it.

A session has no task of its own. Whoever needs the next frame from the relay
(a stream waiting for data or for send credit, the listener waiting for
inbound streams) calls :meth:`RelaySession.progress`: if nobody is reading the
link it reads and dispatches one frame, otherwise it waits until the reader
has dispatched one. So a dialed connection needs no background task. A
listener's task reads the link for good (:attr:`RelaySession.has_reader`):
its streams then wait on their own wake-up event, set when a frame for them
arrives, so one frame wakes one stream, not all of them.

Flow control is per stream and counted in frames: each side may send
:data:`~omega.transport._relay_protocol.INITIAL_WINDOW` RelayData frames, and
then one more for every frame the receiver grants back with RelayWindow once
its reader has taken it. A stream therefore buffers at most that many frames,
and a stream whose reader stops makes only its own sender wait.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import anyio

from omega.errors import (
    ConnectionClosedError,
    ConnectionLostError,
    FrameTooLargeError,
    OmegaError,
    RelayRefusedError,
    RemoteProtocolError,
)
from omega.protocol import (
    RelayAccept,
    RelayClose,
    RelayData,
    RelayError,
    RelayIncoming,
    RelayReason,
    RelayRefuse,
    RelayWindow,
)
from omega.transport._relay_protocol import (
    INITIAL_WINDOW,
    RelayBody,
    RelayKind,
    decode_relay_frame,
    encode_relay_frame,
    reason_name,
)
from omega.transport.address import Address
from omega.transport.base import FrameConnection

__all__ = ["RelaySession", "RelayStream"]

_MAX_CREDIT: Final = 1 << 31


def refused(body: RelayRefuse | RelayError, what: str) -> RelayRefusedError:
    """The error a dialer sees for a refusal from the relay or the target."""
    reason = reason_name(body.reason)
    text = f": {body.message}" if body.message else ""
    return RelayRefusedError(f"{what} ({reason}){text}", details={"reason": reason})


class RelaySession:
    """One registered link to a relay (see the module docstring)."""

    def __init__(
        self, link: FrameConnection, *, max_link_frame_size: int, user_id: str, device_id: str
    ) -> None:
        self._link = link
        self._max_link_frame_size = max_link_frame_size
        self.user_id = user_id
        """Our user id, as the relay verified it."""
        self.device_id = device_id
        """Our device id, as the relay verified it."""
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._reading = False
        self._changed = anyio.Event()
        self.streams: dict[int, RelayStream] = {}
        """Open streams by stream id."""
        self.incoming: deque[RelayIncoming] = deque()
        """Inbound streams announced by the relay, not yet answered."""
        self.dial_results: dict[int, RelayAccept | RelayRefuse] = {}
        """The answers to our RelayConnect frames, by stream id."""
        self.failure: OmegaError | None = None
        """Why the session ended, once it has."""
        self._next_stream_id = 1
        self._closed = False
        self.has_reader = False
        """True while a task (a listener's) reads the link for good: streams then wait on
        their own wake-up instead of every frame waking every stream."""

    @property
    def link(self) -> FrameConnection:
        """The connection to the relay."""
        return self._link

    def next_stream_id(self) -> int:
        """A fresh odd stream id for a RelayConnect."""
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        return stream_id

    def _check_alive(self) -> None:
        if self.failure is not None:
            raise ConnectionLostError(f"the relay session ended: {self.failure.message}")

    async def send(self, body: RelayBody) -> None:
        """Send one frame to the relay."""
        self._check_alive()
        async with self._send_lock:
            try:
                await self._link.send_frame(encode_relay_frame(body))
            except OmegaError as exc:
                self._fail(exc)
                raise ConnectionLostError(f"the relay session ended: {exc.message}") from exc

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def progress(self) -> None:
        """Read and dispatch one frame, or wait for whoever reads to dispatch one."""
        self._check_alive()
        if self._reading:
            await self._changed.wait()
            return
        self._reading = True
        try:
            raw = await self._link.receive_frame()
            kind, body = decode_relay_frame(raw, max_size=self._max_link_frame_size)
            self._dispatch(kind, body)
        except OmegaError as exc:
            self._fail(exc)
        finally:
            self._reading = False
            self._notify()

    def _fail(self, exc: OmegaError) -> None:
        if self.failure is None:
            if isinstance(exc, ConnectionClosedError):
                exc = ConnectionLostError("the relay closed the session")
            self.failure = exc
            for stream in self.streams.values():
                stream.fail(ConnectionLostError(f"the relay session ended: {exc.message}"))
        self._notify()

    def _dispatch(self, kind: RelayKind, body: RelayBody) -> None:
        if isinstance(body, RelayData | RelayWindow | RelayClose):
            stream = self.streams.get(body.stream_id)
            if stream is not None:  # else: a late frame for a stream we closed
                stream.dispatch(body)
        elif isinstance(body, RelayAccept | RelayRefuse):
            if body.stream_id in self.streams:
                self.dial_results[body.stream_id] = body
        elif isinstance(body, RelayIncoming):
            self.incoming.append(body)
        elif isinstance(body, RelayError):
            self._fail(refused(body, "the relay ended the session"))
        else:
            self._fail(RemoteProtocolError(f"the relay sent an unexpected {kind.value} frame"))

    def forget(self, stream_id: int) -> None:
        """Drop a finished stream."""
        self.streams.pop(stream_id, None)
        self.dial_results.pop(stream_id, None)

    async def aclose(self) -> None:
        """Close the link to the relay; every stream on it fails."""
        if self._closed:
            return
        self._closed = True
        self._fail(ConnectionLostError("the relay session was closed"))
        await self._link.aclose()


class RelayStream(FrameConnection):
    """One connection to a peer, carried by a relay session."""

    def __init__(
        self,
        session: RelaySession,
        stream_id: int,
        *,
        max_frame_size: int,
        local_address: Address | None,
        remote_address: Address | None,
        owns_session: bool,
    ) -> None:
        self._session = session
        self._stream_id = stream_id
        self._max_frame_size = max_frame_size
        self._local_address = local_address
        self._remote_address = remote_address
        self._owns_session = owns_session
        self._inbox: deque[bytes] = deque()
        self._send_credit = INITIAL_WINDOW
        self._receive_allowance = INITIAL_WINDOW
        self._consumed = 0
        self._eof_received = False
        self._eof_sent = False
        self._closed = False
        self._error: OmegaError | None = None
        self._peer_reset = False
        self._wakeup = anyio.Event()
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._receive_lock = anyio.Lock(fast_acquire=True)
        session.streams[stream_id] = self

    @property
    def stream_id(self) -> int:
        """This stream's id on its session."""
        return self._stream_id

    @property
    def max_frame_size(self) -> int:
        """Largest frame, in bytes, sent or accepted."""
        return self._max_frame_size

    @property
    def local_address(self) -> Address | None:
        """The relay address we registered or dialed from."""
        return self._local_address

    @property
    def remote_address(self) -> Address | None:
        """The relay address of the peer."""
        return self._remote_address

    def fail(self, error: OmegaError) -> None:
        """Record that the stream broke; pending and later calls raise ``error``."""
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = anyio.Event()

    async def _wait(self) -> None:
        """Wait for something to happen to this stream (see the module docstring)."""
        if self._session.has_reader:
            self._session._check_alive()
            await self._wakeup.wait()
        else:
            await self._session.progress()

    def dispatch(self, body: RelayData | RelayWindow | RelayClose) -> None:
        """Apply one frame the relay forwarded for this stream."""
        if self._error is not None or self._closed:
            return
        self._wake()
        if isinstance(body, RelayData):
            if self._eof_received or self._receive_allowance <= 0:
                self.fail(RemoteProtocolError("the peer sent beyond its window or its end"))
                return
            if len(body.data) > self._max_frame_size:
                self.fail(FrameTooLargeError(len(body.data), self._max_frame_size))
                return
            self._receive_allowance -= 1
            self._inbox.append(body.data)
        elif isinstance(body, RelayWindow):
            self._send_credit = min(self._send_credit + body.frames, _MAX_CREDIT)
        elif body.abort:
            self._peer_reset = True
            reason = reason_name(body.reason)
            self.fail(ConnectionLostError(f"the stream was reset ({reason})"))
        else:
            self._eof_received = True

    def _raise_if_broken(self) -> None:
        if self._closed:
            raise ConnectionClosedError("the connection is closed")
        if self._error is not None:
            raise self._error

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame, waiting for the peer's window when it is used up."""
        if len(frame) > self._max_frame_size:
            raise FrameTooLargeError(len(frame), self._max_frame_size)
        async with self._send_lock:
            while True:
                if self._eof_sent and not self._closed:
                    raise ConnectionClosedError("cannot send: this side has finished sending")
                self._raise_if_broken()
                if self._send_credit > 0:
                    break
                await self._wait()
            self._send_credit -= 1
            await self._session.send(RelayData(stream_id=self._stream_id, data=bytes(frame)))

    async def receive_frame(self) -> bytes:
        """Return the next frame; ConnectionClosedError after the peer's end."""
        async with self._receive_lock:
            while not self._inbox:
                if self._closed:
                    raise ConnectionClosedError("the connection is closed")
                if self._eof_received:
                    raise ConnectionClosedError("the peer has finished sending")
                self._raise_if_broken()
                await self._wait()
            if self._closed:
                raise ConnectionClosedError("the connection is closed")
            frame = self._inbox.popleft()
            self._consumed += 1
            if self._consumed >= INITIAL_WINDOW // 2 and not self._eof_received:
                grant, self._consumed = self._consumed, 0
                self._receive_allowance += grant
                await self._session.send(RelayWindow(stream_id=self._stream_id, frames=grant))
            return frame

    async def send_eof(self) -> None:
        """Tell the peer we send no more frames; we may still receive."""
        async with self._send_lock:
            if self._eof_sent or self._closed or self._error is not None:
                return
            self._eof_sent = True
            await self._session.send(RelayClose(stream_id=self._stream_id, abort=False))

    async def aclose(self) -> None:
        """End the stream: gracefully once the peer has finished, else reset it."""
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        with anyio.CancelScope(shield=True):
            try:
                if self._session.failure is None and not self._peer_reset:
                    if not self._eof_received or self._error is not None:
                        await self._session.send(
                            RelayClose(
                                stream_id=self._stream_id,
                                abort=True,
                                reason=RelayReason.PEER_GONE,
                            )
                        )
                    elif not self._eof_sent:
                        await self._session.send(RelayClose(stream_id=self._stream_id))
            except OmegaError:
                pass  # the session is gone: so is the stream
            finally:
                self._session.forget(self._stream_id)
                if self._owns_session:
                    await self._session.aclose()
