"""Compute once, look many times: a small thread-safe LRU cache and image fingerprints.

Per-image results (all feature maps, all attention maps) are cached by (model, image), so a
user switching layer, head or channel re-renders and never re-runs the model.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
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
