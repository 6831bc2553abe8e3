"""JWT authentication: every way a token can be wrong is refused with the right status."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from flows.config import Settings
from tests.api.conftest import LiveServer

BASE = "/dashboard/customers"
SECRET = "test-jwt-secret-of-at-least-32-bytes!"


def claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "u1", "tenant_id": "acme", "iat": now, "exp": now + 600, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict, payload: dict, sign: bytes | None = None) -> str:
    """A compact JWS built by hand, for the tokens PyJWT rightly refuses to make."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if sign is None:
        return signing_input + "."
    signature = hmac.new(sign, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def status(
    live: LiveServer,
    token: str | None,
    *,
    scheme: str = "Bearer",
    environment: str | None = None,
    path: str = BASE,
) -> int:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}".strip()
    if environment:
        headers["X-Environment"] = environment
    response = httpx.get(f"{live.url}{path}", headers=headers)
    if response.status_code >= 400:
        assert response.json()["success"] is False
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    return response.status_code


def test_a_valid_token(live: LiveServer) -> None:
    assert status(live, jwt.encode(claims(), SECRET, algorithm="HS256")) == 200


@pytest.mark.parametrize(
    ("case", "token", "scheme"),
    [
        ("missing", None, "Bearer"),
        ("empty", "", "Bearer"),
        ("not bearer", jwt.encode(claims(), SECRET, algorithm="HS256"), "Basic"),
        ("not a jwt", "not.a.jwt", "Bearer"),
        ("garbage", "x" * 40, "Bearer"),
    ],
)
def test_missing_or_malformed(live: LiveServer, case: str, token: str | None, scheme: str) -> None:
    assert status(live, token, scheme=scheme) == 401, case


def test_expired(live: LiveServer) -> None:
    old = claims(exp=int(time.time()) - 3600)
    assert status(live, jwt.encode(old, SECRET, algorithm="HS256")) == 401


def test_a_small_clock_skew_is_tolerated(live: LiveServer) -> None:
    just = claims(exp=int(time.time()) - 5)
    assert status(live, jwt.encode(just, SECRET, algorithm="HS256")) == 200


def test_exp_is_required(live: LiveServer) -> None:
    payload = claims()
    del payload["exp"]
    assert status(live, jwt.encode(payload, SECRET, algorithm="HS256")) == 401


def test_wrong_key(live: LiveServer) -> None:
    assert (
        status(live, jwt.encode(claims(), "another-secret-of-32-bytes-length!!", algorithm="HS256"))
        == 401
    )


def test_alg_none(live: LiveServer) -> None:
    assert status(live, handmade({"alg": "none", "typ": "JWT"}, claims())) == 401
    assert status(live, handmade({"alg": "None"}, claims())) == 401


