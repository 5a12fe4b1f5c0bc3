"""sign in with the identity provider: token settings, account CA, token groups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idp_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discovery_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("issuer", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("audience", sa.String(length=512), nullable=True))
        batch_op.add_column(
            sa.Column(
                "username_claim",
                sa.String(length=64),
                nullable=False,
                server_default="unique_name",
            )
        )
        batch_op.add_column(
            sa.Column("leeway_seconds", sa.Integer(), nullable=False, server_default="60")
        )
        batch_op.add_column(
            sa.Column("cert_ttl_seconds", sa.Integer(), nullable=False, server_default="3600")
        )
        batch_op.add_column(
            sa.Column(
                "group_policy", sa.String(length=32), nullable=False, server_default="directory"
            )
        )
        batch_op.add_column(sa.Column("ca_cert_pem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ca_key_wrapped", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "token_groups_enforced",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    op.create_table(
        "sso_token_groups",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("group_ref", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_sso_token_groups_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "group_ref", name=op.f("pk_sso_token_groups")),
    )


def downgrade() -> None:
    op.drop_table("sso_token_groups")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("token_groups_enforced")
    with op.batch_alter_table("idp_settings", schema=None) as batch_op:
        for column in (
            "ca_key_wrapped",
            "ca_cert_pem",
            "group_policy",
            "cert_ttl_seconds",
            "leeway_seconds",
            "username_claim",
            "audience",
            "issuer",
            "discovery_url",
        ):
            batch_op.drop_column(column)
