"""Bearer JWT authentication (SPEC section 7).

The accepted algorithms are pinned by configuration: HS256 with a secret (the default), or
asymmetric ones (RS256, ES256, EdDSA) with a public key file, which must fit every configured
algorithm, or a JWKS file, whose keys each verify tokens of their own algorithm only. A token must
carry `exp` and a valid `tenant_id`; an optional `environments` claim lists the environments it
may use. `none`, and any algorithm not configured, are refused by PyJWT before any key is used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt.api_jws import get_algorithm_by_name

from flows.config import Settings
from flows.errors import ConfigError, TallyproofError
from flows.keys import jwt_secret

TENANT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ENVIRONMENTS = ("sandbox", "production")


class Unauthorized(TallyproofError):
    code = "UNAUTHORIZED"
    http_status = 401


class Forbidden(TallyproofError):
    code = "FORBIDDEN"
    http_status = 403


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    environments: tuple[str, ...] | None  # None: every environment
    subject: str | None


class TokenVerifier:
    """Checks bearer tokens against the configured algorithms and key, all loaded and checked
    when the API starts: a key file that cannot verify a configured algorithm is a ConfigError
    then, not a 500 on every request."""

    def __init__(self, settings: Settings) -> None:
        self.algorithms = list(settings.jwt_algorithms)
        self.leeway = settings.jwt_leeway_seconds
        families = {"HS256" if a == "HS256" else "asymmetric" for a in self.algorithms}
        if len(families) != 1:
            raise ConfigError("configure HS256 or asymmetric JWT algorithms, not both")
        self.hmac_key: bytes | None = None
        self.public_keys: dict[str, Any] = {}  # algorithm: prepared key
        self.jwks: dict[str, jwt.PyJWK] = {}  # kid: key
        if settings.jwt_public_key_file is not None and settings.jwt_jwks_file is not None:
            raise ConfigError(
                "set TALLYPROOF_JWT_PUBLIC_KEY_FILE or TALLYPROOF_JWT_JWKS_FILE, not both"
            )
        if "HS256" in self.algorithms:
            self.hmac_key = jwt_secret(settings)
        elif settings.jwt_jwks_file:
            self.jwks = _jwks(Path(settings.jwt_jwks_file), self.algorithms)
        elif settings.jwt_public_key_file:
            self.public_keys = _public_keys(Path(settings.jwt_public_key_file), self.algorithms)
        else:
            raise ConfigError(
                f"{'/'.join(self.algorithms)} needs TALLYPROOF_JWT_PUBLIC_KEY_FILE "
                "or TALLYPROOF_JWT_JWKS_FILE"
            )

    def _key(self, token: str) -> tuple[Any, list[str]]:
        """The key that verifies `token`, and the algorithms it may be signed with."""
        if self.hmac_key is not None:
            return self.hmac_key, self.algorithms
        header = jwt.get_unverified_header(token)
        if self.jwks:
            kid = header.get("kid")
            key = self.jwks.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise Unauthorized(f"no key {kid!r} in the configured JWKS")
            # A key verifies tokens of its own algorithm only.
            return key.key, [key.algorithm_name]
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.public_keys:
            raise Unauthorized(
                f"the token's algorithm {algorithm!r} is not one of {', '.join(self.algorithms)}"
            )
        return self.public_keys[algorithm], [algorithm]

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing Authorization header (Bearer token)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        try:
            key, algorithms = self._key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.PyJWTError as err:  # InvalidTokenError, and a key that does not fit the alg
            raise Unauthorized(f"invalid token: {err}") from None
        tenant = claims.get("tenant_id")
        if not is_tenant_id(tenant):
            raise Unauthorized("the token has no valid tenant_id claim")
        environments = claims.get("environments")
        if environments is not None:
            if isinstance(environments, str):
                environments = [environments]
            if not isinstance(environments, list) or not all(
                e in ENVIRONMENTS for e in environments
            ):
                raise Unauthorized("the environments claim must list sandbox and/or production")
            environments = tuple(environments)
        return Principal(tenant, environments, claims.get("sub"))


def _jwks(path: Path, algorithms: list[str]) -> dict[str, jwt.PyJWK]:
    """The keys of a JWKS file by kid, those of a configured algorithm only."""
    try:
        found = jwt.PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8"))).keys
    except (OSError, ValueError, jwt.PyJWTError) as err:
        raise ConfigError(f"TALLYPROOF_JWT_JWKS_FILE {str(path)!r}: {err}") from None
    usable = [k for k in found if k.key_id and k.algorithm_name in algorithms]
    keys = {k.key_id: k for k in usable}
    if len(keys) != len(usable):
        raise ConfigError(f"TALLYPROOF_JWT_JWKS_FILE {str(path)!r} has two keys with one kid")
    if not keys:
        raise ConfigError(
            f"TALLYPROOF_JWT_JWKS_FILE {str(path)!r} has no key with a kid for "
            f"{', '.join(algorithms)}"
        )
    return keys


def _public_keys(path: Path, algorithms: list[str]) -> dict[str, Any]:
    """The public key file prepared for each configured algorithm."""
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"TALLYPROOF_JWT_PUBLIC_KEY_FILE {str(path)!r}: {err}") from None
    keys = {}
    for algorithm in algorithms:
        try:
            keys[algorithm] = get_algorithm_by_name(algorithm).prepare_key(pem)
        except (ValueError, TypeError, jwt.PyJWTError) as err:
            raise ConfigError(
                f"TALLYPROOF_JWT_PUBLIC_KEY_FILE {str(path)!r} is not a {algorithm} public key:"
                f" {err}"
            ) from None
    return keys


def is_tenant_id(value: object) -> bool:
    """Whether a token can name `value` as its tenant."""
    return isinstance(value, str) and bool(TENANT.fullmatch(value)) and value not in (".", "..")


def mint_token(
    settings: Settings,
    tenant: str,
    environments: list[str] | None,
    ttl_seconds: int,
    subject: str = "tallyproof-dev",
) -> str:
    """An HS256 development token with the configured secret."""
    import time

    if "HS256" not in settings.jwt_algorithms:
        raise ConfigError(
            "tallyproof token mints HS256 tokens; the API is configured for "
            f"{settings.jwt_algorithms}"
        )
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "tenant_id": tenant,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if environments:
        claims["environments"] = environments
    return jwt.encode(claims, jwt_secret(settings), algorithm="HS256")
