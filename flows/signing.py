"""Ed25519 signing keys, compact JWS signatures and the JWKS (SPEC section 4).

Keys live in `<keys_dir>/signing/<kid>.pem` (PKCS#8, mode 0600), the active one is named in
`<keys_dir>/signing/ACTIVE`; rotating adds a key and moves ACTIVE, and every key stays in the
JWKS so old signatures keep verifying. `kid` is the first 16 hex of SHA-256 of the raw 32-byte
public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flows import clock
from flows.config import Settings
from flows.errors import ConfigError
from flows.keys import write_secret_file

SIGNING_DIR = "signing"
ACTIVE = "ACTIVE"
# Below this many signatures, starting a process pool costs more than it saves: signing takes
# about 47 us a checkpoint here, and starting two spawned workers about a second.
PARALLEL_FROM = 50_000


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes

    @property
    def private_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _folder(settings: Settings) -> Path:
    return Path(settings.keys_dir) / SIGNING_DIR


def create_signing_key(settings: Settings) -> str:
    """Make a new key, make it the active one, and return its kid."""
    kid = add_signing_key(settings)
    activate_signing_key(settings, kid)
    return kid


def add_signing_key(settings: Settings) -> str:
    """Make a new key, not yet active (it is in the JWKS from now on); return its kid."""
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret_file(_folder(settings) / f"{kid}.pem", pem)
    return kid


def activate_signing_key(settings: Settings, kid: str) -> None:
    """Make `kid` the key new signatures use."""
    active = _folder(settings) / ACTIVE
    temporary = active.with_name(f".{ACTIVE}.{os.getpid()}")
    temporary.write_text(kid + "\n")
    temporary.replace(active)


def active_signing_key(settings: Settings) -> SigningKey:
    """The key new signatures use; made on first use."""
    active = _folder(settings) / ACTIVE
    if not active.exists():
        create_signing_key(settings)
    kid = active.read_text().strip()
    path = _folder(settings) / f"{kid}.pem"
    if not path.exists():
        raise ConfigError(f"the active signing key {kid} is missing from {path.parent}")
    return SigningKey(kid, path.read_bytes())


def jwks(settings: Settings) -> dict[str, Any]:
    """Every signing key's public half, active first then by kid."""
    folder = _folder(settings)
    active = (folder / ACTIVE).read_text().strip() if (folder / ACTIVE).exists() else None
    keys = []
    for path in sorted(folder.glob("*.pem")):
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        public = private.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append(
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": key_id(public),
                "x": _base64url(raw).decode(),
            }
        )
    keys.sort(key=lambda k: (k["kid"] != active, k["kid"]))
    return {"keys": keys}


def sign_claims(key: SigningKey, claims: dict[str, Any]) -> str:
    """A compact JWS (EdDSA) of `claims` plus `iat`, with the key's kid in the header."""
    payload = {**claims, "iat": clock.now_seconds()}
    return jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})


class SigningPool:
    """Signs checkpoints, on every core when there are enough of them to pay for it.

    The worker processes start on first need and live until the pool is closed: a spawned
    worker imports the main module again (the CLI, Prefect), seconds each time, and a
    checkpoint stage of ten passes spent more on starting workers than on signing.
    """

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> SigningPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def sign(self, key: SigningKey, ids: list[str], fingerprints: list[str]) -> list[str]:
        """Signatures of ({"sub": checkpointId, "fingerprint": ...}) for each pair."""
        return self.submit(key, ids, fingerprints)()

    def submit(
        self, key: SigningKey, ids: list[str], fingerprints: list[str]
    ) -> Callable[[], list[str]]:
        """Start signing each pair, as `sign` does, and return a function that waits for the
        signatures: the caller goes on while the workers sign (inline, below `PARALLEL_FROM`,
        the signatures are made before this returns)."""
        # Once the workers run, they pay for any number.
        if not ids or (self._executor is None and len(ids) < PARALLEL_FROM):
            tokens = _sign_chunk(key.private_pem, key.kid, ids, fingerprints)
            return lambda: tokens
        workers = os.cpu_count() or 1
        if self._executor is None:
            # spawn, not fork: the parent holds DuckDB and Polars thread pools.
            self._executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        size = -(-len(ids) // workers)
        parts = [
            self._executor.submit(
                _sign_chunk, key.private_pem, key.kid, ids[i : i + size], fingerprints[i : i + size]
            )
            for i in range(0, len(ids), size)
        ]
        return lambda: [token for part in parts for token in part.result()]


def _sign_chunk(pem: bytes, kid: str, ids: list[str], fingerprints: list[str]) -> list[str]:
    """The compact JWS of each checkpoint, byte for byte what `sign_claims` (PyJWT) makes.

    Written out because PyJWT spends as long again around each signature as in it (claims
    checks, a header rebuilt and serialised per token: 10,000-14,600 tokens/s on one core here,
    against 17,500-19,700 by hand and 19,000-25,000 bare signatures), which was a third of a
    full-size run's checkpoint stage. Ed25519 is deterministic, so the tokens are PyJWT's own;
    a test checks them against `jwt.encode` and `jwt.decode`.
    """
    private = SigningKey(kid, pem).private_key
    iat = clock.now_seconds()
    header = {"alg": "EdDSA", "kid": kid, "typ": "JWT"}  # PyJWT's header, keys sorted
    prefix = _base64url(_json(header)) + b"."
    tokens = []
    for cid, fp in zip(ids, fingerprints, strict=True):
        signing_input = prefix + _base64url(_json({"sub": cid, "fingerprint": fp, "iat": iat}))
        tokens.append((signing_input + b"." + _base64url(private.sign(signing_input))).decode())
    return tokens


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")
