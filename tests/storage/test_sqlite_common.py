"""The SQLite transaction runner: statements inline, the commit in one thread hop."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from omega.errors import CorruptDataError, StorageError
from omega.storage import _sqlite_common
from omega.storage._sqlite_common import SQLiteDatabase, check_live

pytestmark = pytest.mark.anyio


class Handle:
    """The smallest transaction handle the runner accepts."""

    def __init__(self) -> None:
        self.live = True


def schema(connection: sqlite3.Connection) -> str:
    connection.execute("CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY)")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS links (item TEXT REFERENCES items (name)"
        " DEFERRABLE INITIALLY DEFERRED)"
    )
    return "prepared"


async def open_database(path: Path) -> SQLiteDatabase:
    database, prepared = await SQLiteDatabase.open(path, kind="test store", prepare=schema)
    assert prepared == "prepared"
    return database


def names(database: SQLiteDatabase) -> list[str]:
    return [row[0] for row in database.fetch_all("SELECT name FROM items ORDER BY name", ())]


async def test_commits_and_sets_durable_pragmas(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    async with database.transaction(Handle()) as handle:
        assert database.execute("INSERT INTO items VALUES (?)", ("a",)) == (1, 1)
        check_live(handle)
    with pytest.raises(Exception, match="has ended"):
        check_live(handle)
    assert database.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    await database.close()
    with sqlite3.connect(tmp_path / "t.db") as other:
        assert other.execute("SELECT name FROM items").fetchall() == [("a",)]


async def test_an_exception_rolls_back(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")

    async def failing() -> None:
        async with database.transaction(Handle()):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await failing()
    assert not database.connection.in_transaction
    async with database.transaction(Handle()):
        assert names(database) == []
    await database.close()


async def test_cancelled_mid_transaction_rolls_back_and_frees_the_store(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    inside = anyio.Event()

    async def writer() -> None:
        async with database.transaction(Handle()):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
            inside.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(writer)
        await inside.wait()
        group.cancel_scope.cancel()
    assert not database.connection.in_transaction
    with anyio.fail_after(5):
        async with database.transaction(Handle()):
            assert names(database) == []
    await database.close()


async def test_a_commit_under_way_completes_when_cancelled(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    with anyio.CancelScope() as scope:
        async with database.transaction(Handle()):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
            scope.cancel()  # the commit's hop is shielded: it completes
        await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert not database.connection.in_transaction
    async with database.transaction(Handle()):
        assert names(database) == ["a"]
    await database.close()


async def test_close_waits_for_the_running_transaction(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    inside, release = anyio.Event(), anyio.Event()
    outcomes: list[str] = []

    async def writer() -> None:
        async with database.transaction(Handle()):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
            inside.set()
            await release.wait()
        outcomes.append("committed")

    async def waiting() -> None:
        with pytest.raises(StorageError, match="closed"):
            async with database.transaction(Handle()):
                pass  # pragma: no cover - the store closes first
        outcomes.append("refused")

    async def closer() -> None:
        await database.close()
        outcomes.append("closed")

    async with anyio.create_task_group() as group:
        group.start_soon(writer)
        await inside.wait()
        group.start_soon(closer)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(waiting)
        await anyio.wait_all_tasks_blocked()
        assert outcomes == []
        release.set()
    assert outcomes == ["committed", "closed", "refused"]
    await database.close()  # idempotent
    with sqlite3.connect(tmp_path / "t.db") as other:
        assert other.execute("SELECT name FROM items").fetchall() == [("a",)]


async def test_statement_errors_are_mapped(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    async with database.transaction(Handle()):
        with pytest.raises(StorageError, match="test store read failed"):
            database.fetch_all("SELECT nothing FROM nowhere", ())
        database.execute("INSERT INTO items VALUES (?)", ("a",))
        with pytest.raises(StorageError, match="test store write failed"):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
    async with database.transaction(Handle()):
        assert names(database) == ["a"], "a failed statement does not end the transaction"
    await database.close()


async def test_a_failed_commit_is_rolled_back_and_mapped(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "t.db")
    database.connection.execute("PRAGMA foreign_keys = ON")

    async def dangling_link() -> None:
        async with database.transaction(Handle()):
            database.execute("INSERT INTO items VALUES (?)", ("a",))
            database.execute("INSERT INTO links VALUES (?)", ("missing",))  # checked at COMMIT

    with pytest.raises(StorageError, match="test store commit failed"):
        await dangling_link()
    assert not database.connection.in_transaction
    async with database.transaction(Handle()):
        assert names(database) == []
    await database.close()


async def test_waits_in_the_thread_for_another_process_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = await open_database(tmp_path / "t.db")
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items VALUES ('other')")

    async def release_other() -> None:
        await anyio.wait_all_tasks_blocked()
        other.execute("COMMIT")

    async with anyio.create_task_group() as group:
        group.start_soon(release_other)
        async with database.transaction(Handle()):
            assert names(database) == ["other"]
    monkeypatch.setattr(_sqlite_common, "BUSY_TIMEOUT_MS", 10)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StorageError, match="cannot start a test store transaction"):
        async with database.transaction(Handle()):
            pass  # pragma: no cover - never starts
    other.execute("ROLLBACK")
    other.close()
    async with database.transaction(Handle()):
        database.execute("INSERT INTO items VALUES (?)", ("mine",))
    await database.close()


async def test_open_failures_are_mapped_and_close_the_connection(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CorruptDataError, match="not a usable Omega test store"):
        await open_database(garbage)

    def refuse(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half (x)")
        raise StorageError("refused by prepare")

    with pytest.raises(StorageError, match="refused by prepare"):
        await SQLiteDatabase.open(tmp_path / "new.db", kind="test store", prepare=refuse)
    with sqlite3.connect(tmp_path / "new.db") as check:
        assert check.execute("SELECT name FROM sqlite_schema").fetchall() == []
    with pytest.raises(StorageError, match="cannot open the test store"):
        await open_database(tmp_path / "missing" / "t.db")
