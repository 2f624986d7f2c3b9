"""Team workflow: conversation state (status, assignee, labels, snooze), its events for reports,
admins' availability, canned responses, private notes, and an index for reports by period.

Every step checks what exists first, as 0001 does (MariaDB DDL is not transactional). A database
upgraded from 0001 gets one `open`, unassigned conversation per user with messages; reports count
from the upgrade on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from models.types import BigId, LongText, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL_TABLE: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}

CONVERSATION_INDEXES = {
    "ix_conversations_activity": ["last_message_id"],
    "ix_conversations_status_activity": ["status", "last_message_id"],
    "ix_conversations_assignee_activity": ["assignee", "last_message_id"],
    "ix_conversations_queue": ["status", "assignee", "opened_id"],
    "ix_conversations_snoozed": ["status", "snoozed_until"],
}


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    options: dict[str, Any] = MYSQL_TABLE if dialect == "mysql" else {}

    if "note" not in {c["name"] for c in inspector.get_columns("messages")}:
        op.add_column(
            "messages",
            sa.Column("note", sa.Boolean, nullable=False, server_default=sa.false()),
        )
    if "ix_messages_created_at" not in _indexes(inspector, "messages"):
        op.create_index("ix_messages_created_at", "messages", ["created_at"])

    if "conversations" not in tables:
        conversations = op.create_table(
            "conversations",
            sa.Column("user", sa.String(32), primary_key=True),
            sa.Column("status", sa.String(10), nullable=False, server_default="open"),
            sa.Column("assignee", sa.String(32), nullable=True),
            sa.Column("snoozed_until", UtcDateTime(), nullable=True),
            sa.Column("last_message_id", sa.BigInteger, nullable=False),
            sa.Column("opened_id", sa.BigInteger, nullable=True),
            sa.Column("opened_at", UtcDateTime(), nullable=True),
            sa.Column("awaiting_reply", sa.Boolean, nullable=False, server_default=sa.false()),
            **options,
        )
        messages = sa.table(
            "messages", sa.column("id"), sa.column("sender"), sa.column("conversation")
        )
        # One conversation per user with messages; the user's first message is its opening.
        op.execute(
            conversations.insert().from_select(
                ["user", "status", "last_message_id", "opened_id", "awaiting_reply"],
                sa.select(
                    messages.c.conversation,
                    sa.literal("open"),
                    sa.func.max(messages.c.id),
                    sa.func.min(
                        sa.case(
                            (messages.c.sender == messages.c.conversation, messages.c.id),
                            else_=None,
                        )
                    ),
                    sa.false(),
                ).group_by(messages.c.conversation),
            )
        )
    existing = _indexes(inspector, "conversations")
    for name, columns in CONVERSATION_INDEXES.items():
        if name not in existing:
            op.create_index(name, "conversations", columns)

    if "conversation_labels" not in tables:
        op.create_table(
            "conversation_labels",
            sa.Column("conversation", sa.String(32), primary_key=True),
            sa.Column("label", sa.String(32), primary_key=True),
            **options,
        )
    if "ix_conversation_labels_label" not in _indexes(inspector, "conversation_labels"):
        op.create_index(
            "ix_conversation_labels_label", "conversation_labels", ["label", "conversation"]
        )

    if "conversation_events" not in tables:
        op.create_table(
            "conversation_events",
            sa.Column("id", BigId, primary_key=True, autoincrement=True),
            sa.Column("conversation", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("at", UtcDateTime(), nullable=False),
            sa.Column("admin", sa.String(32), nullable=True),
            sa.Column("seconds", sa.Double, nullable=True),
            **options,
        )
    if "ix_conversation_events_kind_at" not in _indexes(inspector, "conversation_events"):
        op.create_index("ix_conversation_events_kind_at", "conversation_events", ["kind", "at"])

    if "agents" not in tables:
        op.create_table(
            "agents",
            sa.Column("user", sa.String(32), primary_key=True),
            sa.Column("available", sa.Boolean, nullable=False, server_default=sa.true()),
            sa.Column("last_assigned", sa.BigInteger, nullable=False, server_default="0"),
            **options,
        )

    if "assignment_lock" not in tables:
        lock = op.create_table(
            "assignment_lock",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("counter", sa.BigInteger, nullable=False, server_default="0"),
            **options,
        )
        op.bulk_insert(lock, [{"id": 1, "counter": 0}])

    if "canned_responses" not in tables:
        op.create_table(
            "canned_responses",
            sa.Column("id", BigId, primary_key=True, autoincrement=True),
            sa.Column("shortcut", sa.String(32), nullable=False),
            sa.Column("text", LongText, nullable=False),
            sa.Column("created_at", UtcDateTime(), nullable=False),
            sa.Column("updated_at", UtcDateTime(), nullable=False),
            sa.UniqueConstraint("shortcut", name="uq_canned_responses_shortcut"),
            **options,
        )


def downgrade() -> None:
    for table in (
        "canned_responses",
        "assignment_lock",
        "agents",
        "conversation_events",
        "conversation_labels",
        "conversations",
    ):
        op.drop_table(table)
    op.drop_index("ix_messages_created_at", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("note")


def _indexes(inspector: sa.Inspector, table: str) -> set[str]:
    inspector.clear_cache()
    if not inspector.has_table(table):
        return set()
    return {i["name"] for i in inspector.get_indexes(table) if i["name"]}
