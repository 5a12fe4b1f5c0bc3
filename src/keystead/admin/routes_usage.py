"""Usage reported by the Ubiq clients, summarised per day, dataset, key and action."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from keystead.admin.auth import Reader, RuntimeDep
from keystead.admin.schemas import UsageRefusedOut, UsageRowOut
from keystead.dataplane import events, usage_limits
from keystead.errors import InvalidInput

router = APIRouter(tags=["usage"])


CSV_COLUMNS = ("day", "dataset", "dataset_type", "api_key", "api_key_name", "action", "count")


@dataclass(frozen=True)
class Days:
    """The days (UTC, both included) a usage listing covers."""

    since: Annotated[date | None, Query(description="First day (UTC) to include")] = None
    until: Annotated[date | None, Query(description="Last day (UTC) to include")] = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidInput(f"until ({self.until}) is before since ({self.since})")


@dataclass(frozen=True)
class Filter(Days):
    """The days, dataset and key whose usage is listed."""

    dataset: Annotated[str | None, Query(max_length=256)] = None
    api_key: Annotated[str | None, Query(max_length=64, description="Access key id")] = None


def _rows(runtime: RuntimeDep, principal: Reader, wanted: Filter) -> list[UsageRowOut]:
    with runtime.db.read() as session:
        rows = events.summary(session, account_id=principal.account_id, **asdict(wanted))
    return [UsageRowOut(**row.model_dump()) for row in rows]


@router.get("/usage")
def usage_summary(
    principal: Reader, runtime: RuntimeDep, wanted: Annotated[Filter, Depends()]
) -> list[UsageRowOut]:
    """Operations reported by the clients, per day, dataset, key and action."""
    return _rows(runtime, principal, wanted)


@router.get("/usage/refused")
def usage_refused(
    principal: Reader, runtime: RuntimeDep, days: Annotated[Days, Depends()]
) -> list[UsageRefusedOut]:
    """Usage reports refused because their key passed its limits (entries per minute or
    per day), per day and reporting key: those entries were not stored."""
    with runtime.db.read() as session:
        rows = usage_limits.refusals(session, account_id=principal.account_id, **asdict(days))
    return [UsageRefusedOut(**row.model_dump()) for row in rows]


@router.get(
    "/usage.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The same rows as CSV"}},
)
def usage_csv(
    principal: Reader, runtime: RuntimeDep, wanted: Annotated[Filter, Depends()]
) -> Response:
    """``GET /usage`` as a CSV file (one header line, then one line per row)."""
    buffer = io.StringIO()
    # Every cell quoted: a spreadsheet whose list separator is ';' must not split a name
    # that holds one (and start a formula mid-name).
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for row in _rows(runtime, principal, wanted):
        writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
    name = f"keystead-usage-{wanted.since or 'start'}-to-{wanted.until or 'today'}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (names come from clients
    and admins)."""
    text = "" if value is None else str(value)
    formula = text.lstrip(" \t\r\n")[:1] in ("=", "+", "-", "@")
    return "'" + text if formula or text[:1] in ("\t", "\r", "\n", " ") else text
