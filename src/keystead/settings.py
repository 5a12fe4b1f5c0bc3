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


def _days(default: int) -> Any:
    return Field(default=default, ge=0, le=36500)


class Settings(BaseSettings):
    """Everything Keystead reads from its environment; the README's configuration table
    says what each setting means (``KEYSTEAD_`` and the name in capitals)."""

    model_config = SettingsConfigDict(env_prefix="KEYSTEAD_", frozen=True, extra="forbid")

    data_dir: Path = Path("keystead-data")
    database_url: str | None = None  # postgresql://… selects PostgreSQL; default: SQLite
    master_key: SecretStr | None = None  # 32 bytes in base64
    master_key_file: Path | None = None  # default: data_dir/master.key
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    public_url: str | None = None
    trusted_proxies: str = ""  # comma-separated addresses or networks; empty: none
    tls_cert_file: Path | None = None  # unset: plain HTTP, for a TLS-terminating proxy
    tls_key_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    signature_skew_seconds: int = Field(default=300, ge=1, le=86400)
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60)
    jwks_cache_seconds: int = Field(default=3600, ge=1)
    jwks_refetch_cooldown_seconds: int = Field(default=300, ge=0)
    idp_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    usage_entries_per_minute: int = Field(default=1000, ge=1)
    usage_entries_per_day: int = Field(default=50_000, ge=1)
    usage_entries_per_account_day: int = Field(default=1_000_000, ge=1)
    # Days each kind of record is kept (0: forever); pruning is `retention.py`.
    retention_provisioning_days: int = _days(90)
    retention_usage_days: int = _days(400)
    retention_sign_in_failures_days: int = _days(7)
    retention_audit_days: int = _days(0)
    lookup_keep_ms: int = Field(default=50, ge=0, le=100)  # PostgreSQL only; 0: never kept
    prune_interval_seconds: int = Field(default=3600, ge=0)  # 0: never (`keystead prune`)
    idp_allow_private_addresses: bool = False
    metrics: bool = False
    metrics_token: SecretStr | None = None

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
