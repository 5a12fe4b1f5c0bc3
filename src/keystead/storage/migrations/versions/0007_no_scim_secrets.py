"""directory users keep no write-only or never-returned SCIM attribute (a password Entra
may send): rows stored before are cleaned

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The User schema's write-only / never-returned attributes (scim2-models' User model);
# fixed here, as a migration must not change meaning when a library does.
SECRETS = ("password",)
BATCH = 1000

users = sa.table(
    "directory_users",
    sa.column("id", sa.Uuid()),
    sa.column("attributes", sa.JSON()),
)


def upgrade() -> None:
    connection = op.get_bind()
    last = None
    while True:
        query = sa.select(users.c.id, users.c.attributes).order_by(users.c.id).limit(BATCH)
        if last is not None:
            query = query.where(users.c.id > last)
        rows = connection.execute(query).all()
        if not rows:
            return
        for user_id, attributes in rows:
            if isinstance(attributes, dict) and any(key in attributes for key in SECRETS):
                kept = {k: v for k, v in attributes.items() if k not in SECRETS}
                connection.execute(
                    users.update().where(users.c.id == user_id).values(attributes=kept)
                )
        last = rows[-1][0]


def downgrade() -> None:
    pass  # what was dropped is gone on purpose
