"""The bootstrap node: a long-lived DHT node others join through, with a health endpoint.

It is an ordinary :class:`~omega.discovery.DhtNode` (it stores and serves
records like any node) that keeps a stable node id and its routing table
across restarts (:mod:`omega.server.bootstrap.state`), joins the other
configured bootstrap nodes, and answers ``GET /health`` over HTTP/1.1 on a
TCP port with a JSON object::

    {"status": "ok", "node_id": "<hex>", "contacts": 42, "records": 17,
     "malformed": 0, "stores_refused": 3, "stores_rate_limited": 0}
"""

from __future__ import annotations

import json
import logging
import time

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from omega.discovery.dht import DhtConfig, DhtNode
from omega.server.bootstrap.config import BootstrapConfig
from omega.server.bootstrap.state import RoutingState, load_state, save_state

__all__ = ["BootstrapServer"]

logger = logging.getLogger("omega.server.bootstrap")

_MAX_REQUEST = 4096
_REQUEST_TIMEOUT = 5.0


def _contact_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BootstrapServer:
    """Runs one bootstrap node until told to stop (see :meth:`serve`)."""

    def __init__(self, config: BootstrapConfig) -> None:
        self.config = config
        self.node: DhtNode | None = None
        self.health_address: tuple[str, int] | None = None

    def health(self) -> dict[str, object]:
        """The health document (``status`` is ``"starting"`` until the node runs)."""
        if self.node is None:
            return {"status": "starting"}
        stats = self.node.stats
        return {
            "status": "ok",
            "node_id": self.node.node_id.hex(),
            "contacts": len(self.node.routing_table()),
            "records": self.node.storage.count,
            "malformed": stats.malformed,
            "stores_refused": stats.stores_refused,
            "stores_rate_limited": stats.stores_rate_limited,
        }

    def save(self) -> None:
        """Write the routing table to the state file, if one is configured."""
        if self.config.state_file is None or self.node is None:
            return
        state = RoutingState(
            node_id=self.node.node_id,
            contacts=tuple(self.node.routing_table()),
            saved_at=time.time_ns() // 1_000_000,
        )
        save_state(self.config.state_file, state)
        logger.info(
            "bootstrap.saved path=%s contacts=%d", self.config.state_file, len(state.contacts)
        )

    async def serve(
        self,
        stop: anyio.Event,
        *,
        task_status: TaskStatus[BootstrapServer] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until ``stop`` is set; then save the routing table and close."""
        state = load_state(self.config.state_file) if self.config.state_file else None
        saved = [_contact_text(host, port) for _, host, port in (state.contacts if state else ())]
        dht_config = DhtConfig(
            host=self.config.host,
            port=self.config.port,
            bootstrap=self.config.peers,
            node_id=state.node_id if state else None,
        )
        async with DhtNode(dht_config) as node:
            self.node = node
            if saved:
                found = await node.bootstrap(saved)
                logger.info("bootstrap.rejoined saved=%d found=%d", len(saved), found)
            listener = await anyio.create_tcp_listener(
                local_host=self.config.health_host, local_port=self.config.health_port
            )
            sockname = listener.extra(SocketAttribute.local_address)  # noqa: S610 - anyio, not Django
            self.health_address = (str(sockname[0]), int(sockname[1]))
            logger.info(
                "bootstrap.started node=%s udp=%s:%s health=%s:%s",
                node.node_id.hex(),
                *node.address,
                *self.health_address,
            )
            try:
                async with listener, anyio.create_task_group() as group:
                    group.start_soon(listener.serve, self._answer)
                    group.start_soon(self._save_regularly)
                    task_status.started(self)
                    await stop.wait()
                    group.cancel_scope.cancel()
            finally:
                self.save()
                logger.info("bootstrap.stopped node=%s", node.node_id.hex())

    async def _save_regularly(self) -> None:
        while True:
            await anyio.sleep(self.config.save_interval)
            self.save()

    async def _answer(self, stream: SocketStream) -> None:
        async with stream:
            request = b""
            with anyio.move_on_after(_REQUEST_TIMEOUT):
                try:
                    while b"\r\n\r\n" not in request and len(request) < _MAX_REQUEST:
                        request += await stream.receive(_MAX_REQUEST)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
            parts = request.split(b"\r\n", 1)[0].split(b" ")
            body: dict[str, object]
            if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
                status, body = "400 Bad Request", {"error": "bad request"}
            elif parts[1] != b"/health":
                status, body = "404 Not Found", {"error": "not found"}
            elif parts[0] not in (b"GET", b"HEAD"):
                status, body = "405 Method Not Allowed", {"error": "method not allowed"}
            else:
                status, body = "200 OK", self.health()
            payload = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            ).encode()
            try:
                await stream.send(head + (b"" if parts[0] == b"HEAD" else payload))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                logger.info("bootstrap.health_client_gone")
