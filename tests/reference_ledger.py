"""A plain-Python ledger written straight from SPEC section 2, one row at a time.

It shares no code with the pipeline: its only job is to disagree with it when either is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

ID64 = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ID128 = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]{1,6})?")
STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
ALIASES = {
    "pending": "pending",
    "queued": "pending",
    "processing": "pending",
    "verified": "verified",
    "failed": "failed",
}


@dataclass
class Delta:
    facts: tuple
    status: str
    customer: tuple[str, str, str]
    period: str
    amount: Decimal


def read_rows(path: Path) -> list[tuple[dict, bool]]:
    """(row, amount was a JSON float) for every record; malformed records are None."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        try:
            return [(r, False) for r in pq.read_table(io.BytesIO(data)).to_pylist()]
        except Exception:  # noqa: BLE001 - an unreadable file is refused whole
            return []
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return []
    if path.suffix == ".csv":
        records = list(csv.reader(io.StringIO(text, newline="")))
        header, body = records[0], [r for r in records[1:] if r]
        return [
            (dict(zip(header, r, strict=True)), False) if len(r) == len(header) else (None, False)
            for r in body
        ]
    if path.suffix in (".jsonl", ".ndjson"):
        rows = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                rows.append((None, False))
                continue
            if not isinstance(row, dict) or any(
                v is not None and not isinstance(v, str)
                for k, v in row.items()
                if k not in ("amount", "metadata")
            ):
                rows.append((None, False))
                continue
            amount = row.get("amount")
            if isinstance(amount, int) and not isinstance(amount, bool):
                row["amount"] = str(amount)
            if isinstance(row.get("metadata"), dict):
                row["metadata"] = json.dumps(row["metadata"])
            rows.append((row, isinstance(amount, float)))
        return rows
    return []


def parse(row: dict | None, json_float: bool) -> tuple | None:
    """The normalised facts of a valid row, or None when SPEC section 2 refuses it."""
    if row is None or json_float:
        return None
    get = lambda k: row.get(k) if row.get(k) not in ("", None) else None  # noqa: E731
    tenant, env, delta, customer = (
        get(k) for k in ("tenant_id", "environment", "delta_id", "customer_id")
    )
    if not (tenant and ID64.fullmatch(tenant) and tenant not in (".", "..")):
        return None
    if not (env and env.lower() in ("sandbox", "production")):
        return None
    for ident in (delta, customer):
        if not (ident and ID128.fullmatch(ident) and ident not in (".", "..")):
            return None
    amount_text = get("amount")
    if not (isinstance(amount_text, str) and AMOUNT.fullmatch(amount_text)):
        return None
    amount = Decimal(amount_text)
    if amount == 0 or abs(amount) > 1_000_000_000:
        return None
    reason = get("reason")
    if not reason or len(reason) > 500:
        return None
    reference = get("reference_id")
    if reference is not None and len(reference) > 128:
        return None
    status = ALIASES.get((get("status") or "").lower())
    if status is None:
        return None
    occurred = parse_time(get("occurred_at"))
    if occurred is None:
        return None
    metadata = get("metadata")
    if metadata is not None:
        try:
            value = json.loads(metadata)
        except ValueError:
            return None
        if (
            not isinstance(value, dict)
            or len(value) > 50
            or not all(
                1 <= len(k) <= 40 and isinstance(v, str) and len(v) <= 500 for k, v in value.items()
            )
        ):
            return None
        metadata = json.dumps(value, sort_keys=True) if value else None
    facts = (customer, amount, reason, reference, occurred, metadata)
    return (tenant, env.lower(), delta), facts, status, occurred.strftime("%Y-%m")


def parse_time(text: str | None) -> datetime | None:
    match = STAMP.fullmatch(text or "")
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or ".0")[1:].ljust(9, "0")
    if fraction[6:] != "000":
        return None
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{fraction[:6]}{zone}").astimezone(UTC)
    except ValueError:
        return None
    return moment if 1970 <= moment.year <= 9999 else None


def reference_ledger(inbox: Path) -> tuple[dict[tuple[str, str, str, str], Decimal], int]:
    """(net verified amount per (tenant, environment, customer, period), rows refused)."""
    deltas: dict[tuple, Delta] = {}
    refused = 0
    # SPEC section 2: lexicographic order of the path within the inbox, as text (`a.csv`
    # before `a/z.csv`); sorting Path objects compares folder by folder and puts it after.
    files = [p for p in inbox.rglob("*") if p.is_file()]
    for path in sorted(files, key=lambda p: p.relative_to(inbox).as_posix()):
        for row, json_float in read_rows(path):
            parsed = parse(row, json_float)
            if parsed is None:
                refused += 1
                continue
            key, facts, status, period = parsed
            known = deltas.get(key)
            if known is None:
                deltas[key] = Delta(facts, status, (key[0], key[1], facts[0]), period, facts[1])
            elif known.facts != facts:
                refused += 1  # a conflict
            elif known.status == "pending" and status != "pending":
                known.status = status
            elif known.status != status:
                refused += 1  # a status regression
    balances: dict[tuple[str, str, str, str], Decimal] = {}
    for delta in deltas.values():
        slot = (*delta.customer, delta.period)
        balances.setdefault(slot, Decimal(0))
        if delta.status == "verified":
            balances[slot] += delta.amount
    return balances, refused
