"""Short-lived binary blobs shared by all workers (Redis state db, with a TTL).

Pipeline steps pass blob KEYS to each other, never the bytes: a message stays
small and the result backend never carries images. In production this would be
an object store; the interface (put/get by content hash) stays the same.
"""

from __future__ import annotations

import hashlib

from celeryref.adapters import redis_state
from celeryref.errors import InvalidArguments

#: Seconds a blob lives; a pipeline that takes longer fails with "expired".
BLOB_TTL = 3_600
#: Largest blob (bytes).
MAX_BLOB_BYTES = 8 * 1024 * 1024


def put(data: bytes) -> str:
    """Store ``data``; its key (the SHA-256 of the content, so storing twice is free)."""
    if len(data) > MAX_BLOB_BYTES:
        raise InvalidArguments(f"blob of {len(data)} bytes exceeds {MAX_BLOB_BYTES}")
    digest = hashlib.sha256(data).hexdigest()
    redis_state.client().set(redis_state.key("blob", digest), data, ex=BLOB_TTL)
    return digest


def get(digest: str) -> bytes:
    """The blob ``digest``; ``InvalidArguments`` when it expired or never existed."""
    data = redis_state.client().get(redis_state.key("blob", digest))
    if data is None:
        raise InvalidArguments(f"blob {digest} expired or unknown")
    return bytes(data)
