"""Settings, read once from the environment (``KEYSTEAD_*``) and an optional TOML file.

Precedence: explicit constructor arguments > environment > config file > defaults.
The config file is named by ``KEYSTEAD_CONFIG_FILE``; keys are the field names below.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from keystead.errors import ConfigurationError

DEFAULT_DATA_DIR = Path("keystead-data")


def _days(default: int, what: str) -> Any:
    return Field(default=default, ge=0, le=36500, description=f"Days {what} are kept.")


class Settings(BaseSettings):
    """Everything Keystead reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="KEYSTEAD_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="Directory for the embedded SQLite database and the generated master key file.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; postgresql://… selects PostgreSQL (default: SQLite).",
    )
    master_key: SecretStr | None = Field(
        default=None, description="Master key-encryption key, 32 bytes in base64."
    )
    master_key_file: Path | None = Field(
        default=None,
        description="Master key file (base64); default data_dir/master.key.",
    )
    host: str = Field(default="127.0.0.1", description="Address `keystead serve` binds.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port `keystead serve` binds.")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients use to reach Keystead (written into credentials files).",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses (or CIDRs) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed; empty: none, the client address "
        "is the connection's.",
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate chain `keystead serve` answers HTTPS with (with "
        "tls_key_file); unset: plain HTTP, for a TLS-terminating proxy in front.",
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of tls_cert_file (readable by Keystead only)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted (bytes)."
    )
    signature_skew_seconds: int = Field(
        default=300, ge=1, le=86400, description="Allowed clock skew of signed requests."
    )
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60, description="Console session life.")
    jwks_cache_seconds: int = Field(
        default=3600, ge=1, description="How long an identity provider's signing keys are kept."
    )
    jwks_refetch_cooldown_seconds: int = Field(
        default=300,
        ge=0,
        description="Least time between key refetches triggered by an unknown key id.",
    )
    idp_http_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Deadline of one whole fetch from the identity provider.",
    )
    usage_entries_per_minute: int = Field(
        default=1000,
        ge=1,
        description="Usage entries one API key may store in a clock minute (beyond: 429).",
    )
    usage_entries_per_day: int = Field(
        default=50_000,
        ge=1,
        description="Usage entries one API key may store in a UTC day (beyond: 429).",
    )
    usage_entries_per_account_day: int = Field(
        default=1_000_000,
        ge=1,
        description="Usage entries one account's keys together may store in a UTC day.",
    )
    # Days each kind of record is kept (0: forever); pruning is `retention.py`.
    retention_provisioning_days: int = _days(90, "provisioning-log entries")
    retention_usage_days: int = _days(400, "usage events and refused usage reports")
    retention_sign_in_failures_days: int = _days(
        7, "refused console sign-in counts and expired console sessions"
    )
    retention_audit_days: int = _days(0, "audit events (the default keeps them forever)")
    lookup_keep_ms: int = Field(
        default=50,
        ge=0,
        le=100,
        description="On PostgreSQL, how long a node may answer the data plane's key lookup "
        "from what it read (a change made through another node is obeyed after at most this "
        "long; 0: ask the database on every call).",
    )
    prune_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="How often `keystead serve` prunes what retention lets go (0: never; "
        "`keystead prune` then does it).",
    )
    idp_allow_private_addresses: bool = Field(
        default=False,
        description="Let accounts' identity providers live on loopback, private or "
        "link-local addresses (and on plain http on loopback): for a test or air-gapped IdP.",
    )

    metrics: bool = Field(
        default=False,
        description="Serve Prometheus metrics at /metrics (off: /metrics is an unknown path).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, a scrape of /metrics must carry it as `Authorization: Bearer …`.",
    )

    @field_validator("metrics_token")
    @classmethod
    def _empty_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        # `KEYSTEAD_METRICS_TOKEN=` (set but empty) means no token, not the empty token.
        return value if value is not None and value.get_secret_value() else None

    @field_validator("database_url")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value:
            try:
                make_url(value)
            except (ArgumentError, ValueError):  # the message could quote a password
                raise ValueError(
                    "not a database URL (postgresql://user@host:5432/db or sqlite:///file)"
                ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:  # a host name never matches; "*" would believe anyone
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.10 or 10.0.0.0/24)"
                ) from None
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        # The Ubiq client appends paths directly; a trailing slash would sign `//api/…`.
        return value.rstrip("/") if value else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("KEYSTEAD_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @classmethod
    def load(cls) -> Settings:
        """The settings from the environment and the config file, or a ConfigurationError
        naming each bad value and where it came from."""
        config_file = os.environ.get("KEYSTEAD_CONFIG_FILE")
        if config_file and not Path(config_file).is_file():
            raise ConfigurationError(f"KEYSTEAD_CONFIG_FILE names {config_file}: no such file")
        try:
            return _validated(cls)
        except (OSError, ValueError) as exc:  # the TOML file unreadable or not TOML
            raise ConfigurationError(f"cannot read config file {config_file}: {exc}") from None

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL in use, with the driver made explicit."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'keystead.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def is_embedded(self) -> bool:
        """True when running on the embedded SQLite default."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def effective_public_url(self) -> str:
        scheme = "https" if self.tls_cert_file else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.port}"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (used by the CLI's global options)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return _validated(lambda: Settings(**data))


def _validated(make: Callable[[], Settings]) -> Settings:
    """``make()``, or a ConfigurationError naming each bad setting (never its value)."""
    try:
        return make()
    except ValidationError as exc:
        problems = "; ".join(
            f"{e['loc'][0]!r} in the config file is not a setting (a typo?)"
            if e["type"] == "extra_forbidden"
            else f"KEYSTEAD_{str(e['loc'][0]).upper() if e['loc'] else '…'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigurationError(
            f"invalid setting: {problems} (from the environment, the config file or an option)"
        ) from None
