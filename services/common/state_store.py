"""Local state of a record pipeline: one key -> JSON value store per (name, partition),
kept in RocksDB (rocksdict, on disk) or in memory (tests), backed by a compacted changelog
topic partitioned like the inputs, from which it is rebuilt when a partition is assigned.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol


class Store(Protocol):
    def get(self, key: str) -> Any | None: ...
    # None deletes; ``raw``: the value already encoded (encode_value), when the caller has it.
    def put(self, key: str, value: Any | None, raw: bytes | None = None) -> None: ...
    def items(self) -> Iterator[tuple[str, Any]]: ...
    def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self._data.get(key)

    def put(self, key: str, value: Any | None, raw: bytes | None = None) -> None:
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._data.items()))

    def close(self) -> None:
        self._data.clear()


class RocksStore:
    """Values as JSON bytes (or, ``raw``, as the bytes given); a bounded block cache
    (rocksdict's default is 2 GiB per database). The directory is wiped on open: the
    changelog is the source of truth."""

    def __init__(self, path: Path, cache_mb: int = 16, raw: bool = False) -> None:
        from rocksdict import BlockBasedOptions, Cache, Options, Rdict

        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(cache_mb << 20))
        options.set_block_based_table_factory(table)
        self.path = path
        self.raw = raw
        self._db = Rdict(str(path), options)

    def get(self, key: str) -> Any | None:
        raw = self._db.get(key.encode())
        return raw if raw is None or self.raw else json.loads(raw)

    def put(self, key: str, value: Any | None, raw: bytes | None = None) -> None:
        if value is None:
            self._db.delete(key.encode())
        else:
            self._db[key.encode()] = raw if raw is not None else encode_value(value)

    def items(self) -> Iterator[tuple[str, Any]]:
        for key, raw in self._db.items():
            yield bytes(key).decode(), raw if self.raw else json.loads(raw)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)


class StoreFactory(Protocol):
    def __call__(self, name: str, partition: int) -> Store: ...


def memory_stores(name: str, partition: int) -> Store:
    return MemoryStore()


def rocks_stores(root: Path, cache_mb: int = 16, raw: Iterable[str] = ()) -> StoreFactory:
    """``raw``: the stores whose values are bytes (see ``PartitionedState``)."""
    raw = frozenset(raw)

    def open_store(name: str, partition: int) -> Store:
        return RocksStore(root / f"{name}-{partition}", cache_mb, raw=name in raw)

    return open_store


def encode_value(value: Any | None) -> bytes | None:
    return None if value is None else json.dumps(value, separators=(",", ":")).encode()


def decode_value(raw: bytes | None) -> Any | None:
    return None if raw is None else json.loads(raw)
