"""Every message store backend passes the conformance suite; search properties."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio.from_thread
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import given, settings
from hypothesis import strategies as st

from omega.errors import ConfigurationError, OmegaError
from omega.storage import MemoryMessageStore, MessageStore, SQLiteMessageStore
from omega.testing import check_message_store
from omega.testing.message_store import sample_message


@pytest.mark.anyio
async def test_memory_store_conforms() -> None:
    async def open_store(name: str) -> MemoryMessageStore:
        return MemoryMessageStore()

    await check_message_store(open_store, durable=False)


@pytest.mark.anyio
async def test_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store(name: str) -> SQLiteMessageStore:
        return await SQLiteMessageStore.open(tmp_path / f"{name}.db")

    await check_message_store(open_store, durable=True)


@pytest.mark.anyio
async def test_encrypted_sqlite_store_conforms(tmp_path: Path) -> None:
    async def open_store(name: str) -> SQLiteMessageStore:
        return await SQLiteMessageStore.open(tmp_path / f"{name}.db", encryption_key=b"k" * 32)

    await check_message_store(open_store, durable=True)


# Search properties: every backend evaluates the same parse of any query.

_WORDS = ["hello", "Hélène", "cafe", "café", "e-mail", "world", "wor", "NOT", "and", "naïve"]
_CORPUS = [
    "hello world",
    "Hello, wonderful world!",
    "Café au lait et crème",
    "naïve Hélène said hello",
    "e-mail: bob@example.com",
    'she said "NOT AND OR" twice',
    "worldwide hellos",
    "",
    "wor-ld hel-lo",
    "HELENE CAFE NAIVE",
]
_QUERY_ALPHABET = [*"helowrdcafémntiv\"*-:^()' .ÉH", "AND", "OR", "NOT", "NEAR"]


@pytest.fixture(scope="module")
def search_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Stores]:
    """A memory, a plain SQLite and an encrypted SQLite store holding the same corpus."""
    folder = tmp_path_factory.mktemp("search")
    with anyio.from_thread.start_blocking_portal() as portal:
        stores: list[MessageStore] = [
            MemoryMessageStore(),
            portal.call(SQLiteMessageStore.open, folder / "plain.db"),
            portal.call(
                partial(SQLiteMessageStore.open, encryption_key=b"k" * 32), folder / "e.db"
            ),
        ]

        async def fill(store: MessageStore) -> None:
            async with store.transaction() as tx:
                for index, text in enumerate(_CORPUS):
                    message = sample_message(f"m{index}", timestamp=index, text=text)
                    await tx.add_message(message)

        for store in stores:
            portal.call(fill, store)
        yield _Stores(portal, stores)
        for store in stores:
            portal.call(store.aclose)


class _Stores:
    def __init__(self, portal: BlockingPortal, stores: list[MessageStore]) -> None:
        self.portal = portal
        self.stores = stores

    def search(self, query: str) -> list[list[str] | type[OmegaError]]:
        async def run(store: MessageStore) -> list[str]:
            async with store.transaction() as tx:
                return [message.message_id for message in await tx.search(query)]

        results: list[list[str] | type[OmegaError]] = []
        for store in self.stores:
            try:
                results.append(self.portal.call(run, store))
            except ConfigurationError:
                results.append(ConfigurationError)
        return results


@settings(max_examples=150)
@given(query=st.text(max_size=40))
def test_any_query_is_safe(search_stores: _Stores, query: str) -> None:
    results = search_stores.search(query)
    for result in results:
        assert result is ConfigurationError or isinstance(result, list)
    assert search_stores.search("hello ") == [["m3", "m1", "m0"]] * 3, "the index is intact"


@settings(max_examples=150)
@given(
    query=st.lists(
        st.one_of(st.sampled_from(_WORDS), st.sampled_from(_QUERY_ALPHABET)), max_size=6
    ).map("".join)
    | st.lists(st.sampled_from(_WORDS + _QUERY_ALPHABET), max_size=5).map(" ".join)
)
def test_backends_agree_on_every_query(search_stores: _Stores, query: str) -> None:
    memory, plain, encrypted = search_stores.search(query)
    assert memory == plain == encrypted, query


def test_a_few_queries_by_hand(search_stores: _Stores) -> None:
    assert search_stores.search("helene") == [["m9", "m3"]] * 3
    assert search_stores.search("CAFÉ") == [["m9", "m2"]] * 3
    assert search_stores.search('"not and or"') == [["m5"]] * 3
    assert search_stores.search("hel") == [["m9", "m8", "m6", "m3", "m1", "m0"]] * 3
