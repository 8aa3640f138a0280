"""LMDB caches that are never half-written: build in `<path>.partial`, seal with a meta record, rename.

A sealed cache carries `__meta__` (counts, params); readers refuse a directory without it. Writers
commit one clip per transaction, so an interrupted run resumes from `<path>.partial` with every
finished clip kept and no clip half-present.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

META_KEY = b"__meta__"
MAP_SIZE = 1 << 40  # sparse on Linux: reserves address space, not disk


class CacheError(RuntimeError):
    """A cache that is missing, incomplete or unreadable."""


def _encode(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


class LmdbWriter:
    """Resumable writer: `put` commits a record at once; `seal` writes meta and renames into place."""

    def __init__(self, path: str | Path, *, resume: bool = True):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.partial.exists() and not resume:
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        # no fsync per record: a killed process loses nothing committed; `seal` syncs once before the rename
        self.env = lmdb.open(str(self.partial), map_size=MAP_SIZE, subdir=True, lock=True, sync=False)

    def keys(self) -> set[str]:
        """Records already committed (resume skips them)."""
        with self.env.begin() as txn:
            return {key.decode() for key, _ in txn.cursor() if key != META_KEY}

    def put(self, key: str, record: dict[str, Any]) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(key.encode(), _encode(record))

    def seal(self, meta: dict[str, Any]) -> Path:
        """Write meta, close, and atomically replace any previous cache at `path`."""
        keys = sorted(self.keys())
        with self.env.begin(write=True) as txn:
            txn.put(META_KEY, _encode({**meta, "keys": keys, "count": len(keys)}))
        self.env.sync(True)
        self.env.close()
        old = self.path.with_name(self.path.name + ".old")
        if self.path.exists():
            _close_readonly(self.path)
            self.path.rename(old)
        self.partial.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        self.env.close()


_OPEN: dict[tuple[int, str], lmdb.Environment] = {}


def _open_readonly(path: Path) -> lmdb.Environment:
    """One environment per (process, directory): LMDB refuses a second open of the same one in a process."""
    key = (os.getpid(), str(path.resolve()))
    if key not in _OPEN:
        _OPEN[key] = lmdb.open(str(path), readonly=True, lock=False, subdir=True, readahead=False)
    return _OPEN[key]


def _close_readonly(path: Path) -> None:
    env = _OPEN.pop((os.getpid(), str(path.resolve())), None)
    if env is not None:
        env.close()


class LmdbReader:
    """Read-only view of a sealed cache: `reader[key]`, `reader.keys`, `reader.meta`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CacheError(f"{self.path}: cache not found (run the stage that builds it)")
        self.env = _open_readonly(self.path)
        with self.env.begin() as txn:
            raw = txn.get(META_KEY)
        if raw is None:
            _close_readonly(self.path)
            raise CacheError(f"{self.path}: incomplete cache (no {META_KEY.decode()} record); rebuild it")
        self.meta: dict[str, Any] = pickle.loads(raw)
        self.keys: list[str] = list(self.meta["keys"])
        self._key_set = set(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._key_set

    def __getitem__(self, key: str) -> dict[str, Any]:
        with self.env.begin() as txn:
            raw = txn.get(key.encode())
        if raw is None:
            raise KeyError(f"{self.path}: no record {key!r}")
        return pickle.loads(raw)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key in self.keys:
            yield key, self[key]

    def close(self) -> None:
        _close_readonly(self.path)

    def __getstate__(self) -> dict[str, Any]:  # reopen lazily in DataLoader workers
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """JSON written to a temp file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    tmp.replace(path)
    return path
