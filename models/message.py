"""Stored messages, shared read markers and revoked token ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    Select,
    String,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import (
    Mapped,
    aliased,
    mapped_column,
    query_expression,
    relationship,
    selectinload,
    with_expression,
)

from models.attachment import Attachment
from models.db import Base
from models.types import BigId, ExactString64, LongText, UtcDateTime
from models.user import User

ADMINS = "admins"
NOT_YET = datetime.min.replace(tzinfo=UTC)  # a `Posted`'s created_at before its commit


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sender: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(32))  # a user name or "admins"
    # The user (non-admin side) whose conversation with the team this message belongs to.
    conversation: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    client_msg_id: Mapped[str | None] = mapped_column(ExactString64, nullable=True)
    # A private note of the team: stored in the conversation, shown to admins only.
    note: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The sender's display name, read with the message by `with_sender_name` (None when the
    # query did not ask for it, or the sender is gone).
    sender_name: Mapped[str | None] = query_expression()
    # Read with the message by `with_sender_name` (one query for a whole list); reading it on
    # a message loaded otherwise raises rather than querying once per message.
    attachments: Mapped[list[Attachment]] = relationship(
        primaryjoin="foreign(Attachment.message_id) == Message.id",
        order_by=(Attachment.created_at, Attachment.id),
        lazy="raise",
        viewonly=True,
    )

    __table_args__ = (
        UniqueConstraint("sender", "client_msg_id", name="uq_messages_sender_client_msg_id"),
        Index("ix_messages_conversation_id", "conversation", "id"),
        Index("ix_messages_created_at", "created_at"),  # reports over a period
    )


AnySelect = TypeVar("AnySelect", bound=Select[Any])


def with_sender_name(stmt: AnySelect) -> AnySelect:
    """`stmt` reading each message's `sender_name` too (a primary-key lookup per row), and its
    `attachments` (one more query for all the messages read, none when there are none)."""
    sender = aliased(User)  # the query may join usuarios for another reason
    name = (
        select(sender.name)
        .where(sender.user == Message.sender)
        .correlate_except(sender)
        .scalar_subquery()
    )
    return stmt.options(
        with_expression(Message.sender_name, name), selectinload(Message.attachments)
    )


@dataclass(slots=True)
class Posted:
    """A message the send path stores: the columns of `Message` in a plain object, since
    `GroupWriter` inserts with Core and an ORM object's bookkeeping (an `InstanceState`,
    instrumented attributes, init events) was ~3% of the CPU of a message. `id` and
    `created_at` are set by the commit."""

    sender: str
    recipient: str
    conversation: str
    text: str
    client_msg_id: str | None
    sender_name: str | None = None
    note: bool = False
    id: int = 0
    created_at: datetime = NOT_YET
    # Set by the commit when this batch changed its conversation's state (not only its
    # activity): the sender then announces the conversation (`conversation` event).
    changed: bool = False
    # Claimed by the commit that stores the message (`GroupWriter`), in the order they are
    # read back; none for almost every message.
    attachments: Sequence[Attachment] = ()


# A stored message as its readers see it: a row read back, or what the send path stored.
StoredMessage = Message | Posted


READER_ADMINS = "admins"  # ReadMarker.reader: the team, whose read state is shared
READER_USER = "user"


class ReadMarker(Base):
    """How far one side of a conversation has read: reader "admins" (the team) or "user"."""

    __tablename__ = "read_markers"

    conversation: Mapped[str] = mapped_column(String(32), primary_key=True)
    reader: Mapped[str] = mapped_column(String(10), primary_key=True)
    up_to: Mapped[int] = mapped_column(BigInteger, default=0)


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class CommitLock(Base):
    """One row whose lock every message insert takes, so that id order is commit order."""

    __tablename__ = "message_commit_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)
