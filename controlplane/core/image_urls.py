"""Signed download links of image files, for hypervisors that fetch images themselves (Proxmox VE's
``download-url``): ``<CONFLUENCIA_PUBLIC_URL>/image-files/<id>?expires=<unix time>&signature=<hex>``.

The signature is an HMAC-SHA256 under a key derived from the data key (the API and every worker share it
already), so a link cannot be made for another image or a later time, and it stops working when it expires.
Without a data key there are no links (a driver that needs one says so).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from controlplane.config import settings
from controlplane.core.secrets import key_ring

LINK_S = 6 * 3600  # long enough for a slow download of a large image


def _keys() -> list[bytes]:
    ring = key_ring()
    return [hashlib.sha256(b"confluencia-image-link\0" + k).digest() for k in ring.keys] if ring else []


def _mac(key: bytes, image_id: str, expires: int) -> str:
    return hmac.new(key, f"{image_id}\0{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(image_id: str, lifetime_s: int = LINK_S) -> str | None:
    keys = _keys()
    if not keys:
        return None
    expires = int(time.time()) + lifetime_s
    return (f"{settings().base_url}/image-files/{image_id}?expires={expires}"
            f"&signature={_mac(keys[0], image_id, expires)}")


def valid(image_id: str, expires: str, signature: str) -> bool:
    """Whether the link is one we made (under any configured key) and has not expired."""
    if not expires.isdigit() or int(expires) < time.time() or len(signature) != 64:
        return False
    return any(hmac.compare_digest(_mac(k, image_id, int(expires)), signature) for k in _keys())
