"""Object storage behind one small interface: a local folder or any S3-compatible store.

Both backends are pyarrow filesystems, so the code above this module never asks which one it
has. S3 is configured with the standard AWS variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`); a custom endpoint uses path-style addressing, which every
S3-compatible server understands.

Transient S3 errors are retried twice over: by the AWS SDK's standard strategy inside each call,
and here around each whole operation, because the SDK gives up on some of them (a 503 SlowDown
on a GetObject surfaces as INTERNAL_FAILURE, unretried). Permanent errors (no such bucket,
access denied) fail at once. What still fails is raised as `StorageError`, naming the path, and
nothing above retries it again: an endpoint that refuses connections fails an operation within
seconds, one that accepts them and never answers within S3_ATTEMPTS * OPERATION_ATTEMPTS *
REQUEST_TIMEOUT_SECONDS (4 minutes; retries stacked by the SDK, this module and Prefect's task
retries once took 90).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from flows.errors import ConfigError, StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGING = "_staging"  # where files wait on S3 (see `Location.pending_path`)
PENDING = ".pending"  # the suffix of a file waiting beside its place on a disk
S3_ATTEMPTS = 3  # the SDK's attempts per call
OPERATION_ATTEMPTS = 4  # our attempts per operation, with exponential backoff
BACKOFF_SECONDS = 0.2
CONNECT_TIMEOUT_SECONDS = 5
REQUEST_TIMEOUT_SECONDS = 20  # without a byte from the server
TRANSIENT_MARKERS = (
    "SlowDown",
    "ServiceUnavailable",
    "INTERNAL_FAILURE",
    "NETWORK_CONNECTION",
    "RequestTimeout",
    "InternalError",
    "HTTP status 500",
    "HTTP status 502",
    "HTTP status 503",
    "HTTP status 504",
    "Connection reset",
    "timed out",
    "Failed to flush",
)
PERMANENT_MARKERS = (  # as S3 spells them, and as pyarrow's SDK reports them
    "NoSuchBucket",
    "NO_SUCH_BUCKET",
    "AccessDenied",
    "ACCESS_DENIED",
    "InvalidAccessKeyId",
    "INVALID_ACCESS_KEY_ID",
    "SignatureDoesNotMatch",
    "SIGNATURE_DOES_NOT_MATCH",
    "HTTP status 403",
    "HTTP status 404",
)


@dataclass(frozen=True)
class StoredFile:
    relative: str  # POSIX path below the location's root, as listed (never normalised)
    size: int
    mtime_ns: int | None = None  # last modified, when the filesystem says


def _is_transient(error: BaseException) -> bool:
    text = str(error)
    return not any(m in text for m in PERMANENT_MARKERS) and any(
        m in text for m in TRANSIENT_MARKERS
    )


@dataclass(frozen=True)
class Location:
    """A folder of a filesystem; every path below is relative to it and cannot leave it."""

    fs: pafs.FileSystem
    root: str
    uri: str
    _folders: set[str] = field(default_factory=set, compare=False, repr=False)

    @property
    def is_s3(self) -> bool:
        return isinstance(self.fs, pafs.S3FileSystem)

    def path(self, relative: str) -> str:
        """The filesystem path of `relative`, refusing anything that would leave the root."""
        if relative.startswith("/") or has_odd_segment(relative) or "\\" in relative:
            raise StorageError(f"refusing path {relative!r}: it is not a plain relative path")
        return f"{self.root}/{relative}" if self.root else relative

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        """Run one storage operation, retrying transient S3 errors with backoff."""
        attempts = OPERATION_ATTEMPTS if self.is_s3 else 1
        for attempt in range(1, attempts + 1):
            try:
                return operation()
            except (OSError, pa.ArrowException) as err:
                if (
                    isinstance(err, FileNotFoundError)
                    or attempt == attempts
                    or not _is_transient(err)
                ):
                    raise StorageError(f"cannot {what} {self.uri}: {err}") from err
                log.warning("retrying %s (attempt %d): %s", what, attempt, err)
                time.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def forget_folders(self) -> None:
        """Forget which folders exist (after deleting some)."""
        self._folders.clear()

    def require_folder(self, role: str) -> None:
        """Refuse a location that is not there: a local folder that does not exist, or an S3
        bucket that does not (an S3 prefix exists once something is under it, so an empty
        one is fine). A run from a mistyped inbox would otherwise succeed, night after night,
        having found nothing."""
        base = self.root.split("/", 1)[0] if self.is_s3 else self.root
        info = self._call("look up", lambda: self.fs.get_file_info(base or "/"))
        if info.type != pafs.FileType.Directory:
            raise StorageError(
                f"the {role} {self.uri} does not exist"
                + (" (no such bucket)" if self.is_s3 else " (or is not a folder)")
            )

    def list_files(self, prefix: str = "") -> list[StoredFile]:
        """Every file below `prefix`, sorted by relative path; names starting with `.` or `_`
        (uploads in progress, markers, staging) are left out.

        An S3 key is any string: `in/a/../ok.csv`, `in/a//x.csv` and `in/../x.csv` are three
        objects, none of them `in/ok.csv`. Their relative paths are kept as listed, never
        normalised (normalising read `in/a/../ok.csv` as `in/ok.csv`, or hid it), so that the
        caller can tell them apart (see `flows.ingest`, which refuses them)."""
        base = self.path(prefix) if prefix else self.root
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        infos = self._call(f"list {prefix or '/'} in", lambda: self.fs.get_file_info(selector))
        found = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            if not info.path.startswith(f"{self.root}/" if self.root else ""):
                raise StorageError(f"{self.uri} listed {info.path!r}, which is not below it")
            relative = info.path[len(self.root) + 1 :] if self.root else info.path
            if any(_hidden(part) for part in relative.split("/")):
                continue
            found.append(StoredFile(relative, info.size or 0, info.mtime_ns))
        return sorted(found, key=lambda f: f.relative)

    def readable_as_listed(self, stored: StoredFile) -> bool:
        """Whether `read_listed` can read this file as itself: S3 clients resolve `.` and `..`
        segments of a key and refuse empty ones (pyarrow read `in/a/../ok.csv` as `in/ok.csv`)."""
        return not (self.is_s3 and has_odd_segment(stored.relative))

    def read_listed(self, stored: StoredFile) -> bytes:
        """The bytes of a file `list_files` found, by the path it was listed under, which
        `read_bytes` would refuse when it holds a backslash. (S3 clients resolve `.` and `..`
        segments and refuse empty ones: such a key cannot be read as itself at all.)"""
        path = f"{self.root}/{stored.relative}" if self.root else stored.relative

        def read() -> bytes:
            with self.fs.open_input_stream(path) as stream:
                return stream.read()

        return self._call(f"read {stored.relative!r} in", read)

    def read_bytes(self, relative: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path(relative)) as stream:
                return stream.read()

        return self._call(f"read {relative} in", read)

    def exists(self, relative: str) -> bool:
        info = self._call(
            f"look up {relative} in", lambda: self.fs.get_file_info(self.path(relative))
        )
        return info.type == pafs.FileType.File

    def write_bytes(self, relative: str, data: bytes, *, atomic: bool = True) -> None:
        """Write a whole file; a reader sees the old file or the new one, never a part.

        S3 PUTs are atomic by themselves; on a local disk the bytes go to a hidden temporary
        name in the same folder first and are renamed into place. `atomic=False` skips the
        rename, for files nobody reads yet (see `pending_path`).
        """
        target = self.path(relative)

        def write() -> None:
            if self.is_s3:
                with self.fs.open_output_stream(target) as stream:
                    stream.write(data)
                return
            folder, name = posixpath.split(target)
            self._ensure_folder(folder)
            if not atomic:
                _write_file(target, data)
                return
            temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
            _write_file(temporary, data)
            os.replace(temporary, target)

        self._call(f"write {relative} in", write)

    def pending_path(self, relative: str, batch: str) -> str:
        """Where a new version of `relative` can wait, hidden from `list_files`, until `promote`
        puts it in place.

        On a local disk that is beside it (`.<name>.pending`): renames within a folder
        replaced 29,000-31,000 files a second here from eight threads, where renames between
        folders take a lock of the whole filesystem and replaced 8,400 a second. The name
        is the same in every batch, so the next batch to write the file writes over what a
        crashed one left. On S3, where promoting is a copy, files wait flat under
        `_staging/<batch>/`, each under the SHA-256 of its path in one of 256 folders, and
        `delete_folder` takes a crashed batch's away at once.
        """
        if self.is_s3:
            digest = hashlib.sha256(relative.encode()).hexdigest()
            return f"{STAGING}/{batch}/{digest[:2]}/{digest[2:]}"
        folder, name = posixpath.split(relative)
        return posixpath.join(folder, f".{name}{PENDING}")

    def write_new(self, relative: str, data: bytes, *, unlisted: bool = False) -> bool:
        """Write a file that does not exist yet, whole at once, and return True; return False,
        writing nothing, when a file is already there or this storage cannot promise it (a
        disk without `O_TMPFILE`, or S3 without `unlisted`).

        S3 has no portable way to refuse an existing key (conditional PUTs are newer than many
        S3-compatible stores), so there the caller vouches with `unlisted` that no manifest
        lists the path: then one PUT writes it in place, which appears whole. Staging it and
        copying it into place after took four requests a file, a folder marker among them.

        On Linux the bytes go to an anonymous file in the target folder, which is then linked
        in under its name: the file appears whole, a file already there is never replaced, and
        a crash leaves nothing behind. Hand-written because no library offers it; here it
        creates 100,000 small files in 1.9-2.2 s, where staging them and renaming them into
        place took 4.6-5.0 s and a hidden temporary file renamed in its folder 2.5-2.8 s.
        """
        if self.is_s3:
            if unlisted:
                self.write_bytes(relative, data)
            return unlisted
        if not hasattr(os, "O_TMPFILE"):
            return False
        target = self.path(relative)
        folder = posixpath.dirname(target)

        def write() -> bool:
            try:
                fd = _open_anonymous(folder)
            except FileNotFoundError:
                # Open first and make the folder only when it is missing, as `promote` does: two
                # threads wrote 28,000-31,000 files a second into folders that exist with a
                # folder check per file, 40,000-43,000 without (shards share no Location, so
                # each checked every customer's folder again).
                self._ensure_folder(folder)
                fd = _open_anonymous(folder)
            if fd is None:
                return False  # this filesystem has no anonymous files
            try:
                _write_all(fd, data)
                # linkat(2) with AT_SYMLINK_FOLLOW links the open file itself; CPython calls
                # linkat, rather than link(2), only when given a directory descriptor, which an
                # absolute path ignores.
                os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd, follow_symlinks=True)
            except FileExistsError:
                return False
            except FileNotFoundError:
                return False  # no /proc: the caller writes it the portable way
            finally:
                os.close(fd)
            return True

        return self._call(f"write {relative} in", write)

    def _ensure_folder(self, folder: str) -> None:
        # Folders are made once per Location: a stat per file is most of a small file's cost.
        if folder not in self._folders:
            self.fs.create_dir(folder, recursive=True)
            self._folders.add(folder)

    def promote(self, source: str, target: str) -> None:
        """Put the file waiting at `source` (see `pending_path`) in place of `target`: a rename
        on disk, a server-side copy on S3, where the waiting file goes with its staging folder
        (`delete_folder`, a thousand keys a request). Deleting it here was two more requests,
        and pyarrow writes a marker for the folder a delete leaves empty."""

        def promote() -> None:
            if self.is_s3:
                self.fs.copy_file(self.path(source), self.path(target))
                return
            # Rename first and make the folder only when it is missing: a nightly run replaces
            # files in folders that exist, and a folder check per file was a third of its cost.
            try:
                os.replace(self.path(source), self.path(target))
            except FileNotFoundError:
                self._ensure_folder(posixpath.dirname(self.path(target)))
                os.replace(self.path(source), self.path(target))

        self._call(f"put {source} in place of {target} in", promote)

    def delete_folder(self, relative: str) -> None:
        """Delete a folder and everything below it; nothing happens if it does not exist."""
        info = self._call(
            f"look up {relative} in", lambda: self.fs.get_file_info(self.path(relative))
        )
        if info.type == pafs.FileType.NotFound:
            return
        self._call(f"delete {relative} in", lambda: self.fs.delete_dir(self.path(relative)))

    def delete(self, relative: str) -> None:
        try:
            self._call(f"delete {relative} in", lambda: self.fs.delete_file(self.path(relative)))
        except StorageError as err:
            if not isinstance(err.__cause__, FileNotFoundError):
                raise


def has_odd_segment(relative: str) -> bool:
    """Whether a slash-separated path has an empty, `.` or `..` segment."""
    return any(segment in ("", ".", "..") for segment in relative.split("/"))


def _hidden(segment: str) -> bool:
    """A name written or left by a writer (`.x.tmp`, `_staging`), not a landed file; `.` and
    `..` are not hidden: as S3 key segments they are part of an object's own name."""
    return segment.startswith((".", "_")) and segment not in (".", "..")


