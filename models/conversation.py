"""The team's state of each conversation, its history for reports, the admins' availability and
the team's canned responses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base
from models.types import BigId, LongText, UtcDateTime

OPEN = "open"
PENDING = "pending"
SNOOZED = "snoozed"
RESOLVED = "resolved"
STATUSES = (OPEN, PENDING, SNOOZED, RESOLVED)
# What counts against an admin's capacity, and what `open_assigned` counts.
ACTIVE = (OPEN, PENDING)

# conversation_events.kind
OPENED = "opened"  # the first user message, or one that reopens a resolved conversation
FIRST_REPLY = "first_reply"  # the first admin reply (not a note) after an opening
RESOLVED_EVENT = "resolved"


class ConversationState(Base):
    """One row per conversation (per user who has a message with the team), written in the
    transaction of the messages that change it."""

    __tablename__ = "conversations"

    user: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    assignee: Mapped[str | None] = mapped_column(String(32), nullable=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The newest message (notes included): the inbox's order and its paging cursor.
    last_message_id: Mapped[int] = mapped_column(BigInteger)
    # The message that last made it open (its place in the queue for auto-assignment), or
    # None while no user message has opened it (an admin wrote first).
    opened_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # When the current opening began, until it is resolved (resolution time is measured from it).
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # No admin reply (notes aside) since the opening yet: the next one is the first response.
    awaiting_reply: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_conversations_activity", "last_message_id"),
        Index("ix_conversations_status_activity", "status", "last_message_id"),
        Index("ix_conversations_assignee_activity", "assignee", "last_message_id"),
        Index("ix_conversations_queue", "status", "assignee", "opened_id"),
        Index("ix_conversations_snoozed", "status", "snoozed_until"),
    )


class ConversationLabel(Base):
    __tablename__ = "conversation_labels"

    conversation: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = (Index("ix_conversation_labels_label", "label", "conversation"),)


class ConversationEvent(Base):
    """Openings, first replies and resolutions, each with its time: what reports count."""

    __tablename__ = "conversation_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    admin: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # first_reply: since the opening; resolved: since the opening (None when it was resolved
    # again after an admin reopened it, which is no opening).
    seconds: Mapped[float | None] = mapped_column(Double, nullable=True)

    __table_args__ = (Index("ix_conversation_events_kind_at", "kind", "at"),)


class Agent(Base):
    """An admin's part in auto-assignment. No row: available, never assigned yet."""

    __tablename__ = "agents"

    user: Mapped[str] = mapped_column(String(32), primary_key=True)
    available: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The assignment round in which this admin was last given a conversation (taking turns).
    last_assigned: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class AssignmentLock(Base):
    """One row whose lock every auto-assignment takes: one assignment at a time, everywhere.
    `counter` numbers the rounds."""

    __tablename__ = "assignment_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)


class CannedResponse(Base):
    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shortcut: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("shortcut", name="uq_canned_responses_shortcut"),)
