"""The operator's secrets in the keys folder: the leaf-salt key (and, later, signing keys).

Keys are made on first use with file mode 0600 and never overwritten: losing the salt key means
a rebuilt warehouse gives different leaves, so it is created with O_EXCL and read back after.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flows.config import Settings
from flows.errors import ConfigError

SALT_KEY_FILE = "salt.key"


def write_secret_file(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600 holding `data`; False if it already exists (kept as is)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def salt_key(settings: Settings) -> bytes:
    """`TALLYPROOF_SALT_KEY` as UTF-8 when set, else 32 random bytes kept in the keys folder."""
    if settings.salt_key is not None:
        return settings.salt_key.get_secret_value().encode("utf-8")
    path = Path(settings.keys_dir) / SALT_KEY_FILE
    write_secret_file(path, secrets.token_bytes(32))
    return path.read_bytes()


JWT_SECRET_FILE = "jwt.secret"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash's output.
HS256_MIN_SECRET_BYTES = 32


def jwt_secret(settings: Settings) -> bytes:
    """The HS256 secret: `TALLYPROOF_JWT_SECRET`, or a development secret made once in the keys
    folder so that `tallyproof token` and `tallyproof api` agree out of the box."""
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode("utf-8")
        # Checked here, where the API and `tallyproof token` use it, not in the settings: a
        # pipeline run that shares the API's environment does not need it.
        if len(secret) < HS256_MIN_SECRET_BYTES:
            raise ConfigError(
                f"TALLYPROOF_JWT_SECRET must be at least {HS256_MIN_SECRET_BYTES} bytes (RFC 7518"
                " section 3.2); unset it to use the development secret in the keys folder"
            )
        return secret
    path = Path(settings.keys_dir) / JWT_SECRET_FILE
    write_secret_file(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()
