"""Admin emails are unique per account; a dataset group can be pinned to a directory group;
API keys can be suspended; usage reports are bounded per key and account (counters, and
a table of what was refused)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_admins_email"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_admins_account_id_email"), ["account_id", "email"]
        )
        batch_op.create_index(batch_op.f("ix_admins_email"), ["email"])
    with op.batch_alter_table("dataset_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_group_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("pinned_group_external_id", sa.String(length=256), nullable=True)
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suspended_by", sa.String(length=256), nullable=True))
    op.create_table(
        "usage_counters",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("span", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "span", name=op.f("pk_usage_counters")),
    )
    op.create_table(
        "usage_refusals",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("reported_by", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_usage_refusals_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "reported_by", "day", name=op.f("pk_usage_refusals")),
    )


def downgrade() -> None:
    op.drop_table("usage_refusals")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_admins_email"))
        batch_op.drop_constraint(batch_op.f("uq_admins_account_id_email"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_admins_email"), ["email"])
    op.drop_table("usage_counters")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("suspended_by")
        batch_op.drop_column("suspended_at")
        batch_op.drop_column("suspended")
    with op.batch_alter_table("dataset_groups", schema=None) as batch_op:
        batch_op.drop_column("pinned_group_external_id")
        batch_op.drop_column("pinned_group_id")
