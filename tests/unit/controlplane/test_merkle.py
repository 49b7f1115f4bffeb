"""The RFC 9162 tree against the test vectors every Certificate Transparency implementation uses, and every proof
of every small tree against tampering."""

from __future__ import annotations

import pytest

from controlplane.transparency.merkle import (
    EMPTY_ROOT,
    Tree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                     "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


@pytest.fixture
def tree() -> Tree:
    return Tree([leaf_hash(x) for x in LEAVES])


def test_roots_are_the_published_ones(tree: Tree) -> None:
    assert Tree().root() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert [tree.root(n).hex() for n in range(1, 9)] == ROOTS


def test_inclusion_paths_are_the_published_ones(tree: Tree) -> None:
    assert tree.inclusion_proof(0, 1) == []
    assert hexes(tree.inclusion_proof(0, 8)) == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
    assert hexes(tree.inclusion_proof(5, 8)) == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]
    assert hexes(tree.inclusion_proof(2, 3)) == [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]


def test_consistency_proofs_are_the_published_ones(tree: Tree) -> None:
    assert tree.consistency_proof(1, 1) == []
    assert hexes(tree.consistency_proof(3, 8)) == [
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]
    assert hexes(tree.consistency_proof(2, 5)) == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]


def test_every_proof_of_every_small_tree_verifies_and_nothing_else_does() -> None:
    leaves = [leaf_hash(f"leaf-{i}".encode()) for i in range(37)]
    tree = Tree(leaves)
    other = leaf_hash(b"forged")
    for n in range(1, 38):
        root = tree.root(n)
        for m in range(n):
            path = tree.inclusion_proof(m, n)
            assert verify_inclusion(m, n, leaves[m], path, root)
            assert not verify_inclusion(m, n, other, path, root)
            if n > 1:
                assert not verify_inclusion((m + 1) % n, n, leaves[m], path, root)
            if path:
                assert not verify_inclusion(m, n, leaves[m], [*path[:-1], other], root)
                assert not verify_inclusion(m, n, leaves[m], path[:-1], root)
            assert not verify_inclusion(m, n, leaves[m], [*path, other], root)
        for old in range(1, n + 1):
            proof = tree.consistency_proof(old, n)
            old_root = tree.root(old)
            assert verify_consistency(old, n, old_root, root, proof)
            assert not verify_consistency(old, n, other, root, proof)
            if proof:
                assert not verify_consistency(old, n, old_root, root, [*proof[:-1], other])
                assert not verify_consistency(old, n, old_root, root, proof[1:])
            if old < n:  # a rewritten history: the old tree's last leaf replaced
                rewritten = Tree([*leaves[:old - 1], other, *leaves[old:n]])
                assert not verify_consistency(old, n, old_root, rewritten.root(n), rewritten.consistency_proof(old))


def test_a_grown_tree_keeps_its_older_roots() -> None:
    tree = Tree()
    roots = []
    for i in range(20):
        tree.append(leaf_hash(bytes([i])))
        roots.append(tree.root())
    assert [tree.root(n + 1) for n in range(20)] == roots
    with pytest.raises(ValueError):
        tree.root(21)
    with pytest.raises(ValueError):
        tree.inclusion_proof(20, 20)
