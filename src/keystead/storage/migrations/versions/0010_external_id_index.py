"""Directory users and groups are looked up by externalId through an index (a SCIM filter
`externalId eq "…"` is then a point read, like userName and displayName)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("directory_users", "directory_groups"):
        op.create_index(f"ix_{table}_account_id_external_id", table, ["account_id", "external_id"])


def downgrade() -> None:
    for table in ("directory_users", "directory_groups"):
        op.drop_index(f"ix_{table}_account_id_external_id", table_name=table)
