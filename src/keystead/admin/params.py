"""The admin API's query parameters, with their bounds (FastAPI's: the CLI, which prints
the admin JSON through `schemas`, never imports FastAPI)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

# Event ids are 64-bit integers on both engines; a bound outside that range cannot even be
# compared with them (SQLite cannot bind it, PostgreSQL refuses it), so it is a 422.
BeforeId = Annotated[
    int | None, Query(ge=-(2**63), le=2**63 - 1, description="Events with a smaller id (paging)")
]


PageLimit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
PageOffset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip")]
SearchText = Annotated[
    str | None, Query(max_length=256, description="Case-insensitive part of the name")
]
