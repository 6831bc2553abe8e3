"""Bearer JWT authentication (SPEC section 7).

The accepted algorithms are pinned by configuration: HS256 with a secret (the default), or one
asymmetric family (RS256, ES256 or EdDSA) with a public key file or a JWKS file. A token must
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

from flows.config import Settings
from flows.errors import ConfigError, TallyproofError
from flows.keys import jwt_secret

TENANT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ENVIRONMENTS = ("sandbox", "production")
ASYMMETRIC = {"RS256", "ES256", "EdDSA"}


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
    def __init__(self, settings: Settings) -> None:
        self.algorithms = list(settings.jwt_algorithms)
        self.leeway = settings.jwt_leeway_seconds
        families = {"HS256" if a == "HS256" else "asymmetric" for a in self.algorithms}
        if len(families) != 1:
            raise ConfigError("configure HS256 or asymmetric JWT algorithms, not both")
        self.hmac_key: bytes | None = None
        self.public_key: Any = None
        self.jwks: jwt.PyJWKSet | None = None
        if "HS256" in self.algorithms:
            self.hmac_key = jwt_secret(settings)
        elif settings.jwt_jwks_file:
            self.jwks = jwt.PyJWKSet.from_dict(json.loads(Path(settings.jwt_jwks_file).read_text()))
        elif settings.jwt_public_key_file:
            self.public_key = Path(settings.jwt_public_key_file).read_bytes()
        else:
            raise ConfigError(
                f"{'/'.join(self.algorithms)} needs TALLYPROOF_JWT_PUBLIC_KEY_FILE "
                "or TALLYPROOF_JWT_JWKS_FILE"
            )

    def _key(self, token: str) -> Any:
        if self.hmac_key is not None:
            return self.hmac_key
        if self.jwks is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for key in self.jwks.keys:
                if key.key_id == kid:
                    return key.key
            raise Unauthorized(f"no key {kid!r} in the configured JWKS")
        return self.public_key

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("missing Authorization header (Bearer token)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=self.algorithms,
                leeway=self.leeway,
                options={"require": ["exp"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as err:
            raise Unauthorized(f"invalid token: {err}") from None
        tenant = claims.get("tenant_id")
        if not isinstance(tenant, str) or not TENANT.fullmatch(tenant) or tenant in (".", ".."):
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
