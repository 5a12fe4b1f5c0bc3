"""Usage events (``POST /api/v3/tracking/events``): validation, storage, daily summaries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from keystead.errors import BadRequest
from keystead.storage.models import ApiKey, UsageEvent

MAX_ENTRIES = 1000
MAX_USER_DEFINED_BYTES = 1024  # what an application tags its usage with; stored per entry
MAX_KEY_NUMBER = 2**31 - 1


class UsageEntry(BaseModel):
    """One aggregated entry as the client sends it; unknown fields are tolerated (pydantic's
    default, as in the report)."""

    datasets: str = Field(max_length=256)
    dataset_type: Literal["structured", "unstructured"]
    api_key: str = Field(max_length=64)
    count: int = Field(ge=0, le=2**53)
    key_number: int | None = Field(default=None, ge=0, le=MAX_KEY_NUMBER)  # a 32-bit column
    action: Literal["encrypt", "decrypt"]
    product: str | None = Field(default=None, max_length=100)
    product_version: str | None = Field(default=None, max_length=40)
    first_call_timestamp: datetime | None = None
    last_call_timestamp: datetime | None = None
    user_defined: Any = None

    @field_validator("key_number", mode="before")
    @classmethod
    def _int_or_decimal_string(cls, value: Any) -> Any:
        # The client echoes key_number as the server sent it: integer or decimal string.
        if isinstance(value, str) and value.isascii() and value.isdigit():
            # More digits than the largest key number has fail its bound unconverted (Python
            # refuses to convert more than 4,300 digits, and its message is no client's).
            return int(value) if len(value) <= len(str(MAX_KEY_NUMBER)) else MAX_KEY_NUMBER + 1
        return value

    @field_validator("user_defined")
    @classmethod
    def _small(cls, value: Any) -> Any:
        # The entries a key may store are counted; their size must be bounded too.
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        if len(encoded) > MAX_USER_DEFINED_BYTES:
            raise ValueError(
                f"is {len(encoded)} bytes once encoded; at most {MAX_USER_DEFINED_BYTES}"
            )
        return value

    @field_validator("first_call_timestamp", "last_call_timestamp")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """In UTC (no zone means UTC), as stored and summarised. A time near year 1 or 9999
        whose offset moves it past either has no UTC form: refused here, not at the INSERT."""
        if value is None:
            return None
        try:
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None


class UsageReport(BaseModel):
    usage: list[UsageEntry] = Field(max_length=MAX_ENTRIES)


def parse_report(raw: Any) -> UsageReport:
    try:
        return UsageReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"usage report is not valid: {where}: {first['msg']}") from exc


def record(
    session: Session, *, account_id: uuid.UUID, reported_by: str, report: UsageReport
) -> tuple[int, int]:
    """Store the entries that name keys of this account; returns (stored, ignored)."""
    named = {entry.api_key for entry in report.usage}
    accounts_keys = select(ApiKey.access_key_id).where(ApiKey.account_id == account_id)
    ours = set(session.scalars(accounts_keys.where(ApiKey.access_key_id.in_(named))))
    stored = 0
    for entry in report.usage:
        if entry.api_key not in ours:
            continue
        first, last = entry.first_call_timestamp, entry.last_call_timestamp
        day = (last or first or datetime.now(UTC)).date()
        session.add(
            UsageEvent(
                account_id=account_id,
                reported_by=reported_by,
                api_key=entry.api_key,
                dataset=entry.datasets,
                dataset_type=entry.dataset_type,
                action=entry.action,
                count=entry.count,
                key_number=entry.key_number,
                product=entry.product,
                product_version=entry.product_version,
                first_call_at=first,
                last_call_at=last,
                day=day,
                user_defined=entry.user_defined,
            )
        )
        stored += 1
    return stored, len(report.usage) - stored


class UsageSummaryRow(BaseModel):
    day: date
    dataset: str
    dataset_type: str
    api_key: str
    api_key_name: str | None = None  # None once the key is deleted
    action: str
    count: int


def summary(
    session: Session,
    *,
    account_id: uuid.UUID,
    since: date | None = None,
    until: date | None = None,
    dataset: str | None = None,
    api_key: str | None = None,
) -> list[UsageSummaryRow]:
    """Totals per day, dataset, key and action (newest day first); ``since`` and
    ``until`` are days (UTC), both included."""
    per = (
        UsageEvent.day,
        UsageEvent.dataset,
        UsageEvent.dataset_type,
        UsageEvent.api_key,
        UsageEvent.action,
    )
    totals = select(
        *per,
        # Summed as floating point: a 64-bit integer SUM overflows on SQLite (an error, not
        # a wrap) once reports add up past 2**63, which clients alone could make happen.
        func.sum(cast(UsageEvent.count, Float)).label("total"),
    ).where(UsageEvent.account_id == account_id)
    if since is not None:
        totals = totals.where(UsageEvent.day >= since)
    if until is not None:
        totals = totals.where(UsageEvent.day <= until)
    if dataset is not None:
        totals = totals.where(UsageEvent.dataset == dataset)
    if api_key is not None:
        totals = totals.where(UsageEvent.api_key == api_key)
    grouped = totals.group_by(*per).subquery()
    query = (
        select(grouped, ApiKey.name.label("api_key_name"))
        .outerjoin(
            ApiKey,
            (ApiKey.access_key_id == grouped.c.api_key) & (ApiKey.account_id == account_id),
        )
        .order_by(grouped.c.day.desc(), grouped.c.dataset, grouped.c.api_key, grouped.c.action)
    )
    return [
        UsageSummaryRow.model_validate(
            {**row._mapping, "count": min(int(row.total or 0), 2**63 - 1)}
        )
        for row in session.execute(query)
    ]
