"""console: CSRF derived from the session, sign-in throttling, configuration test result,
last SCIM contact and refusal, unverified sign-in refusals counted, provisioning-log index
for failures by time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sessions made before this revision carry a CSRF token that is no longer derivable;
    # their admins sign in again.
    op.execute(sa.text("DELETE FROM admin_sessions"))
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.drop_column("csrf_hash")
    op.create_table(
        "sign_in_failures",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", "subject", name=op.f("pk_sign_in_failures")),
    )
    with op.batch_alter_table("idp_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_test_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_test_ok", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("scim_last_seen_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("scim_last_refused_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("unverified_refusals", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("unverified_refusal_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index(
        op.f("ix_provisioning_events_account_id_outcome_at"),
        "provisioning_events",
        ["account_id", "outcome", "at"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_provisioning_events_account_id_outcome_at"), table_name="provisioning_events"
    )
    with op.batch_alter_table("idp_settings", schema=None) as batch_op:
        batch_op.drop_column("unverified_refusal_at")
        batch_op.drop_column("unverified_refusals")
        batch_op.drop_column("scim_last_refused_at")
        batch_op.drop_column("scim_last_seen_at")
        batch_op.drop_column("last_test_ok")
        batch_op.drop_column("last_test_at")
    op.drop_table("sign_in_failures")
    op.execute(sa.text("DELETE FROM admin_sessions"))
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("csrf_hash", sa.String(length=64), nullable=False))
