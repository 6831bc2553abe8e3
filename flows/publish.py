"""Writing to the output root (a folder or s3://bucket/prefix)."""

from __future__ import annotations

import json

from flows.config import Settings
from flows.signing import jwks
from flows.storage import open_location

JWKS_PATH = ".well-known/jwks.json"


def publish_jwks(settings: Settings) -> str:
    """Write every signing public key to `.well-known/jwks.json`; return its path."""
    document = json.dumps(jwks(settings), indent=2, sort_keys=True) + "\n"
    open_location(settings.output).write_bytes(JWKS_PATH, document.encode())
    return JWKS_PATH