def test_an_algorithm_not_configured(live: LiveServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert status(live, jwt.encode(claims(), key, algorithm="ES256")) == 401
    assert status(live, jwt.encode(claims(), SECRET * 2, algorithm="HS512")) == 401


@pytest.mark.parametrize("tenant", [None, "", "../etc", "a" * 65, 5])
def test_the_tenant_claim_must_be_valid(live: LiveServer, tenant: object) -> None:
    payload = claims(tenant_id=tenant)
    if tenant is None:
        del payload["tenant_id"]
    assert status(live, jwt.encode(payload, SECRET, algorithm="HS256")) == 401


def test_another_tenant_sees_only_its_own(live: LiveServer) -> None:
    globex = jwt.encode(claims(tenant_id="globex"), SECRET, algorithm="HS256")
    assert status(live, globex) == 200
    assert status(live, globex, path=f"{BASE}/bob") == 404  # acme's bob does not exist here
    assert status(live, globex, path=f"{BASE}/gina") == 200


def test_environments_claim(live: LiveServer) -> None:
    sandbox_only = jwt.encode(claims(environments=["sandbox"]), SECRET, algorithm="HS256")
    assert status(live, sandbox_only) == 403  # production is the default environment
    assert status(live, sandbox_only, environment="production") == 403
    assert status(live, sandbox_only, environment="sandbox") == 200
    both = jwt.encode(claims(environments=["sandbox", "production"]), SECRET, algorithm="HS256")
    assert status(live, both, environment="production") == 200
    bad = jwt.encode(claims(environments=["staging"]), SECRET, algorithm="HS256")
    assert status(live, bad) == 401
    assert (
        status(live, jwt.encode(claims(), SECRET, algorithm="HS256"), environment="staging") == 400
    )


# --- asymmetric configurations ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rs256(
    built: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path: Path = tmp_path_factory.mktemp("rs256") / "public.pem"
    path.write_bytes(pem)
    settings = built.with_overrides(jwt_algorithms=["RS256"], jwt_public_key_file=path)
    with LiveServer(settings) as server:
        yield server


def test_rs256_accepts_its_own_tokens(rs256: LiveServer, rsa_key: rsa.RSAPrivateKey) -> None:
    assert status(rs256, jwt.encode(claims(), rsa_key, algorithm="RS256")) == 200


def test_rs256_refuses_hs256_signed_with_the_public_key(
    rs256: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = handmade({"alg": "HS256", "typ": "JWT"}, claims(), sign=pem)
    assert status(rs256, forged) == 401
    assert status(rs256, jwt.encode(claims(), SECRET, algorithm="HS256")) == 401


def test_a_header_whose_alg_is_not_text_is_a_401(
    rs256: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Found by a review: `{"alg": ["RS256"]}` was a 500 (an unhashable alg)."""
    good = jwt.encode(claims(), rsa_key, algorithm="RS256")
    _, payload, signature = good.split(".")
    for alg in (["RS256"], {"a": 1}, None, 7):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        assert status(rs256, f"{header}.{payload}.{signature}") == 401, alg


def test_rs256_refuses_another_rsa_key(rs256: LiveServer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert status(rs256, jwt.encode(claims(), other, algorithm="RS256")) == 401


def test_eddsa_with_a_jwks_file(built: Settings, tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "EdDSA", "use": "sig"}]}))
    settings = built.with_overrides(jwt_algorithms=["EdDSA"], jwt_jwks_file=jwks)
    with LiveServer(settings) as server:
        good = jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "k1"})
        assert status(server, good) == 200
        unknown = jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "k2"})
        assert status(server, unknown) == 401
        stranger = ed25519.Ed25519PrivateKey.generate()
        assert (
            status(server, jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": "k1"}))
            == 401
        )


def test_a_jwks_key_verifies_tokens_of_its_own_algorithm_only(
    built: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    """Found by a review: an RS256 token naming the JWKS's EC key was a 500, not a 401."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec"},
    ]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    settings = built.with_overrides(jwt_algorithms=["RS256", "ES256"], jwt_jwks_file=jwks)
    with LiveServer(settings) as server:
        for key, alg, kid, expected in [
            (rsa_key, "RS256", "rsa", 200),
            (ec_key, "ES256", "ec", 200),
            (rsa_key, "RS256", "ec", 401),  # the EC key cannot verify RS256
            (ec_key, "ES256", "rsa", 401),
        ]:
            token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
            assert status(server, token) == expected, (alg, kid)


def test_a_key_file_that_cannot_verify_is_refused_at_start(
    built: Settings, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    """Found by a review: these started, then answered every request with a 500 (or died
    with a traceback)."""
    from api.app import create_app
    from flows.errors import ConfigError

    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    twins = tmp_path / "twins.json"
    twins.write_text(json.dumps({"keys": [{**jwk, "kid": "k"}, {**jwk, "kid": "k"}]}))
    for overrides, says in [
        ({"jwt_algorithms": ["ES256"], "jwt_public_key_file": pem}, "not a ES256 public key"),
        ({"jwt_algorithms": ["RS256", "ES256"], "jwt_public_key_file": pem}, "ES256"),
        ({"jwt_algorithms": ["RS256"], "jwt_public_key_file": garbage}, "not a RS256"),
        ({"jwt_algorithms": ["RS256"], "jwt_jwks_file": not_json}, "JWKS_FILE"),
        ({"jwt_algorithms": ["RS256"], "jwt_jwks_file": empty}, "JWKS_FILE"),
        ({"jwt_algorithms": ["RS256"], "jwt_jwks_file": tmp_path / "none.json"}, "JWKS_FILE"),
        ({"jwt_algorithms": ["RS256"], "jwt_jwks_file": twins}, "two keys with one kid"),
        (
            {"jwt_algorithms": ["RS256"], "jwt_jwks_file": twins, "jwt_public_key_file": pem},
            "not both",
        ),
        ({"jwt_secret": "short"}, "at least 32 bytes"),
    ]:
        with pytest.raises(ConfigError, match=says):
            create_app(built.with_overrides(**overrides))
