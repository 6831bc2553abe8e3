"""Landing files in, normalised landing rows out (`transforms.validate.LANDING_SCHEMA`).

Readers decide only what a file *says*: every field as text, where each row came from, and what
is structurally wrong (a ragged CSV record, a JSONL line that is not an object, a field of the
wrong JSON or Parquet type). Whether the values are acceptable is `transforms.validate`'s job.
A file that cannot be read at all comes back as a `FileRefusal` and is quarantined whole.

Line numbers are physical lines of the file (the header is line 1 of a CSV); a Parquet "line"
is the 1-based row number. Blank lines carry no data and are skipped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from flows.warehouse import sql
from transforms import codes
from transforms.jcs import json_string
from transforms.messages import message
from transforms.validate import FIELDS, LANDING_SCHEMA

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
STRING_FIELDS = tuple(f for f in FIELDS if f not in ("amount", "metadata"))


@dataclass(frozen=True)
class FileRefusal:
    code: str
    message: str


def read_landing_file(path: str, data: bytes, file_order: int) -> pl.LazyFrame | FileRefusal:
    """The rows of one landing file (lazily: a batch of files is collected at once, in
    parallel), or why the whole file is refused."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return FileRefusal(
            codes.UNSUPPORTED_FILE_TYPE,
            f"{path}: unsupported file type {suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    if suffix == ".parquet":
        rows = _read_parquet(path, data)
    else:
        bom = data.startswith(b"\xef\xbb\xbf")
        if bom:
            data = data[3:]
        lines = _physical_lines(path, data, offset=3 if bom else 0)
        if isinstance(lines, FileRefusal):
            return lines
        rows = _read_csv(path, data, lines) if suffix == ".csv" else _read_jsonl(lines)
    if isinstance(rows, FileRefusal):
        return rows
    return _conform(rows.lazy(), path, file_order)


def _conform(rows: pl.LazyFrame, path: str, file_order: int) -> pl.LazyFrame:
    """Add missing columns as nulls and put everything in LANDING_SCHEMA order."""
    present = set(rows.collect_schema().names())
    # Every reader numbers its rows: with `_line` there, the null literals below take the
    # frame's length, where a frame of literals alone would be one row of nulls.
    assert "_line" in present, "a reader must number its rows"
    return (
        rows.select(
            pl.col(name).cast(dtype) if name in present else pl.lit(None, dtype).alias(name)
            for name, dtype in LANDING_SCHEMA.items()
            if name not in ("_file", "_file_order")
        )
        .select(
            pl.lit(path).alias("_file"),
            pl.lit(file_order, pl.Int64).alias("_file_order"),
            pl.all(),
        )
        .select(list(LANDING_SCHEMA))
    )


def _physical_lines(path: str, data: bytes, offset: int = 0) -> pl.Series | FileRefusal:
    """The file's lines (a final newline ends the last line; one carriage return before a
    newline is dropped), or the refusal of a file that is not UTF-8 (`offset`: bytes already
    taken off the front, a byte order mark, so that the byte named is the file's).

    Polars splits and checks the text without making a Python string of every line, which
    held the interpreter lock for a third of a second a million lines."""
    try:
        return pl.read_lines(data, name="_raw").to_series()
    except pl.exceptions.ComputeError as problem:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            return FileRefusal(
                codes.NOT_UTF8, f"{path}: not UTF-8 (byte {err.start + offset}: {err.reason})"
            )
        return FileRefusal(codes.UNREADABLE_FILE, f"{path}: cannot be read as lines ({problem})")


# --- CSV -------------------------------------------------------------------------------------


