"""Verifiable audit without the control plane: the RFC 9162 Merkle tree, signed tree heads, the hashed form of an
audit entry and the offline verifier of an export (``confluencia-audit-verify``).

Nothing here touches a database, a web framework or the network (an import-linter contract keeps it so): a
municipality installs it and checks what the province exported to it on its own machine.
"""
