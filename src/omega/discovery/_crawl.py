"""The value lookup, extended through subclassing kademlia's ``ValueSpiderCrawl``.

The stock crawler returns the most common value among the first answers
that hold one, so whoever answers most decides. :class:`BestRecordCrawl`
verifies every value it is handed for the key it looks up (an invalid one
counts as no value, with a log line), keeps crawling until ``quorum``
nodes have answered with a valid value or every close node has been asked,
and returns the valid record with the highest sequence number. The nodes
it met that lacked the record, or held an older one, are then sent the
best one (Kademlia's caching step, section 2.3 of the paper), in the
background.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kademlia.crawling import RPCFindResponse, ValueSpiderCrawl
from kademlia.node import Node

from omega.discovery.dht_values import DhtValue

__all__ = ["BestRecordCrawl"]

logger = logging.getLogger("omega.discovery.dht")


class BestRecordCrawl(ValueSpiderCrawl):  # type: ignore[misc]  # kademlia has no type hints
    """Finds the valid value with the highest sequence for one key."""

    def __init__(
        self,
        protocol: Any,
        node: Node,
        peers: list[Node],
        ksize: int,
        alpha: int,
        *,
        validate: Callable[[object], DhtValue | None],
        quorum: int,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        local: DhtValue | None = None,
    ) -> None:
        super().__init__(protocol, node, peers, ksize, alpha)
        self._validate = validate
        self._quorum = quorum
        self._spawn = spawn
        self._found: dict[bytes, DhtValue] = {}
        self._holders: dict[bytes, Node] = {}
        self._local = local
        self.rounds = 0
        """How many rounds of parallel requests the lookup took (its hop count)."""
        self.queried = 0
        """How many nodes were asked."""

    async def find(self) -> DhtValue | None:
        """Crawl towards the key; return the best valid value found, or ``None``."""
        self.rounds += 1
        return await self._find(self._counted_find_value)  # type: ignore[no-any-return]

    async def _counted_find_value(self, peer: Node, node: Node) -> object:
        self.queried += 1
        return await self.protocol.call_find_value(peer, node)

    async def _nodes_found(self, responses: dict[bytes, object]) -> DhtValue | None:
        unanswered = []
        for peer_id, raw_response in responses.items():
            response = RPCFindResponse(raw_response)
            peer = self.nearest.get_node(peer_id)
            if not response.happened():
                unanswered.append(peer_id)
            elif response.has_value():
                value = self._validate(response.get_value())
                if value is None:
                    logger.warning("dht.invalid_value source=%s key=%s", peer, self.node.id.hex())
                    continue
                self._found[peer_id] = value
                if peer is not None:
                    self._holders[peer_id] = peer
            else:
                if peer is not None:
                    self.nearest_without_value.push(peer)
                self.nearest.push(response.get_node_list())
        self.nearest.remove(unanswered)
        done = self.nearest.have_contacted_all()
        if len(self._found) >= self._quorum or (done and (self._found or self._local)):
            return self._finish()
        if done:
            return None
        return await self.find()

    def _finish(self) -> DhtValue:
        candidates = list(self._found.values())
        if self._local is not None:
            candidates.append(self._local)
        best = max(candidates, key=lambda value: (value.sequence, value.raw))
        stale = [
            self._holders[peer_id]
            for peer_id, value in self._found.items()
            if value.sequence < best.sequence and peer_id in self._holders
        ]
        lacking = self.nearest_without_value.popleft()
        for peer in [*stale, *([lacking] if lacking is not None else [])]:
            self._spawn(self.protocol.call_store(peer, self.node.id, best.raw))
        return best