def _read_csv(
    path: str, data: bytes, lines: pl.Series
) -> pl.DataFrame | pl.LazyFrame | FileRefusal:
    """Polars parses well-formed files; anything irregular goes through the exact slow path.

    `data` is the file's bytes (known to be UTF-8, no BOM) and `lines` its physical lines."""
    if not lines.len():
        return _no_rows()
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        # A carriage return alone ends a line for the csv module (old Mac files), not for
        # Polars' line split, which made such a file one header line and no rows.
        return _read_csv_exactly(path, data.decode("utf-8"))
    try:
        parsed = pl.read_csv(
            data,
            infer_schema=False,
            empty_string_is_null=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except Exception:  # noqa: BLE001 - any parser complaint means: read it the careful way
        return _read_csv_exactly(path, data.decode("utf-8"))
    header = [h.strip().lower() for h in parsed.columns]
    # Polars makes one record of every line, blank ones included, unless a quoted field spans
    # lines; then the counts differ and the exact reader counts physical lines for us.
    if len(set(header)) != len(header) or parsed.height != lines.len() - 1:
        return _read_csv_exactly(path, data.decode("utf-8"))
    # Every comma of a line either separates fields or sits inside a quoted value, so a record
    # is ragged exactly when its line has a different number of commas than its values plus
    # the header's separators. Vectorised and exact.
    names = parsed.columns = _column_names(header)
    # hstack, not a literal in a lazy plan: plans hash their literals.
    parsed = parsed.hstack(
        [
            lines.slice(1),
            pl.Series("_line", range(2, parsed.height + 2), dtype=pl.Int64),
        ]
    )
    in_values = pl.sum_horizontal(pl.col(c).str.count_matches(",", literal=True) for c in names)
    separators = pl.col("_raw").str.count_matches(",", literal=True) - in_values
    return (
        parsed.lazy()
        .with_columns(_raw=pl.col("_raw").str.strip_suffix("\r"))
        .filter(pl.col("_raw").str.strip_chars() != "")
        .with_columns(_fields=separators + 1)
        .with_columns(**_ragged_columns(pl.col("_fields") != len(header), len(header)))
        .drop("_fields")
    )


def _no_rows() -> pl.DataFrame:
    """The rows of a file without records (empty, blank lines, a header alone): none."""
    return pl.DataFrame(schema={"_line": pl.Int64, "_raw": pl.String})


def _column_names(header: list[str]) -> list[str]:
    """SPEC fields by their name, any other column by its place (`_column_3`): an unknown
    column is ignored, and one named like a column the readers or validation add (`_line`,
    `_raw`, `_amount_type`) can neither collide with it nor stand in for it."""
    return [name if name in FIELDS else f"_column_{i}" for i, name in enumerate(header)]


def _ragged_columns(ragged: pl.Expr, expected: int) -> dict[str, pl.Expr]:
    return {
        "_reader_code": pl.when(ragged).then(pl.lit(codes.MALFORMED_ROW)),
        "_reader_field": pl.when(ragged).then(pl.lit("")),
        "_reader_message": pl.when(ragged).then(
            message(
                "the record has {} fields; the header has {}", pl.col("_fields"), pl.lit(expected)
            )
        ),
    }


def _read_csv_exactly(path: str, text: str) -> pl.DataFrame | FileRefusal:
    """Python's strict csv reader, record by record: exact line numbers and raw records.

    Used only for files the fast path cannot vouch for. A record the reader cannot parse (a
    stray quote) is quarantined alone and reading goes on at the next line; an unclosed quote
    runs to the end of the file, which is then that one record.

    Lines are counted as the csv module reads them: `\r\n`, `\n` or a lone `\r` ends one.
    """
    # The csv module reads lines with their endings, split where they end (universal
    # newlines); the same split numbers them and gives each record its raw text.
    physical = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(physical), strict=True)
    records: list[tuple[int, str, list[str] | None, str | None]] = []
    header: list[str] | None = None
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            end = max(reader.line_num, start)
            if header is None:
                return FileRefusal(
                    codes.UNREADABLE_FILE, f"{path}: the CSV header cannot be parsed ({err})"
                )
            problem = (
                f"cannot parse the rest of the file: {err}"
                if end >= len(physical)
                else f"cannot parse the record: {err}"
            )
            records.append((start, _record_text(physical[start - 1 : end]), None, problem))
            start = end + 1
            continue
        end = reader.line_num
        raw = _record_text(physical[start - 1 : end])
        line, start = start, end + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if header is None:
            header = [h.strip().lower() for h in fields]
            if len(set(header)) != len(header):
                return FileRefusal(
                    codes.UNREADABLE_FILE, f"{path}: the CSV header repeats a column name"
                )
            header = _column_names(header)
            continue
        if len(fields) != len(header):
            problem = f"the record has {len(fields)} fields; the header has {len(header)}"
            records.append((line, raw, None, problem))
        else:
            records.append((line, raw, fields, None))
    if header is None:
        return _no_rows()
    columns: dict[str, list[str | None]] = {h: [] for h in header}
    for _, _, fields, _ in records:
        for name, value in zip(header, fields or [None] * len(header), strict=True):
            columns[name].append(value)
    problems = [r[3] for r in records]
    return pl.DataFrame(
        {
            **columns,
            "_line": [r[0] for r in records],
            "_raw": [r[1] for r in records],
            "_reader_code": [codes.MALFORMED_ROW if p else None for p in problems],
            "_reader_field": ["" if p else None for p in problems],
            "_reader_message": problems,
        },
        schema={
            **{h: pl.String for h in header},
            "_line": pl.Int64,
            "_raw": pl.String,
            "_reader_code": pl.String,
            "_reader_field": pl.String,
            "_reader_message": pl.String,
        },
    )


