"""Website visitors: a `visitors` table beside `usuarios` (whose columns stay untouched).

Every step checks what exists first, as 0001 and 0002 do (MariaDB DDL is not transactional). No
foreign key to `usuarios`: as for every table of ours, the adopted table's engine and collation
are the old service's, and MariaDB refuses a key between columns of different collations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from models.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    options: dict[str, Any] = MYSQL_TABLE if bind.dialect.name == "mysql" else {}
    if "visitors" not in set(inspector.get_table_names()):
        op.create_table(
            "visitors",
            sa.Column("user", sa.String(32), primary_key=True),
            sa.Column("external_id", sa.String(255), nullable=True),
            sa.Column("external_key", sa.String(64), nullable=True),
            sa.Column("email", sa.String(254), nullable=True),
            sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.UniqueConstraint("external_key", name="uq_visitors_external_key"),
            **options,
        )


def downgrade() -> None:
    op.drop_table("visitors")
