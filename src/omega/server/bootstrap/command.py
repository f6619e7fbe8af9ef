"""``omega serve bootstrap``: run a DHT bootstrap node (docs/discovery.md, "Bootstrap node").

Only the standard library is imported at module level, so that
``omega --help`` stays fast; the node itself needs only Omega's core
dependencies. SIGINT and SIGTERM stop the node gracefully: it saves its
routing table and exits 0.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TextIO

HELP = "run a DHT bootstrap node (UDP) with a health endpoint"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the bootstrap node's options to ``parser``."""
    parser.add_argument("--config", type=Path, default=None, help="TOML file ([bootstrap] table)")
    parser.add_argument("--host", default=None, help="IP address of the DHT (UDP)")
    parser.add_argument("--port", type=int, default=None, help="UDP port of the DHT")
    parser.add_argument("--health-host", default=None, help="IP address of the health endpoint")
    parser.add_argument("--health-port", type=int, default=None, help="TCP port of /health")
    parser.add_argument("--state-file", type=Path, default=None, help="routing table (JSON)")
    parser.add_argument(
        "--peer",
        action="append",
        dest="peers",
        default=None,
        help="another bootstrap node, host:port (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the bootstrap node until SIGINT or SIGTERM; return the exit status."""
    import signal

    import anyio

    from omega.server.bootstrap.config import BootstrapConfig
    from omega.server.bootstrap.server import BootstrapServer

    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    config = BootstrapConfig.load(
        file=args.config,
        overrides={
            "host": args.host,
            "port": args.port,
            "health_host": args.health_host,
            "health_port": args.health_port,
            "state_file": args.state_file,
            "peers": tuple(args.peers) if args.peers else None,
        },
    )

    async def main() -> None:
        stop = anyio.Event()

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logging.getLogger("omega.server.bootstrap").info(
                        "bootstrap.signal signal=%s", signal.Signals(signum).name
                    )
                    stop.set()
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(watch_signals)
            server = await group.start(BootstrapServer(config).serve, stop)
            assert server.node is not None
            assert server.health_address is not None
            host, port = server.node.address
            health_host, health_port = server.health_address
            print(
                f"bootstrap node {server.node.node_id.hex()} on udp {host}:{port}, "
                f"health http://{health_host}:{health_port}/health",
                file=out,
                flush=True,
            )
            await stop.wait()

    anyio.run(main, backend="asyncio")
    return 0
