"""Offline verification of what tallyproof publishes: checkpoint exports, receipts, packages.

Every check is reported, passed or failed, with what it compared; nothing here trusts the
warehouse, only the document and the JWKS. `tallyproof verify` prints the checks and exits 0
only when all of them pass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jwt

from flows.signing import key_id
from transforms import merkle
from transforms.amounts import format_amount
from transforms.checkpoints import CHECKPOINT_SPEC, checkpoint_id
from transforms.jcs import canonicalize
from transforms.leaves import LEAF_SPEC

HEX64 = set("0123456789abcdef")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


class Checks(list[Check]):
    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.append(Check(name, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self)


def parse_json(text: str | bytes) -> Any:
    """JSON as a verifier must read it: a key twice in one object is refused (RFC 8785 reads
    I-JSON, which forbids it), since readers disagree on which of the two values counts and
    the checks would certify a value another reader never sees."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise ValueError(f"the key {key!r} appears twice in one object")
            found[key] = value
        return found

    return json.loads(text, object_pairs_hook=unique)


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= HEX64


class Verifier:
    """Checks documents against a JWKS (`{"keys": [...]}`)."""

    def __init__(self, jwks: object) -> None:
        self.keys: dict[str, Any] = {}
        self.problems: list[str] = []  # what is wrong with the JWKS itself
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            self.problems.append('the JWKS is not an object with a "keys" list')
            keys = []
        for position, jwk in enumerate(keys):
            if not isinstance(jwk, dict):
                self.problems.append(f"keys[{position}] is not an object")
            elif jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
                try:
                    key = jwt.PyJWK(jwk, algorithm="EdDSA").key
                except (jwt.PyJWTError, TypeError, ValueError) as err:
                    self.problems.append(f"key {jwk['kid']!r} is not an Ed25519 key ({err})")
                    continue
                if jwk["kid"] != key_id(key):  # SPEC section 4
                    self.problems.append(
                        f"key {jwk['kid']!r}: its kid is not the first 16 hex of SHA-256 of "
                        "its public key"
                    )
                    continue
                self.keys[jwk["kid"]] = key

    # -- pieces ---------------------------------------------------------------------------------
    def signature(
        self, checks: Checks, label: str, token: object, expected: dict[str, Any]
    ) -> None:
        """A compact EdDSA JWS by a JWKS key whose payload carries `expected`."""
        if not isinstance(token, str):
            checks.add(f"{label}: signature", False, "missing")
            return
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as err:
            checks.add(f"{label}: signature", False, f"not a compact JWS ({err})")
            return
        key = self.keys.get(kid)
        if key is None:
            checks.add(f"{label}: signature", False, f"kid {kid!r} is not in the JWKS")
            return
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                options={"verify_exp": False, "verify_iat": False, "require": ["iat"]},
            )
        except jwt.PyJWTError as err:
            checks.add(f"{label}: signature", False, f"does not verify with key {kid} ({err})")
            return
        wrong = [
            f"{k} signed {claims.get(k)!r}, the document gives {v!r}"
            for k, v in expected.items()
            if claims.get(k) != v
        ]
        checks.add(
            f"{label}: signature",
            not wrong,
            f"valid EdDSA signature by key {kid}"
            if not wrong
            else "a valid signature of another document (changed after it was signed?): "
            + "; ".join(wrong),
        )

    def checkpoint(self, checks: Checks, label: str, document: dict[str, Any]) -> bool:
        """Body well-formed, fingerprint and id recomputed, signature valid."""
        before = len(checks)
        body = document.get("body")
        if not isinstance(body, dict):
            checks.add(f"{label}: body", False, "missing")
            return False
        self.body(checks, label, body)
        fingerprint = hashlib.sha256(canonicalize(body)).hexdigest()
        checks.add(
            f"{label}: fingerprint",
            document.get("fingerprint") == fingerprint,
            f"SHA-256 of the JCS body is {fingerprint}",
        )
        if "checkpointId" in document:
            checks.add(
                f"{label}: checkpointId",
                document["checkpointId"] == checkpoint_id(fingerprint),
                f"expected {checkpoint_id(fingerprint)}",
            )
        self.signature(
            checks,
            label,
            document.get("signature"),
            {"sub": checkpoint_id(fingerprint), "fingerprint": fingerprint},
        )
        return all(c.ok for c in checks[before:])

    def body(self, checks: Checks, label: str, body: dict[str, Any]) -> None:
        problems = []
        if body.get("spec") != CHECKPOINT_SPEC:
            problems.append(f"spec is {body.get('spec')!r}")
        if not _is_hex64(body.get("root")):
            problems.append("root is not 64 lowercase hex")
        size = body.get("treeSize")
        if not isinstance(size, int) or size < 0:
            problems.append("treeSize is not a non-negative integer")
        elif size == 0 and body.get("root") != merkle.EMPTY_ROOT.hex():
            problems.append("an empty tree must have SHA-256('') as root")
        try:
            amounts = {
                k: Decimal(body[k])
                for k in ("openingBalance", "credits", "debits", "closingBalance")
            }
            for key, value in amounts.items():
                if format_amount(value) != body[key]:
                    problems.append(f"{key} {body[key]!r} is not in canonical form")
            if amounts["credits"] < 0 or amounts["debits"] > 0:
                problems.append("credits must be >= 0 and debits <= 0")
            if (
                amounts["openingBalance"] + amounts["credits"] + amounts["debits"]
                != amounts["closingBalance"]
            ):
                problems.append("closingBalance != openingBalance + credits + debits")
        except (KeyError, TypeError, ArithmeticError):  # 1e999999999 overflows
            problems.append("a balance is missing or not a decimal")
        checks.add(f"{label}: body", not problems, "; ".join(problems) or "well-formed")

    # -- documents ------------------------------------------------------------------------------
    def batch_export(self, document: dict[str, Any]) -> Checks:
        checks = Checks()
        scope = (document.get("tenantId"), document.get("environment"), document.get("period"))
        entries = document.get("checkpoints")
        if not isinstance(entries, list):
            checks.add("export", False, "no checkpoints list")
            return checks
        # Each checkpoint is signed; the export as a whole is not, so a checkpoint taken out of
        # it cannot be noticed here (the API's export or a receipt is the other source).
        checks.add(
            "export",
            True,
            f"{len(entries)} checkpoints of {scope} (each one checked; that none is missing "
            "cannot be: the export is not signed as a whole)",
        )
        for entry in entries:
            body = entry.get("body") or {}
            label = f"checkpoint {body.get('customerId')}/{body.get('period')}"
            self.checkpoint(checks, label, entry)
            checks.add(
                f"{label}: scope",
                (body.get("tenantId"), body.get("environment"), body.get("period")) == scope,
                f"names {scope}",
            )
        return checks

    def receipt(self, document: dict[str, Any]) -> Checks:
        checks = Checks()
        checkpoint = document.get("checkpoint") or {}
        body = checkpoint.get("body") or {}
        self.checkpoint(checks, "checkpoint", checkpoint)
        fingerprint = checkpoint.get("fingerprint", "")
        checks.add(
            "receiptId",
            document.get("receiptId") == f"rcpt_{fingerprint[:24]}",
            f"expected rcpt_{fingerprint[:24]}",
        )
        leaves = document.get("leaves")
        if not isinstance(leaves, list):
            checks.add("leaves", False, "no leaves list")
            return checks
        self.leaves_name_the_tree(checks, body, leaves)
        checks.add(
            "leaves: count",
            len(leaves) == body.get("treeSize"),
            f"{len(leaves)} leaves, treeSize {body.get('treeSize')}",
        )
        hashes = [merkle.leaf_hash(canonicalize(leaf)) for leaf in leaves]
        root = merkle.root_from_hashes(hashes).hex()
        checks.add(
            "leaves: root",
            root == body.get("root"),
            f"the leaves give root {root}, the checkpoint says {body.get('root')}",
        )
        try:
            amounts = [Decimal(leaf["amount"]) for leaf in leaves]
            credits = format_amount(sum((a for a in amounts if a > 0), Decimal(0)))
            debits = format_amount(sum((a for a in amounts if a < 0), Decimal(0)))
            checks.add(
                "leaves: totals",
                (credits, debits) == (body.get("credits"), body.get("debits")),
                f"leaves sum to credits {credits}, debits {debits}",
            )
        except (KeyError, TypeError, ArithmeticError):  # 1e999999999 overflows
            checks.add("leaves: totals", False, "a leaf amount is missing or not a decimal")
        totals = document.get("totals") or {}
        agree = all(
            totals.get(k) == body.get(k)
            for k in ("openingBalance", "credits", "debits", "closingBalance", "treeSize")
        )
        checks.add("totals", agree, "the totals repeat the checkpoint body")
        return checks

    def leaves_name_the_tree(
        self,
        checks: Checks,
        body: dict[str, Any],
        leaves: list[dict[str, Any]],
        indices: list[int] | None = None,
    ) -> None:
        wrong = []
        for position, leaf in enumerate(leaves):
            index = position if indices is None else indices[position]
            scope = {
                "spec": LEAF_SPEC,
                "tenantId": body.get("tenantId"),
                "environment": body.get("environment"),
                "customerId": body.get("customerId"),
                "period": body.get("period"),
                "index": index,
            }
            bad = [k for k, v in scope.items() if leaf.get(k) != v]
            if bad:
                wrong.append(f"leaf {index}: {', '.join(bad)}")
        checks.add(
            "leaves: scope",
            not wrong,
            "; ".join(wrong[:5])
            or "every leaf names the checkpoint's tenant, environment, customer, period "
            "and its index",
        )


