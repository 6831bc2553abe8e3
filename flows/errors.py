"""The one root exception of tallyproof and its structured subclasses.

The CLI turns any `TallyproofError` into one red line and exit code 1 (the traceback only with
`--debug`); the API maps them to its error envelope through `http_status`.
"""

from __future__ import annotations

from typing import Any


class TallyproofError(Exception):
    """A known failure with a machine-readable code and a message for people."""

    code = "TALLYPROOF_ERROR"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigError(TallyproofError):
    code = "CONFIG_ERROR"


class InboxError(TallyproofError):
    code = "INBOX_ERROR"


class StorageError(TallyproofError):
    code = "STORAGE_ERROR"
    http_status = 503


class WarehouseBusyError(TallyproofError):
    """Another run holds the writer lock of the warehouse."""

    code = "WAREHOUSE_BUSY"
    http_status = 409


class NotFoundError(TallyproofError):
    code = "NOT_FOUND"
    http_status = 404


class InvalidRequestError(TallyproofError):
    """A bad parameter; `details["parameter"]` names it."""

    code = "BAD_REQUEST"
    http_status = 400

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message, details={"parameter": parameter})
        self.parameter = parameter


class UnprocessableError(TallyproofError):
    """A well-formed request that cannot be done with the data at hand (e.g. an empty period)."""

    code = "UNPROCESSABLE"
    http_status = 422


class ConflictError(TallyproofError):
    code = "CONFLICT"
    http_status = 409


class VerificationError(TallyproofError):
    code = "VERIFICATION_FAILED"
