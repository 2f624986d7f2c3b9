"""Initial schema: adopt or create `usuarios`; messages, read markers, revocations.

Every step checks what exists first: MariaDB DDL is not transactional, so a run cut short
must be able to finish on the next start, and the old service's `usuarios` is adopted in place.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from models.types import BigId, ExactString64, LongText, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    table_options: dict[str, Any] = MYSQL_TABLE if dialect == "mysql" else {}

    if "usuarios" not in tables:
        user_type = sa.String(32, collation="NOCASE") if dialect == "sqlite" else sa.String(32)
        op.create_table(
            "usuarios",
            sa.Column("user", user_type, primary_key=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("rol", sa.String(10), nullable=False, server_default="user"),
            sa.Column("password", sa.String(255), nullable=False),
            **table_options,
        )
    else:
        _widen_password_column(inspector, dialect)
    if dialect == "postgresql":
        # Names are unique without regard to case (the old MySQL collation's behaviour).
        op.execute(
            'CREATE UNIQUE INDEX IF NOT EXISTS ix_usuarios_user_lower ON usuarios (lower("user"))'
        )

    if "messages" not in tables:
        op.create_table(
            "messages",
            sa.Column("id", BigId, primary_key=True, autoincrement=True),
            sa.Column("sender", sa.String(32), nullable=False),
            sa.Column("recipient", sa.String(32), nullable=False),
            sa.Column("conversation", sa.String(32), nullable=False),
            sa.Column("text", LongText, nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("client_msg_id", ExactString64, nullable=True),
            sa.UniqueConstraint("sender", "client_msg_id", name="uq_messages_sender_client_msg_id"),
            **table_options,
        )
    if "ix_messages_conversation_id" not in _indexes(inspector, "messages"):
        op.create_index("ix_messages_conversation_id", "messages", ["conversation", "id"])

    if "read_markers" not in tables:
        op.create_table(
            "read_markers",
            sa.Column("conversation", sa.String(32), primary_key=True),
            sa.Column("reader", sa.String(10), primary_key=True),
            sa.Column("up_to", sa.BigInteger, nullable=False, server_default="0"),
            **table_options,
        )

    if "revoked_tokens" not in tables:
        op.create_table(
            "revoked_tokens",
            sa.Column("jti", sa.String(64), primary_key=True),
            sa.Column("expires_at", UtcDateTime(), nullable=False),
            **table_options,
        )
    if "ix_revoked_tokens_expires_at" not in _indexes(inspector, "revoked_tokens"):
        op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])

    if "message_commit_lock" not in tables:
        lock = op.create_table(
            "message_commit_lock",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("counter", sa.BigInteger, nullable=False, server_default="0"),
            **table_options,
        )
        op.bulk_insert(lock, [{"id": 1, "counter": 0}])


def downgrade() -> None:
    # `usuarios` is never dropped: it may hold the old service's users.
    for table in ("message_commit_lock", "revoked_tokens", "read_markers", "messages"):
        op.drop_table(table)


def _indexes(inspector: sa.Inspector, table: str) -> set[str]:
    inspector.clear_cache()
    if not inspector.has_table(table):
        return set()
    return {i["name"] for i in inspector.get_indexes(table) if i["name"]}


def _widen_password_column(inspector: sa.Inspector, dialect: str) -> None:
    """Old bcrypt hashes fit in 60 characters; argon2id hashes need about 100."""
    for column in inspector.get_columns("usuarios"):
        length = getattr(column["type"], "length", None)
        if column["name"] == "password" and length is not None and length < 255:
            if dialect == "mysql":
                op.alter_column(
                    "usuarios",
                    "password",
                    existing_type=column["type"],
                    type_=mysql.VARCHAR(255),
                    existing_nullable=column["nullable"],
                )
            elif dialect == "postgresql":
                op.alter_column("usuarios", "password", type_=sa.String(255))
            # SQLite ignores VARCHAR lengths.
