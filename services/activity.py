"""What stored messages do to their conversations, written in the same transaction as the
messages (`GroupWriter`): the newest activity, a user message reopening a conversation, the
first reply after an opening, and the events reports count.

A batch usually changes nothing but `last_message_id`: a user writing in an open conversation,
an admin replying after the first reply, a note. That takes one UPDATE for the whole batch, whose
WHERE holds exactly when nothing else changes. A conversation it does not match (new, reopened,
awaiting its first reply) is read under a row lock and written one by one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, case, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from models.conversation import (
    FIRST_REPLY,
    OPEN,
    OPENED,
    RESOLVED,
    ConversationEvent,
    ConversationState,
)
from models.message import ADMINS, Posted
from services.metrics import FIRST_RESPONSE_SECONDS

CONVERSATIONS = cast(Table, ConversationState.__table__)
EVENTS = cast(Table, ConversationEvent.__table__)


def _from_user(message: Posted) -> bool:
    return message.recipient == ADMINS


def _reply(message: Posted) -> bool:
    return message.recipient != ADMINS and not message.note


async def record_activity(
    conn: AsyncConnection, messages: Sequence[Posted], now: datetime
) -> list[str]:
    """Bring the conversations of `messages` (ids set, in id order) up to date; the names of
    those whose state changed (created, reopened, or opened by the user's first message): for
    the `conversation` event and auto-assignment."""
    by_conversation: dict[str, list[Posted]] = {}
    for message in messages:
        by_conversation.setdefault(message.conversation, []).append(message)
    last = {c: ms[-1].id for c, ms in by_conversation.items()}
    # Where nothing but the activity changes: user messages in an open conversation that a
    # user opened; replies after the first one since the opening; both; notes alone.
    users: list[str] = []
    replied: list[str] = []
    both: list[str] = []
    quiet: list[str] = []
    for conversation, batch in by_conversation.items():
        from_user = any(_from_user(m) for m in batch)
        reply = any(_reply(m) for m in batch)
        group = both if from_user and reply else users if from_user else replied if reply else quiet
        group.append(conversation)
    c = CONVERSATIONS.c
    opened = and_(c.status == OPEN, c.opened_id.is_not(None))
    answered = c.awaiting_reply.is_(False)
    matches = []
    if users:
        matches.append(and_(c.user.in_(users), opened))
    if replied:
        matches.append(and_(c.user.in_(replied), answered))
    if both:
        matches.append(and_(c.user.in_(both), opened, answered))
    if quiet:
        matches.append(c.user.in_(quiet))
    whens: list[Any] = _padded(last)  # (value, result) pairs, which case() takes with `value`
    result = await conn.execute(
        update(CONVERSATIONS)
        .where(or_(*matches))
        .values(last_message_id=case(*whens, value=c.user))
    )
    slow: list[str] = []
    if result.rowcount != len(by_conversation):
        rows = await conn.execute(
            select(c.user, c.last_message_id).where(c.user.in_(list(by_conversation)))
        )
        done = {user for user, last_id in rows.all() if last_id == last[user]}
        slow = [u for u in by_conversation if u not in done]
    changed = []
    for conversation in slow:
        if await _careful(conn, conversation, by_conversation[conversation], now):
            changed.append(conversation)
    return changed


async def _careful(
    conn: AsyncConnection, conversation: str, batch: list[Posted], now: datetime
) -> bool:
    """Apply `batch` to one conversation, message by message, under its row lock. Whether more
    than its activity changed (see `record_activity`)."""
    c = CONVERSATIONS.c
    row = (
        await conn.execute(
            select(c.status, c.opened_id, c.opened_at, c.awaiting_reply, c.snoozed_until)
            .where(c.user == conversation)
            .with_for_update()
        )
    ).first()
    exists = row is not None
    status, opened_id, opened_at, awaiting, snoozed_until = (
        (OPEN, None, None, False, None) if row is None else tuple(row)
    )
    before = (status, opened_id)
    events: list[dict[str, object]] = []
    for message in batch:
        if _from_user(message):
            if status == RESOLVED or opened_id is None:  # an opening
                opened_at, awaiting = now, True
                events.append(_event(conversation, OPENED, now))
            if status != OPEN or opened_id is None:
                status, opened_id, snoozed_until = OPEN, message.id, None
        elif _reply(message) and awaiting:
            awaiting = False
            seconds = None if opened_at is None else (now - opened_at).total_seconds()
            events.append(_event(conversation, FIRST_REPLY, now, message.sender, seconds))
            if seconds is not None:
                FIRST_RESPONSE_SECONDS.observe(seconds)
    values = {
        "status": status,
        "opened_id": opened_id,
        "opened_at": opened_at,
        "awaiting_reply": awaiting,
        "snoozed_until": snoozed_until,
        "last_message_id": batch[-1].id,
    }
    if exists:
        await conn.execute(update(CONVERSATIONS).where(c.user == conversation).values(values))
    else:
        await conn.execute(insert(CONVERSATIONS).values(user=conversation, **values))
    if events:
        await conn.execute(insert(EVENTS), events)
    return not exists or (status, opened_id) != before


def _event(
    conversation: str,
    kind: str,
    at: datetime,
    admin: str | None = None,
    seconds: float | None = None,
) -> dict[str, object]:
    return {
        "conversation": conversation,
        "kind": kind,
        "at": at,
        "admin": admin,
        "seconds": seconds,
    }


def _padded(last: dict[str, int]) -> list[tuple[str, int]]:
    """`last`'s pairs, the last one repeated up to a power of two: the statement then has one
    of a few shapes, each compiled once and kept in SQLAlchemy's statement cache, instead of
    one shape per batch size crowding that cache."""
    pairs = list(last.items())
    size = 1 << (len(pairs) - 1).bit_length()
    return pairs + [pairs[-1]] * (size - len(pairs))
