"""directory sync: idp settings, provisioning log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idp_settings",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("scim_token_hash", sa.String(length=64), nullable=True),
        sa.Column("scim_token_hint", sa.String(length=16), nullable=True),
        sa.Column("scim_token_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_idp_settings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_idp_settings")),
        sa.UniqueConstraint("scim_token_hash", name=op.f("uq_idp_settings_scim_token_hash")),
    )
    op.create_table(
        "provisioning_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("resource_type", sa.String(length=20), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("resource_name", sa.String(length=256), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("scim_type", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_provisioning_events_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_events")),
    )
    with op.batch_alter_table("provisioning_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provisioning_events_account_id_id"), ["account_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("provisioning_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provisioning_events_account_id_id"))

    op.drop_table("provisioning_events")
    op.drop_table("idp_settings")
