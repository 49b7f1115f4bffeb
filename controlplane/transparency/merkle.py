"""The Merkle tree of RFC 9162 (Certificate Transparency 2.0), section 2.1: hashes, audit paths, verification.

Leaves are hashed as ``SHA-256(0x00 || leaf input)``, inner nodes as ``SHA-256(0x01 || left || right)``, and a
tree of ``n`` leaves splits at ``k``, the largest power of two below ``n``. Proofs are plain lists of hashes
in the RFC's order, so any RFC 9162 implementation checks them.

Why not pymerkle (checked, 7.0.0): its proofs carry their own format (1-based indexes, the base leaf and "rule"
bits inside the path); the export a municipality verifies must be the RFC's plain audit paths, which an
independent verifier can check from the RFC alone. The algorithms below are the RFC's, tested with the test
vectors used by Certificate Transparency implementations (``tests/unit/test_merkle.py``).

Pure: no database, no web framework; the offline verifier imports this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf_input: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf_input).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """An append-only tree over leaf hashes. Hashes of complete subtrees (whose width is a power of two) never
    change once their leaves exist, so they are cached: the root and the proofs of a grown tree reuse them."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.leaves: list[bytes] = list(leaves)
        self._subtree = lru_cache(maxsize=1 << 16)(self._complete)

    def __len__(self) -> int:
        return len(self.leaves)

    def append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)

    def _complete(self, start: int, width: int) -> bytes:
        if width == 1:
            return self.leaves[start]
        half = width // 2
        return node_hash(self._subtree(start, half), self._subtree(start + half, half))

    def _mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) of RFC 9162 section 2.1.1."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            return self._subtree(start, n)
        k = _split(n)
        return node_hash(self._mth(start, start + k), self._mth(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        return self._mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(m, D[0:size]) of RFC 9162 section 2.1.3.1: the audit path of leaf ``index`` (0-based)."""
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, start, start + k), self._mth(start + k, end)]
        return [*self._path(m - k, start + k, end), self._mth(start, start + k)]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(m, D[0:size]) of RFC 9162 section 2.1.4.1: that the first ``old_size`` leaves are unchanged."""
        size = len(self.leaves) if size is None else size
        self._check_size(size)
        if not 0 <= old_size <= size:
            raise ValueError(f"no consistency proof from {old_size} to {size}")
        if old_size in (0, size):
            return []
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self._mth(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, complete), self._mth(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._mth(start, start + k)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self.leaves):
            raise ValueError(f"the tree has {len(self.leaves)} leaves, not {size}")


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or None when the path cannot be one
    for that index and size."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: the tree of ``new_size`` leaves extends the one of ``old_size``."""
    if old_size > new_size or old_size < 0:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