def _record_text(lines: list[str]) -> str:
    """A record's raw text from its lines (with their endings): the record's own line ending
    dropped, and line breaks inside it written `\n`, as the fast path writes them."""
    text = "".join(lines)
    for ending in ("\r\n", "\n", "\r"):
        if text.endswith(ending):
            text = text[: -len(ending)]
            break
    return text.replace("\r\n", "\n")


# --- JSONL -----------------------------------------------------------------------------------


def _read_jsonl(lines: pl.Series) -> pl.DataFrame:
    """DuckDB's JSON functions check and pick apart every line at once (sql/select_jsonl_fields)."""
    lines = (
        lines.rename("text")
        .to_frame()
        .with_columns(
            _line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
            text=pl.col("text").str.strip_suffix("\r"),
        )
        .filter(pl.col("text").str.strip_chars() != "")
    )
    con = duckdb.connect()
    try:
        con.register("landing_lines", lines.to_arrow())
        return con.sql(sql("select_jsonl_fields")).pl()
    finally:
        con.close()


# --- Parquet ---------------------------------------------------------------------------------


def _read_parquet(path: str, data: bytes) -> pl.DataFrame | FileRefusal:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for a broken file
        return FileRefusal(codes.UNREADABLE_FILE, f"{path}: not a readable Parquet file ({err})")
    names = [c.strip().lower() for c in table.column_names]
    repeated = sorted({n for n in names if n in FIELDS and names.count(n) > 1})
    if repeated:
        return FileRefusal(
            codes.UNREADABLE_FILE,
            f"{path}: the Parquet columns repeat {', '.join(repeated)} (names are matched "
            "trimmed and lowercased)",
        )
    # Only SPEC's columns are read: an unknown column is ignored, whatever its type.
    kept = [i for i, name in enumerate(names) if name in FIELDS]
    series, arrow_types = [], {}
    for i in kept:
        series.append(_polars_column(names[i], table.column(i)))
        arrow_types[names[i]] = str(table.schema.field(i).type)
    frame = pl.DataFrame(series, height=table.num_rows)
    columns: dict[str, pl.Expr] = {}
    type_errors: list[pl.Expr] = []
    for name in FIELDS:
        if name not in frame.columns:
            continue
        text, amount_type, ok = _parquet_field(name, frame.schema[name])
        columns[name] = text
        if name == "amount":
            columns["_amount_type"] = pl.lit(amount_type)
        if not ok:
            type_errors.append(pl.when(pl.col(name).is_not_null()).then(pl.lit(name)))
    first_bad = pl.coalesce(type_errors) if type_errors else pl.lit(None, pl.String)
    type_names = {
        name: arrow_types[name] if frame.schema[name] == pl.Binary else str(frame.schema[name])
        for name in frame.columns
    }
    # The raw row is the values as they came, before a column of the wrong type is emptied.
    normalised = frame.with_columns(_raw=_row_as_json(frame), _bad=first_bad).with_columns(
        **columns,
        _line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        _reader_code=pl.when(pl.col("_bad").is_not_null()).then(pl.lit(codes.INVALID_FIELD_TYPE)),
        _reader_field=pl.col("_bad"),
        _reader_message=pl.when(pl.col("_bad").is_not_null()).then(
            message(
                "the Parquet column has type {}",
                pl.col("_bad").replace_strict(type_names, default=None, return_dtype=pl.String),
            )
        ),
    )
    return normalised.drop("_bad")


def _polars_column(name: str, column: pa.ChunkedArray) -> pl.Series:
    """One Parquet column as Polars takes it. A time zone other than a name Polars knows (a
    fixed offset, `+05:30`) is the same instants in UTC; a type Polars cannot take at all
    (`decimal256`) becomes its values as text if it is the amount, and otherwise empty binary
    values, which validation refuses as the wrong type (the message names the Arrow type)."""
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = column.cast(pa.timestamp(column.type.unit, "UTC"))
    if pa.types.is_decimal256(column.type):  # Polars panics on it, printing a backtrace
        if name == "amount":  # exact as text
            return pl.Series(name, column.cast(pa.string()))
    else:
        try:
            return pl.Series(name, column)
        except (Exception, pl.exceptions.PanicException):  # noqa: BLE001 - a panic is no Exception
            pass
    present = column.is_valid().to_numpy(zero_copy_only=False)
    return pl.Series(name, np.where(present, b"", None), dtype=pl.Binary)


