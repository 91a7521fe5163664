"""A least-recently-used cache capped in bytes, shared by the threads of one server process.

The app keeps analysed cases and heatmaps here instead of in an entry-counted cache: 64 entries of
full-size decoded films can hold gigabytes, while a byte cap holds memory flat whatever users upload.
Only finished results are stored: a computation that raises stores nothing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np


def array_bytes(value) -> int:
    """Bytes held in numpy arrays by ``value``: an array, or a dataclass / list / dict holding arrays."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(array_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return sum(array_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(array_bytes(v) for v in value.values())
    return 0


class ByteCappedCache:
    """``get_or_make(key, make)``: the cached value, else ``make()`` stored if it fits.

    ``size_of(value)`` gives a value's size in bytes; an item larger than ``max_bytes`` is returned, not kept.
    Two threads asking for the same missing key may both compute it; the cache stays consistent.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[object], int] = array_bytes):
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes, self._size_of = int(max_bytes), size_of
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get_or_make(self, key: Hashable, make: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = make()  # outside the lock: other sessions keep being served meanwhile
        size = int(self._size_of(value))
        if size > self.max_bytes:
            return value
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key)[1]
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
        return value
