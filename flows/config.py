"""One settings object for the pipeline, the CLI and the API.

Every field reads from a `TALLYPROOF_*` variable; CLI options override it. By default everything
lives under `./data` (`TALLYPROOF_DATA_DIR`), so nothing else is needed to try the project.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALLYPROOF_", extra="ignore")

    data_dir: Path = Path("data")
    inbox: str = Field("", description="landing files: a folder or an s3:// prefix")
    output: str = Field("", description="output root: a folder or s3://bucket/prefix")
    warehouse: Path = Field(Path(), description="the DuckDB file")
    keys_dir: Path = Field(Path(), description="salt key and signing keys")
    salt_key: SecretStr | None = Field(None, description="HMAC key for leaf salts (UTF-8)")

    batch_rows: int = Field(2_000_000, ge=1, description="rows validated and merged at once")
    rehash_inbox: bool = Field(
        False,
        description="read and hash every inbox file, even one whose size and modification "
        "time are unchanged since it was last hashed",
    )
    duckdb_threads: int | None = Field(None, ge=1)
    duckdb_memory_limit: str | None = Field(
        "3GB",
        description="DuckDB's memory limit (it spills beyond it); DuckDB's own default is 80% "
        "of RAM, which leaves nothing for Polars on a large first run",
    )
    lock_wait_seconds: float = Field(3600.0, ge=0, description="how long a run waits for the lock")
    runner: Literal["threads", "dask"] = Field("threads", description="where shard work runs")
    workers: int = Field(2, ge=1, description="threads, or local Dask worker processes")
    dask_address: str | None = Field(None, description="a Dask scheduler, tcp://host:8786")

    # Dashboard API (SPEC section 7).
    # NoDecode: the variable is a comma-separated list (`RS256,ES256`) or a JSON array.
    jwt_algorithms: Annotated[list[Literal["HS256", "RS256", "ES256", "EdDSA"]], NoDecode] = [
        "HS256"
    ]
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_write_wait_seconds: float = Field(
        30.0, ge=0, description="how long an API write waits for a running pipeline"
    )

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _algorithm_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else text.split(",")
            except json.JSONDecodeError:
                raise ValueError("expected RS256,ES256 or a JSON array of names") from None
            value = [v.strip() if isinstance(v, str) else v for v in value]
        if isinstance(value, list) and not [v for v in value if v != ""]:
            raise ValueError("name at least one algorithm")
        return value

    @field_validator("salt_key")
    @classmethod
    def _salt_key_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty key would make every salt public, and with it a package's sibling hashes.
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty (unset it to use the key in the keys folder)")
        return value

    # The folder settings that were derived from data_dir rather than given.
    _derived: set[str] = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        derived = {
            "inbox": str(self.data_dir / "inbox"),
            "output": str(self.data_dir / "output"),
            "warehouse": self.data_dir / "warehouse.duckdb",
            "keys_dir": self.data_dir / "keys",
        }
        for name, default in derived.items():
            if getattr(self, name) in ("", Path()):
                object.__setattr__(self, name, default)
                self._derived.add(name)
        return self

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced (CLI options over environment)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        merged = {**self.model_dump(), **given}
        if "data_dir" in given:  # folders that followed data_dir follow it again
            for name in self._derived - given.keys():
                merged.pop(name, None)
        return Settings.model_validate(merged)


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; a variable of the wrong kind is a ConfigError that
    names it, not a traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from flows.errors import ConfigError

    try:
        return Settings()
    except ValidationError as err:
        problems = [_problem(e["loc"], e["msg"]) for e in err.errors()]
        raise ConfigError("; ".join(problems)) from err
    except SettingsError as err:  # a list or object variable that is not JSON
        raise ConfigError(str(err)) from err


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """A validation error as `TALLYPROOF_JWT_ALGORITHMS[0]: message`: the variable, then the
    place within a list value; a check of the whole settings names no variable."""
    names = [str(p) for p in loc if isinstance(p, str)]
    places = "".join(f"[{p}]" for p in loc if isinstance(p, int))
    message = message.removeprefix("Value error, ")
    if not names:
        return message
    return f"TALLYPROOF_{'_'.join(names).upper()}{places}: {message}"