def _open_anonymous(folder: str) -> int | None:
    """A new anonymous file in `folder` (`O_TMPFILE`), open for writing; None where the
    filesystem has none. A missing folder raises FileNotFoundError."""
    try:
        return os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise


def _write_file(path: str, data: bytes) -> None:
    # Plain system calls, not a pyarrow output stream per file: small files took 36-39 us
    # against 40-45 us from one thread, and 17 against 28 us from two.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem from the standard AWS variables."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, object] = {
        "region": os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
        "allow_bucket_creation": True,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "request_timeout": REQUEST_TIMEOUT_SECONDS,
        # A small file is one PUT, not a multipart upload of three requests.
        "allow_delayed_open": True,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            given = "AWS_ENDPOINT_URL_S3" if os.environ.get("AWS_ENDPOINT_URL_S3") else ""
            name = given or "AWS_ENDPOINT_URL"
            raise ConfigError(
                f"{name} {endpoint!r} is not a URL: give its scheme, e.g. http://{endpoint}"
            )
        options["endpoint_override"] = parsed.netloc
        options["scheme"] = parsed.scheme
        options["force_virtual_addressing"] = False
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            options["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)


def open_location(uri: str) -> Location:
    """A `Location` for a local folder or an `s3://bucket/prefix` URI."""
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise StorageError(f"{uri!r} names no bucket")
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return Location(s3_filesystem(), root, uri.rstrip("/"))
    if "://" in uri:
        raise StorageError(f"unsupported storage URI {uri!r}: use a folder or s3://bucket/prefix")
    folder = Path(uri).expanduser().resolve()
    return Location(pafs.LocalFileSystem(), folder.as_posix(), str(folder))
