"""a directory user is bound to the Entra object id of its first successful sign-in

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_object_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("directory_users", schema=None) as batch_op:
        batch_op.drop_column("pinned_object_id")
