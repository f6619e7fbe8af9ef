"""Benchmark every transport through the secure channel against a plain asyncio TCP floor.

For each transport on loopback (in-memory, TCP, WebSocket, WebSocket over
TLS, QUIC), with the Noise secure channel on top, and for Omega's TCP
transport without it:

* round-trip latency of 1 KiB frames: p50 and p99 over sequential echoes;
* throughput of 64 KiB frames in one direction: payload MB/s (1 MB = 10**6
  bytes) from the first frame sent to the receiver's acknowledgement of the
  last.

The floor, measured in the same run, is a plain asyncio TCP echo of the same
frames (4-byte length prefix, ``StreamReader.readexactly``, 1 MiB stream
buffers, no encryption, no framing library). As between real peers, the echoing peer runs in a
process of its own (``--serve``), for the floor and every transport alike;
the in-memory transport, which cannot cross processes, runs both ends in
the measuring process. The target: TCP with the secure channel reaches at
least 50% of the floor's throughput.

    python bench/transports.py            # 64 MiB per throughput run, 2000 round trips
    python bench/transports.py --quick    # 16 MiB (QUIC 4 MiB), 500 round trips

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import platform
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from omega.crypto import Identity
from omega.transport import (
    Address,
    FrameConnection,
    MemoryNetwork,
    MemoryTransport,
    NoiseCredentials,
    SecureTransport,
    TcpTransport,
    Transport,
    listening,
)

RTT_FRAME = 1024
THROUGHPUT_FRAME = 64 * 1024
TARGET_TCP_RATIO = 0.5
ACK_REQUEST = b"!"
FLOOR_BUFFER = 1 << 20  # generous asyncio stream buffers, so the floor is a hard one

# name: (listen address, secure channel on top)
CASES = {
    "tcp (no channel)": ("/ip4/127.0.0.1/tcp/0", False),
    "memory": ("/memory/bench", True),
    "tcp": ("/ip4/127.0.0.1/tcp/0", True),
    "ws": ("/ip4/127.0.0.1/tcp/0/ws", True),
    "wss": ("/ip4/127.0.0.1/tcp/0/wss", True),
    "quic": ("/ip4/127.0.0.1/udp/0/quic-v1", True),
}


@dataclass
class Result:
    name: str
    p50_us: float
    p99_us: float
    mb_per_s: float


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _credentials(name: str) -> NoiseCredentials:
    return NoiseCredentials.from_identity(Identity.create(device_name=name, created_at=0))


# --- TLS material shared by both processes ------------------------------------------------


def _write_certificate(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omega bench")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _transport(name: str, tls: Path, network: MemoryNetwork) -> Transport:
    """The raw transport of a case, able to dial and (with the certificate) listen."""
    if name == "memory":
        return MemoryTransport(network)
    if name in ("tcp", "tcp (no channel)"):
        return TcpTransport()
    certificate_pem = (tls / "cert.pem").read_bytes()
    if name in ("ws", "wss"):
        from omega.transport.websocket import WebSocketConfig, WebSocketTransport

        if name == "ws":
            return WebSocketTransport()
        server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ssl.load_cert_chain(tls / "cert.pem", tls / "key.pem")
        client_ssl = ssl.create_default_context(cadata=certificate_pem.decode())
        return WebSocketTransport(
            WebSocketConfig(tls=True, server_ssl=server_ssl, client_ssl=client_ssl)
        )
    from omega.transport.quic import QuicConfig, QuicTransport

    return QuicTransport(
        QuicConfig(
            certificate=x509.load_pem_x509_certificate(certificate_pem),
            private_key=serialization.load_pem_private_key(
                (tls / "key.pem").read_bytes(), password=None
            ),
            trusted_certificates=certificate_pem,
        )
    )


# --- the echoing peer ---------------------------------------------------------------------


async def _echo(connection: FrameConnection) -> None:
    async for frame in connection:
        if len(frame) != THROUGHPUT_FRAME:  # throughput frames are only counted
            await connection.send_frame(frame)


async def _floor_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            payload = await reader.readexactly(size)
            if size != THROUGHPUT_FRAME:
                writer.write(struct.pack(">I", size) + payload)
                await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def serve(name: str, tls: Path) -> None:
    """Run the echoing peer of case ``name``; print its address, serve until killed."""
    if name == "floor":
        server = await asyncio.start_server(_floor_echo, "127.0.0.1", 0, limit=FLOOR_BUFFER)
        print(f"/ip4/127.0.0.1/tcp/{server.sockets[0].getsockname()[1]}", flush=True)
        await anyio.sleep_forever()
    address, secure = CASES[name]
    transport = _transport(name, tls, MemoryNetwork())
    if secure:
        transport = SecureTransport(transport, _credentials("server"))
    async with transport, listening(transport, Address.parse(address), _echo) as listener:
        print(listener.addresses[0], flush=True)
        await anyio.sleep_forever()


# --- the measuring side -------------------------------------------------------------------


async def measure_floor(address: Address, round_trips: int, throughput_bytes: int) -> Result:
    reader, writer = await asyncio.open_connection(address.host, address.port, limit=FLOOR_BUFFER)
    writer.transport.set_write_buffer_limits(high=FLOOR_BUFFER)
    frame = struct.pack(">I", RTT_FRAME) + bytes(RTT_FRAME)
    samples = []
    for _ in range(round_trips):
        start = time.perf_counter()
        writer.write(frame)
        await writer.drain()
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        await reader.readexactly(size)
        samples.append(time.perf_counter() - start)
    big = struct.pack(">I", THROUGHPUT_FRAME) + bytes(THROUGHPUT_FRAME)
    count = throughput_bytes // THROUGHPUT_FRAME
    start = time.perf_counter()
    for _ in range(count):
        writer.write(big)
        await writer.drain()
    writer.write(struct.pack(">I", 1) + ACK_REQUEST)
    await writer.drain()
    await reader.readexactly(5)
    elapsed = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    return _result("asyncio TCP floor", samples, count, elapsed)


def _result(name: str, samples: list[float], count: int, elapsed: float) -> Result:
    return Result(
        name,
        _percentile(samples, 0.5) * 1e6,
        _percentile(samples, 0.99) * 1e6,
        count * THROUGHPUT_FRAME / elapsed / 1e6,
    )


async def measure(
    name: str, client: Transport, address: Address, round_trips: int, throughput_bytes: int
) -> Result:
    async with await client.dial(address) as connection:
        frame = bytes(RTT_FRAME)
        samples = []
        for _ in range(round_trips):
            start = time.perf_counter()
            await connection.send_frame(frame)
            await connection.receive_frame()
            samples.append(time.perf_counter() - start)
        big = bytes(THROUGHPUT_FRAME)
        count = throughput_bytes // THROUGHPUT_FRAME
        start = time.perf_counter()
        for _ in range(count):
            await connection.send_frame(big)
        await connection.send_frame(ACK_REQUEST)
        await connection.receive_frame()
        elapsed = time.perf_counter() - start
    return _result(name, samples, count, elapsed)


class Peer:
    """The echoing peer of one case, in a process of its own."""

    def __init__(self, name: str, tls: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--serve", name, "--tls", str(tls)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.address = Address.parse(self._process.stdout.readline())

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


async def run(quick: bool, tls: Path) -> dict[str, object]:
    round_trips = 500 if quick else 2000
    throughput_bytes = (16 if quick else 64) << 20
    peer = Peer("floor", tls)
    try:
        results = [await measure_floor(peer.address, round_trips, throughput_bytes)]
    finally:
        peer.stop()
    client_credentials = _credentials("client")
    network = MemoryNetwork()
    for name, (address, secure) in CASES.items():
        label = f"{name} + secure channel" if secure else name
        client = _transport(name, tls, network)
        if secure:
            client = SecureTransport(client, client_credentials)
        trips = round_trips // 4 if name == "quic" else round_trips
        volume = ((4 if quick else 16) << 20) if name == "quic" else throughput_bytes
        async with client:
            if name == "memory":  # cannot cross processes: both ends here
                server = SecureTransport(MemoryTransport(network), _credentials("server"))
                async with listening(server, Address.parse(address), _echo) as listener:
                    result = await measure(label, client, listener.addresses[0], trips, volume)
            else:
                peer = Peer(name, tls)
                try:
                    result = await measure(label, client, peer.address, trips, volume)
                finally:
                    peer.stop()
        results.append(result)
        print(f"  measured {label}", file=sys.stderr)
    return _report(results)


def _report(results: list[Result]) -> dict[str, object]:
    base = results[0]
    print(f"{'transport':<28} {'p50 RTT us':>11} {'p99 RTT us':>11} {'MB/s':>9} {'/ floor':>8}")
    figures: dict[str, object] = {}
    for result in results:
        ratio = result.mb_per_s / base.mb_per_s
        print(
            f"{result.name:<28} {result.p50_us:>11.1f} {result.p99_us:>11.1f} "
            f"{result.mb_per_s:>9.1f} {ratio:>8.2f}"
        )
        figures[result.name] = {
            "rtt_p50_us": round(result.p50_us, 1),
            "rtt_p99_us": round(result.p99_us, 1),
            "mb_per_s": round(result.mb_per_s, 1),
            "throughput_ratio_to_floor": round(ratio, 3),
            "rtt_p50_ratio_to_floor": round(result.p50_us / base.p50_us, 2),
        }
    tcp = next(result for result in results if result.name == "tcp + secure channel")
    tcp_ratio = tcp.mb_per_s / base.mb_per_s
    verdict = "meets" if tcp_ratio >= TARGET_TCP_RATIO else "MISSES"
    print(
        f"TCP + secure channel reaches {tcp_ratio:.0%} of the floor's throughput: "
        f"{verdict} the {TARGET_TCP_RATIO:.0%} target"
    )
    return {
        "benchmark": "transports",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rtt_frame_bytes": RTT_FRAME,
        "throughput_frame_bytes": THROUGHPUT_FRAME,
        "results": figures,
        "tcp_secure_throughput_ratio": round(tcp_ratio, 3),
        "tcp_target_met": tcp_ratio >= TARGET_TCP_RATIO,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--tls", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve:
        anyio.run(serve, arguments.serve, arguments.tls)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        tls = Path(directory)
        _write_certificate(tls)
        summary: dict[str, object] = anyio.run(run, arguments.quick, tls)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
