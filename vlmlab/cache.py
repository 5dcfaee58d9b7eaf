"""Compute once, look many times: a small thread-safe LRU cache, image fingerprints, and a
bounded on-disk cache for results every user shares (feature visualisations).

Per-image results (all feature maps, all attention maps) are cached by (model, image), so a
user switching layer, head or channel re-renders and never re-runs the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

T = TypeVar("T")


class LRUCache:
    """A bounded mapping; `get_or_compute` runs `compute` once per key even when users race."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[Hashable, threading.Lock] = {}

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[return-value]
            pending = self._pending.setdefault(key, threading.Lock())
        with pending:
            with self._lock:
                if key in self._items:  # another user computed it while we waited
                    self._items.move_to_end(key)
                    return self._items[key]  # type: ignore[return-value]
            try:
                value = compute()
                with self._lock:
                    self._items[key] = value
                    while len(self._items) > self.maxsize:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._pending.pop(key, None)
        return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def forget(self, matches: Callable[[Hashable], bool]) -> None:
        """Drop every entry whose key `matches` (e.g. all of one evicted model's)."""
        with self._lock:
            for key in [key for key in self._items if matches(key)]:
                del self._items[key]


def fingerprint(image: Image.Image | np.ndarray) -> str:
    """A short digest of an image's pixels: the image half of a per-(model, image) cache key."""
    array = np.ascontiguousarray(np.asarray(image))
    digest = hashlib.blake2b(array.tobytes(), digest_size=12)
    digest.update(repr((array.shape, array.dtype.str)).encode())
    return digest.hexdigest()


_fingerprints: dict[int, tuple[weakref.ref, str]] = {}  # id(photo) -> (photo, its fingerprint)


def photo_fingerprint(image: Image.Image) -> str:
    """`fingerprint(image)`, hashed once per image object while it lives (switching layer, head
    or channel then costs no hashing). Photos are not edited in place in the lab: edit a copy."""
    key = id(image)
    known = _fingerprints.get(key)
    if known is not None and known[0]() is image:
        return known[1]
    digest = fingerprint(image)
    _fingerprints[key] = (
        weakref.ref(image, lambda _, key=key: _fingerprints.pop(key, None)),
        digest,
    )
    return digest


# ---------------------------------------------------------------------------------------------
# On disk: results that are slow to make and the same for every user (feature visualisations)

DEFAULT_DISK_MB = 512


def cache_dir() -> Path:
    """Where the lab keeps results on disk: VLMLAB_CACHE, else the user's cache directory
    (XDG_CACHE_HOME, else ~/.cache) under vlmlab/."""
    chosen = os.environ.get("VLMLAB_CACHE")
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vlmlab"


class DiskCache:
    """PNG images with a little text, one file per key, in `cache_dir()/<kind>`; bounded in
    size (VLMLAB_CACHE_MB, 512 by default): past the bound the least recently used go first.

    Files are written whole (a temporary file, then a rename), so a reader never sees half of
    one, and several processes (app workers, the atlas command) may share the folder.
    """

    def __init__(self, kind: str, max_mb: float | None = None):
        self.kind = kind
        if max_mb is None:
            try:
                max_mb = float(os.environ.get("VLMLAB_CACHE_MB") or DEFAULT_DISK_MB)
            except ValueError:
                max_mb = DEFAULT_DISK_MB
        self.max_bytes = int(max_mb * 2**20)
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return cache_dir() / self.kind

    def _path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("disk-cache keys are lowercase hex digests")
        return self.folder / f"{key}.png"

    def get(self, key: str) -> tuple[Image.Image, dict[str, str]] | None:
        """(image, its text) for `key`, or None when it is not there (or unreadable)."""
        path = self._path(key)
        try:
            with Image.open(path) as image:
                image.load()
                text = dict(getattr(image, "text", {}) or {})
                found = image.convert("RGB")
            os.utime(path)  # recently used
        except (OSError, ValueError, SyntaxError):
            return None
        return found, text

    def put(self, key: str, image: Image.Image, text: dict[str, str] | None = None) -> None:
        """Keep `image` (and `text`) under `key`; then trim the folder to its bound. A cache
        that cannot be written (a read-only disk) is skipped silently: it only saves time."""
        from PIL.PngImagePlugin import PngInfo

        path = self._path(key)
        info = PngInfo()
        for name, value in (text or {}).items():
            info.add_text(str(name), str(value))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=path.parent, prefix=".", suffix=".tmp", delete=False
            ) as handle:
                image.save(handle, format="PNG", pnginfo=info)
            os.replace(handle.name, path)
        except OSError:
            return
        self.trim()

    def trim(self) -> None:
        """Remove the least recently used files until the folder is within its bound."""
        with self._lock:
            try:
                entries = [e for e in os.scandir(self.folder) if e.name.endswith(".png")]
                files = [(e.stat().st_mtime, e.stat().st_size, e.path) for e in entries]
            except OSError:
                return
            total = sum(size for _, size, _ in files)
            for _, size, path in sorted(files):
                if total <= self.max_bytes:
                    break
                with contextlib.suppress(OSError):
                    os.remove(path)
                    total -= size

    def size(self) -> int:
        """Bytes in the folder now."""
        try:
            return sum(e.stat().st_size for e in os.scandir(self.folder) if e.name.endswith(".png"))
        except OSError:
            return 0

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(OSError):
                    os.remove(entry.path)
