"""What stored messages do to their conversations, written in the same transaction as the
messages (`GroupWriter`): the newest activity, a user message reopening a conversation, the
first reply after an opening, and the events reports count.

A batch usually changes nothing but `last_message_id`: a user writing in an open conversation,
an admin replying after the first reply, a note. That takes one UPDATE for the whole batch, whose
WHERE holds exactly when nothing else changes. A conversation it does not match (new, reopened,
awaiting its first reply) is read under a row lock and written one by one."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    Update,
    and_,
    bindparam,
    case,
    insert,
    or_,
    select,
    update,
)
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


class Activity:
    """What a batch of messages does to its conversations: the one UPDATE that holds when
    nothing but the newest activity changes (`statement` with `values()`, once the messages
    have their ids; it matches each such conversation once), and `finish` for the rest. The
    statement has one of a few shapes (`shape`), each built and compiled once, whatever the
    names and ids in it."""

    __slots__ = ("by_conversation", "groups", "shape")

    def __init__(self, messages: Sequence[Posted]) -> None:
        by_conversation: dict[str, list[Posted]] = {}
        for message in messages:
            by_conversation.setdefault(message.conversation, []).append(message)
        self.by_conversation = by_conversation
        # Where nothing but the activity changes: user messages in an open conversation that a
        # user opened; replies after the first one since the opening; both; notes alone.
        groups: dict[str, list[str]] = {"users": [], "replied": [], "both": [], "quiet": []}
        for conversation, batch in by_conversation.items():
            from_user = any(_from_user(m) for m in batch)
            reply = any(_reply(m) for m in batch)
            if from_user and reply:
                groups["both"].append(conversation)
            elif from_user:
                groups["users"].append(conversation)
            else:
                groups["replied" if reply else "quiet"].append(conversation)
        # Each list of names, and the pairs, repeated up to a power of two (see `_padded`).
        self.groups = {group: _padded(names) for group, names in groups.items()}
        whens = 1 << (len(by_conversation) - 1).bit_length()
        self.shape = (*(len(names) for names in self.groups.values()), whens)

    @property
    def statement(self) -> Update:
        return quiet_update(*self.shape)

    def values(self, *, ids: bool = True) -> dict[str, object]:
        """The statement's values: the messages have their ids, or (`ids=False`) the last
        ids are left to the statement (`quiet_update`'s `last`)."""
        values: dict[str, object] = {}
        for group, names in self.groups.items():
            for i, name in enumerate(names):
                values[f"{group}_{i}"] = name
        if not ids:
            return values
        for i, (user, last_id) in enumerate(_padded(list(self._last().items()))):
            values[f"when_{i}"], values[f"then_{i}"] = user, last_id
        return values

    def _last(self) -> dict[str, int]:
        return {c: ms[-1].id for c, ms in self.by_conversation.items()}

    async def finish(self, conn: AsyncConnection, matched: int, now: datetime) -> list[str]:
        """The rest, after `statement` matched `matched` rows: each conversation it did not
        match (new, reopened, awaiting its first reply) is read under its row lock and written
        on its own. The names of those whose state changed (created, reopened, or opened by
        the user's first message): for the `conversation` event and auto-assignment."""
        if matched == len(self.by_conversation):
            return []
        c = CONVERSATIONS.c
        rows = await conn.execute(
            select(c.user, c.last_message_id).where(c.user.in_(list(self.by_conversation)))
        )
        last = self._last()
        done = {user for user, last_id in rows.all() if last_id == last[user]}
        changed = []
        for conversation, batch in self.by_conversation.items():
            if conversation not in done and await _careful(conn, conversation, batch, now):
                changed.append(conversation)
        return changed


@functools.lru_cache(maxsize=256)
def quiet_update(
    users: int,
    replied: int,
    both: int,
    quiet: int,
    whens: int,
    last: ColumnElement[int] | None = None,
) -> Update:
    """`Activity.statement` for conversations in these groups (`users_0`..., `replied_0`...,
    `both_0`..., `quiet_0`...): each matched conversation's `last_message_id` set to the
    `then_i` of its `when_i` (`whens` pairs), or, for a single conversation, to `last` when
    given (an SQL expression)."""
    c = CONVERSATIONS.c

    def names(group: str, count: int) -> list[BindParameter[str]]:
        return [bindparam(f"{group}_{i}", type_=c.user.type) for i in range(count)]

    opened = and_(c.status == OPEN, c.opened_id.is_not(None))
    answered = c.awaiting_reply.is_(False)
    matches = []
    if users:
        matches.append(and_(c.user.in_(names("users", users)), opened))
    if replied:
        matches.append(and_(c.user.in_(names("replied", replied)), answered))
    if both:
        matches.append(and_(c.user.in_(names("both", both)), opened, answered))
    if quiet:
        matches.append(c.user.in_(names("quiet", quiet)))
    if last is not None:
        if users + replied + both + quiet != 1:
            raise ValueError("`last` is for a single conversation")
        return update(CONVERSATIONS).where(or_(*matches)).values(last_message_id=last)
    pairs: list[Any] = [
        (
            bindparam(f"when_{i}", type_=c.user.type),
            bindparam(f"then_{i}", type_=c.last_message_id.type),
        )
        for i in range(whens)
    ]
    return (
        update(CONVERSATIONS)
        .where(or_(*matches))
        .values(last_message_id=case(*pairs, value=c.user))
    )


async def record_activity(
    conn: AsyncConnection, messages: Sequence[Posted], now: datetime
) -> list[str]:
    """Bring the conversations of `messages` (ids set, in id order) up to date, in the
    caller's transaction; the names of those whose state changed (`Activity.finish`)."""
    activity = Activity(messages)
    result = await conn.execute(activity.statement, activity.values())
    return await activity.finish(conn, result.rowcount, now)


async def _careful(
    conn: AsyncConnection, conversation: str, batch: list[Posted], now: datetime
) -> bool:
    """Apply `batch` to one conversation, message by message, under its row lock. Whether more
    than its activity changed (see `Activity.finish`)."""
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


T = TypeVar("T")


def _padded(items: list[T]) -> list[T]:
    """`items`, the last one repeated up to a power of two (none stays none): a statement that
    lists them then has one of a few shapes, each compiled once, instead of one shape per batch
    crowding the caches of compiled statements."""
    if not items:
        return items
    size = 1 << (len(items) - 1).bit_length()
    return items + [items[-1]] * (size - len(items))
