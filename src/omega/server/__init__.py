"""Self-hostable Omega servers: store-and-forward, relay, bootstrap."""

from __future__ import annotations