def _parquet_field(name: str, dtype: pl.DataType) -> tuple[pl.Expr, str | None, bool]:
    """(text expression, amount type, whether the Parquet type is acceptable) of one column."""
    column = pl.col(name)
    if dtype == pl.Null:
        return pl.lit(None, pl.String), None, True
    if isinstance(dtype, pl.Categorical | pl.Enum):  # pandas' category columns
        column, dtype = column.cast(pl.String), pl.String()
    if name == "amount":
        if dtype.is_integer():
            return column.cast(pl.String), "integer", True
        if isinstance(dtype, pl.Decimal):
            text = column.cast(pl.String)
            if (dtype.scale or 0) > 6:  # 12.50000000 of a DECIMAL(20, 8) is 12.5
                text = text.str.replace(r"(\.\d*?)0+$", "$1").str.strip_suffix(".")
            return text, "decimal", True
        if dtype.is_float():
            return column.cast(pl.String), "float", True
        return column.cast(pl.String, strict=False), "string", dtype == pl.String
    if name == "occurred_at" and isinstance(dtype, pl.Datetime):
        # Nanoseconds are written out whole: validation refuses digits beyond microseconds
        # rather than cutting them off.
        fraction = "%.9f" if dtype.time_unit == "ns" else "%.6f"
        if dtype.time_zone is None:  # refused by validation as TIMESTAMP_NO_TZ
            return column.dt.strftime(f"%Y-%m-%dT%H:%M:%S{fraction}"), None, True
        return (
            column.dt.convert_time_zone("UTC").dt.strftime(f"%Y-%m-%dT%H:%M:%S{fraction}+00:00"),
            None,
            True,
        )
    if name == "metadata" and (text := _metadata_text(column, dtype)) is not None:
        return text, None, True
    if dtype == pl.String:
        return column, None, True
    return pl.lit(None, pl.String), None, False


def _metadata_text(column: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """A Parquet metadata column as JSON text: a struct of text fields, or a map of text to
    text.

    A struct holds every key on every row, so a row that lacks a key has it null, as a map
    may have a null value: such keys are left out (in JSON text a null value is refused). Any
    other struct is encoded as it is, and validation names the value that is not a string;
    None for a type that is neither (text is read as it is, anything else is refused).
    """
    texts = (pl.String, pl.Null)
    if isinstance(dtype, pl.Struct) and all(f.dtype in texts for f in dtype.fields):
        pairs = [
            pl.concat_str(
                pl.lit(f"{json.dumps(f.name)}:"), json_string(column.struct.field(f.name))
            )
            for f in dtype.fields
        ]
        joined = pl.concat_str(pairs, separator=",", ignore_nulls=True)
    elif isinstance(dtype, pl.Map) and dtype.key in texts and dtype.value in texts:
        entry = pl.element().struct
        joined = (
            column.map.entries()
            .list.eval(
                pl.concat_str(
                    json_string(entry.field("key")), pl.lit(":"), json_string(entry.field("value"))
                )
            )
            .list.join(",", ignore_nulls=True)
        )
    elif isinstance(dtype, pl.Struct):
        return column.struct.json_encode()
    else:
        return None
    return pl.when(column.is_not_null()).then(pl.concat_str(pl.lit("{"), joined, pl.lit("}")))


def _raw_value(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column's value in the raw row: JSON text of the value (a nested one as itself; a
    list or map cannot be cast to text, and used to fail the run)."""
    column = pl.col(name)
    if isinstance(dtype, pl.Map):
        column = column.map.entries()
    if dtype.is_nested():
        # Encoded inside a one-field struct, `{"metadata":...}`, and taken out of it.
        encoded = pl.struct(column.alias("v")).struct.json_encode()
        return encoded.str.slice(len('{"v":')).str.strip_suffix("}")
    return json_string(column.cast(pl.String, strict=False)).fill_null("null")


def _row_as_json(frame: pl.DataFrame) -> pl.Expr:
    """The row as a JSON object of its SPEC fields, the raw form of a Parquet row."""
    parts = []
    for name in FIELDS:
        if name in frame.columns:
            parts.append(message('"{}":{}', pl.lit(name), _raw_value(name, frame.schema[name])))
    return (
        pl.concat_str(pl.lit("{"), pl.concat_str(parts, separator=","), pl.lit("}"))
        if parts
        else pl.lit("{}")
    )
