"""Offline verification of what tallyproof publishes: checkpoint exports, receipts, packages.

Every check is reported, passed or failed, with what it compared; nothing here trusts the
warehouse, only the document and the JWKS. `tallyproof verify` prints the checks and exits 0
only when all of them pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import jwt

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


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= HEX64


class Verifier:
    """Checks documents against a JWKS (`{"keys": [...]}`)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.keys: dict[str, Any] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
                self.keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="EdDSA").key

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
        wrong = {k: claims.get(k) for k, v in expected.items() if claims.get(k) != v}
        checks.add(
            f"{label}: signature",
            not wrong,
            f"valid EdDSA signature by key {kid}"
            if not wrong
            else f"signed claims differ: {wrong}",
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
        except (KeyError, TypeError, InvalidOperation):
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
        checks.add("export", True, f"{len(entries)} checkpoints of {scope}")
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
        except (KeyError, TypeError, InvalidOperation):
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


def verify_document(document: object, jwks: dict[str, Any]) -> tuple[str, Checks]:
    """(kind, checks) of a parsed document."""
    verifier = Verifier(jwks)
    kind = document_kind(document)
    assert isinstance(document, dict) or kind == "unknown"
    if kind == "receipt":
        return kind, verifier.receipt(document)  # type: ignore[arg-type]
    if kind == "batch-export":
        return kind, verifier.batch_export(document)  # type: ignore[arg-type]
    if kind == "package":
        from flows.packages import verify_package  # packages build on this module

        return kind, verify_package(verifier, document)  # type: ignore[arg-type]
    if kind == "checkpoint":
        checks = Checks()
        verifier.checkpoint(checks, "checkpoint", document)  # type: ignore[arg-type]
        return kind, checks
    checks = Checks()
    checks.add("document", False, "not a receipt, package or checkpoint export")
    return kind, checks