def document_kind(document: object) -> str:
    if not isinstance(document, dict):
        return "unknown"
    spec = document.get("spec", "")
    if spec == "tallyproof/receipt/v1":
        return "receipt"
    if spec == "tallyproof/verification-package/v1":
        return "package"
    if "checkpoints" in document:
        return "batch-export"
    if "body" in document and "fingerprint" in document:
        return "checkpoint"
    return "unknown"


def verify_document(document: object, jwks: object) -> tuple[str, Checks]:
    """(kind, checks) of a parsed document. A document of the wrong shape (a leaf that is not
    an object, a fingerprint that is a number) fails a check that says where, never raises."""
    verifier = Verifier(jwks)
    kind = document_kind(document)
    assert isinstance(document, dict) or kind == "unknown"
    checks = Checks()
    if verifier.problems:
        checks.add("jwks", False, "; ".join(verifier.problems[:5]))
    problems = _shape_problems(kind, document)
    if problems:
        checks.add("document", False, f"not a {kind} of SPEC's shape: {'; '.join(problems[:5])}")
        return kind, checks
    try:
        found = _checks_of(kind, document, verifier)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, ArithmeticError) as err:
        found = Checks()
        found.add("document", False, f"not a {kind} of SPEC's shape ({type(err).__name__}: {err})")
    return kind, Checks([*checks, *found])


