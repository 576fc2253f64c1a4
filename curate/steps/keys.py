"""Rows grouped by a text key without holding the keys: a 16-byte digest per row, grouped with numpy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def first_rows(keys: Iterable[str]) -> np.ndarray:
    """For each row, the position of the first row with the same key (its own position when it is the first).

    Keys are compared by their blake2b-128 digests: two different keys collide with probability ~n²/2^129.
    """
    digests = bytearray()
    for key in keys:
        digests += hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
    pairs = np.frombuffer(bytes(digests), dtype=np.uint64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)].astype(np.int64)
