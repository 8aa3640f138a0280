"""LMDB caches that are never half-written: build in `<path>.partial`, seal with a meta record, rename.

A sealed cache carries `__meta__` (counts, params); readers refuse a directory without it. Writers
commit one clip per transaction, so an interrupted run resumes from `<path>.partial` with every
finished clip kept and no clip half-present.

Each numpy array of a record is its own LMDB value (raw C-order bytes under `<key>\x1f<path>`); the record's
own value is a small pickled skeleton with the arrays' dtype and shape. `rows(key, path, start, stop)` then reads
a window straight from the memory map, touching only its pages: O(window), whatever the clip's length.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

META_KEY = b"__meta__"
MAP_SIZE = 1 << 40  # sparse on Linux: reserves address space, not disk


class CacheError(RuntimeError):
    """A cache that is missing, incomplete or unreadable."""


SEP = "\x1f"  # between a record's key and an array's path inside it (never in a clip id)


@dataclass(frozen=True)
class ArrayRef:
    """Where a record's array lives: its own LMDB value of raw bytes."""

    dtype: str
    shape: tuple[int, ...]


def _encode(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def _split(value: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """The record with every array replaced by an ArrayRef; the arrays collected by path."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        arrays[path] = np.ascontiguousarray(value)
        return ArrayRef(value.dtype.str, tuple(value.shape))
    if isinstance(value, dict):
        return {k: _split(v, f"{path}/{k}" if path else str(k), arrays) for k, v in value.items()}
    return value


def _join(skeleton: Any, path: str, load: Callable[[str, ArrayRef], np.ndarray]) -> Any:
    if isinstance(skeleton, ArrayRef):
        return load(path, skeleton)
    if isinstance(skeleton, dict):
        return {k: _join(v, f"{path}/{k}" if path else str(k), load) for k, v in skeleton.items()}
    return skeleton


def _array_key(key: str, path: str) -> bytes:
    return f"{key}{SEP}{path}".encode()


def decode_record(txn: lmdb.Transaction, key: str, raw: bytes) -> dict[str, Any]:
    """A whole record from its skeleton and array values (records of older caches hold their arrays inline)."""
    def load(path: str, ref: ArrayRef) -> np.ndarray:
        data = txn.get(_array_key(key, path))
        if data is None:
            raise CacheError(f"record {key!r}: array {path!r} is missing")
        return np.frombuffer(data, dtype=ref.dtype).reshape(ref.shape).copy()

    return _join(pickle.loads(raw), "", load)


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
            return {key.decode() for key in txn.cursor().iternext(values=False)
                    if key != META_KEY and SEP.encode() not in key}

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Commit a record and its arrays in one transaction (all of it, or nothing, is in the cache)."""
        if SEP in key:
            raise ValueError(f"record key {key!r} contains the reserved separator \\x1f")
        arrays: dict[str, np.ndarray] = {}
        skeleton = _split(record, "", arrays)
        with self.env.begin(write=True) as txn:
            for path, array in arrays.items():
                txn.put(_array_key(key, path), array.reshape(-1).view(np.uint8))
            txn.put(key.encode(), _encode(skeleton))

    def get(self, key: str) -> dict[str, Any] | None:
        """A committed record (None when absent), e.g. to compute statistics before sealing."""
        with self.env.begin() as txn:
            raw = txn.get(key.encode())
            return None if raw is None else decode_record(txn, key, raw)

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
        self._skeletons: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._key_set

    def __getitem__(self, key: str) -> dict[str, Any]:
        with self.env.begin() as txn:
            raw = txn.get(key.encode())
            if raw is None:
                raise KeyError(f"{self.path}: no record {key!r}")
            return decode_record(txn, key, raw)

    def _skeleton(self, key: str) -> Any:
        if key not in self._skeletons:
            with self.env.begin() as txn:
                raw = txn.get(key.encode())
            if raw is None:
                raise KeyError(f"{self.path}: no record {key!r}")
            self._skeletons[key] = pickle.loads(raw)
        return self._skeletons[key]

    def field(self, key: str, path: str) -> Any:
        """The value at `path` (e.g. 'n_frames', 'parts/upper') of record `key`: an ArrayRef for an array."""
        node = self._skeleton(key)
        for name in path.split("/"):
            node = node[name]
        return node

    def rows(self, key: str, path: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of the array at `path` of record `key`, read from the map without decoding the rest."""
        node = self.field(key, path)
        if not isinstance(node, ArrayRef):  # a cache written before arrays had values of their own
            return np.asarray(node)[start:stop].copy()
        length = node.shape[0]
        start, stop = max(0, min(start, length)), max(0, min(stop, length))
        stop = max(start, stop)
        row = int(np.prod(node.shape[1:], dtype=np.int64))
        dtype = np.dtype(node.dtype)
        with self.env.begin(buffers=True) as txn:
            data = txn.get(_array_key(key, path))
            if data is None:
                raise CacheError(f"{self.path}: record {key!r} has no array {path!r}")
            values = np.frombuffer(data, dtype=dtype, count=(stop - start) * row, offset=start * row * dtype.itemsize)
            return values.reshape(stop - start, *node.shape[1:]).copy()

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
