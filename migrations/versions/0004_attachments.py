"""Attachments: uploaded files, each claimed by at most one message.

Every step checks what exists first, as 0001 and 0002 do (MariaDB DDL is not transactional).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from models.attachment import ExactId
from models.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    options: dict[str, Any] = MYSQL_TABLE if bind.dialect.name == "mysql" else {}
    if "attachments" not in set(inspector.get_table_names()):
        op.create_table(
            "attachments",
            sa.Column("id", ExactId, primary_key=True),
            sa.Column("uploader", sa.String(32), nullable=False),
            sa.Column("message_id", sa.BigInteger, nullable=True),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("content_type", sa.String(127), nullable=False),
            sa.Column("width", sa.Integer, nullable=True),
            sa.Column("height", sa.Integer, nullable=True),
            sa.Column("storage_key", sa.String(64), nullable=False),
            sa.Column("thumbnail_key", sa.String(64), nullable=True),
            sa.Column("thumbnail_type", sa.String(32), nullable=True),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            **options,
        )
    inspector.clear_cache()
    indexes = {i["name"] for i in inspector.get_indexes("attachments") if i["name"]}
    if "ix_attachments_message_id" not in indexes:
        op.create_index("ix_attachments_message_id", "attachments", ["message_id", "created_at"])


def downgrade() -> None:
    op.drop_table("attachments")