def _shape_problems(kind: str, document: object) -> list[str]:
    """Where the document's objects and lists are not where the checks expect them."""
    problems: list[str] = []

    def expect(value: object, kinds: type | tuple[type, ...], where: str) -> bool:
        if not isinstance(value, kinds):
            name = "an object" if kinds is dict else "a list" if kinds is list else "a string"
            problems.append(f"{where} is not {name}")
            return False
        return True

    def checkpoint(value: object, where: str) -> None:
        if expect(value, dict, where):
            assert isinstance(value, dict)
            expect(value.get("body"), dict, f"{where}.body")
            expect(value.get("fingerprint"), str, f"{where}.fingerprint")

    def objects(value: object, where: str) -> list[dict[str, Any]]:
        if not expect(value, list, where):
            return []
        assert isinstance(value, list)
        return [v for i, v in enumerate(value) if expect(v, dict, f"{where}[{i}]")]

    if not isinstance(document, dict):
        return problems
    if kind in ("receipt", "package"):
        checkpoint(document.get("checkpoint"), "checkpoint")
    if kind == "receipt":
        objects(document.get("leaves"), "leaves")
        if "totals" in document:
            expect(document["totals"], dict, "totals")
    if kind == "package":
        for i, link in enumerate(objects(document.get("chain", []), "chain")):
            checkpoint(link, f"chain[{i}]")
        for i, entry in enumerate(objects(document.get("entries"), "entries")):
            expect(entry.get("leaf"), dict, f"entries[{i}].leaf")
        expect(document.get("sample"), dict, "sample")
    if kind == "batch-export":
        for i, entry in enumerate(objects(document.get("checkpoints"), "checkpoints")):
            checkpoint(entry, f"checkpoints[{i}]")
    if kind == "checkpoint":
        checkpoint(document, "the checkpoint")
    return problems


def _checks_of(kind: str, document: Any, verifier: Verifier) -> Checks:
    if kind == "receipt":
        return verifier.receipt(document)
    if kind == "batch-export":
        return verifier.batch_export(document)
    if kind == "package":
        from flows.packages import verify_package  # packages build on this module

        return verify_package(verifier, document)
    checks = Checks()
    if kind == "checkpoint":
        verifier.checkpoint(checks, "checkpoint", document)
    else:
        checks.add("document", False, "not a receipt, package or checkpoint export")
    return checks
