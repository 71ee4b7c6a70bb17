"""Keep the last expensive snapshot of an input (mask raster, still pixels) while its fingerprint holds.

No ``bpy`` module use. Generate reads the still and renders the Mask on Blender's main thread; an
artist regenerating with unchanged inputs should not pay for that again (hundreds of ms at 2 MP).
"""
from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

import numpy as np

__all__ = ["LastValue"]

T = TypeVar("T", bound=np.ndarray)


class LastValue(Generic[T]):
    """One cached array, returned read-only while ``key`` is unchanged."""

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._value: T | None = None

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached array for ``key``, or ``compute()`` stored for it (errors are not cached)."""
        if self._value is not None and self._key == key:
            return self._value
        value = compute()
        value.setflags(write=False)
        self._key, self._value = key, value
        return value

    def clear(self) -> None:
        """Forget the cached array."""
        self._key, self._value = None, None
