"""Benchmark the message store beside bare sqlite3 doing the same SQL in the same run.

Contenders:

* ``sqlite``: :class:`omega.storage.SQLiteMessageStore`, plain (FTS5 index in
  the file, kept by triggers);
* ``encrypted``: the same store opened with an ``encryption_key`` (sealed
  content and text, in-memory FTS5 index);
* ``memory``: :class:`omega.storage.MemoryMessageStore`;
* ``baseline``: the standard library's ``sqlite3`` running the equivalent
  statements on the same schema, synchronously, with the same durability
  (WAL, ``synchronous=FULL``), no validation and no thread hop: the floor
  Omega's overhead is measured against.

Workloads over a 1:1 conversation of N messages (texts of 12 words):
``receive`` (one transaction per message: dedupe ``mark_seen`` then
``add_message``, the client's receive path), ``bulk`` (N messages in one
transaction), ``page`` (the newest 50 messages before a timestamp),
``search`` (a two-word query with a prefix, 50 hits at most) and, for the
encrypted store, ``open`` (reopening rebuilds the in-memory index).

    python bench/message_store.py            # N = 5000
    python bench/message_store.py --quick    # N = 500, under a minute

The last line printed is one JSON object holding every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from omega.storage import MemoryMessageStore, MessageStore, SQLiteMessageStore
from omega.storage.message_sqlite import _PLAIN_FTS_V1, _SCHEMA_V1
from omega.testing.message_store import sample_message
from omega.testing.random import SeededRandom

_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]
KEY = b"K" * 32


def _texts(count: int) -> list[str]:
    rng = SeededRandom(b"bench")
    return [" ".join(_WORDS[b % len(_WORDS)] for b in rng(12)) for _ in range(count)]


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def _omega(store: MessageStore, texts: list[str], rounds: int) -> dict[str, float]:
    """Ops per second of each workload on ``store`` (which must be empty)."""
    half = len(texts) // 2

    async def receive() -> None:
        for index, text in enumerate(texts[:half]):
            async with store.transaction() as tx:
                if await tx.mark_seen(bytes(32), f"r{index}", index):
                    await tx.add_message(sample_message(f"r{index}", timestamp=index, text=text))

    async def bulk() -> None:
        async with store.transaction() as tx:
            for index, text in enumerate(texts[half:], start=half):
                await tx.add_message(sample_message(f"b{index}", timestamp=index, text=text))

    async def page() -> None:
        for before in range(rounds):
            async with store.transaction() as tx:
                await tx.messages(sample_message("x").conversation_id, before=half + before)

    async def search() -> None:
        for _ in range(rounds):
            async with store.transaction() as tx:
                await tx.search("delta ech")

    return {
        "receive": half / await _timed(receive),
        "bulk": (len(texts) - half) / await _timed(bulk),
        "page": rounds / await _timed(page),
        "search": rounds / await _timed(search),
    }


def _baseline(path: Path, texts: list[str], rounds: int) -> dict[str, float]:
    """The same workloads as plain sqlite3 statements."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    for statement in _SCHEMA_V1 + _PLAIN_FTS_V1:
        connection.execute(statement)
    conversation = sample_message("x").conversation_id
    insert = (
        "INSERT INTO messages (conversation_id, message_id, sender_id, sender_device_key,"
        " direction, timestamp, received_at, content, text, state, deleted)"
        " VALUES (?, ?, ?, ?, 'incoming', ?, ?, ?, ?, 'delivered', 0)"
        " ON CONFLICT DO NOTHING"
    )

    def row(message_id: str, index: int, text: str) -> tuple[object, ...]:
        return (conversation, message_id, conversation, bytes(32), index, index, b"c", text)

    half = len(texts) // 2
    start = time.perf_counter()
    for index, text in enumerate(texts[:half]):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO seen VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (bytes(32), f"r{index}", 1)
        )
        connection.execute(insert, row(f"r{index}", index, text))
        connection.execute("COMMIT")
    receive = half / (time.perf_counter() - start)
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for index, text in enumerate(texts[half:], start=half):
        connection.execute(insert, row(f"b{index}", index, text))
    connection.execute("COMMIT")
    bulk = (len(texts) - half) / (time.perf_counter() - start)
    start = time.perf_counter()
    for before in range(rounds):
        connection.execute(
            "SELECT * FROM messages WHERE conversation_id = ? AND timestamp < ?"
            " ORDER BY timestamp DESC, seq DESC LIMIT 50",
            (conversation, half + before),
        ).fetchall()
    page = rounds / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(rounds):
        connection.execute(
            "SELECT m.* FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid"
            " WHERE messages_fts MATCH ? ORDER BY m.timestamp DESC, m.seq DESC LIMIT 50",
            ('"delta" AND "ech"*',),
        ).fetchall()
    search = rounds / (time.perf_counter() - start)
    connection.close()
    return {"receive": receive, "bulk": bulk, "page": page, "search": search}


async def _run(count: int, rounds: int, repeats: int) -> dict[str, dict[str, float]]:
    texts = _texts(count)
    samples: dict[str, list[dict[str, float]]] = {
        "baseline": [],
        "sqlite": [],
        "encrypted": [],
        "memory": [],
    }
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            base = Path(folder)
            samples["baseline"].append(_baseline(base / "raw.db", texts, rounds))
            async with await SQLiteMessageStore.open(base / "plain.db") as store:
                samples["sqlite"].append(await _omega(store, texts, rounds))
            async with await SQLiteMessageStore.open(base / "e.db", encryption_key=KEY) as store:
                figures = await _omega(store, texts, rounds)
            start = time.perf_counter()
            async with await SQLiteMessageStore.open(base / "e.db", encryption_key=KEY):
                figures["open"] = 1 / (time.perf_counter() - start)
            samples["encrypted"].append(figures)
            samples["memory"].append(await _omega(MemoryMessageStore(), texts, rounds))
    return {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 500, one repeat")
    arguments = parser.parse_args()
    count, rounds, repeats = (500, 100, 1) if arguments.quick else (5000, 300, 3)
    results = anyio.run(_run, count, rounds, repeats)
    workloads = ("receive", "bulk", "page", "search")
    print(f"message store, N = {count} messages (ops/s, median of {repeats})")
    print(f"{'workload':<10}" + "".join(f"{name:>12}" for name in results) + "  sqlite/baseline")
    figures: dict[str, object] = {"n": count}
    for workload in workloads:
        row = {name: results[name][workload] for name in results}
        ratio = row["sqlite"] / row["baseline"]
        print(f"{workload:<10}" + "".join(f"{v:>12.0f}" for v in row.values()) + f"{ratio:>16.2f}")
        figures[workload] = {**{k: round(v, 1) for k, v in row.items()}, "ratio": round(ratio, 3)}
    open_ms = 1000 / results["encrypted"]["open"]
    print(f"opening the encrypted store (index rebuild of {count} texts): {open_ms:.1f} ms")
    figures["encrypted_open_ms"] = round(open_ms, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
