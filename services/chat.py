"""Sending, history, sync, read markers, conversations, typing, announcements: every access
rule of the chat lives here, shared by the HTTP API and the Socket.IO events."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.attachment import Attachment
from models.message import (
    ADMINS,
    READER_ADMINS,
    READER_USER,
    Message,
    Posted,
    ReadMarker,
    StoredMessage,
    with_sender_name,
)
from models.user import Person, same_name, user_named
from services.cluster import Cluster
from services.errors import AppError, Code
from services.fanout import Fanout
from services.inputs import Draft, HistoryQuery, ReadUpTo, Typing
from services.limits import MessageLimit
from services.metrics import MESSAGES_STORED
from services.relay import RelayGate
from services.team import Team
from services.uploads import claimable
from services.wire import SYNC_LIMIT, iso
from services.writer import GroupWriter

log = logging.getLogger(__name__)

# Users are never deleted nor renamed by the server, so a name found once stays valid; the TTL
# bounds how long a row removed by hand in the database would still be written to.
KNOWN_USERS = 10_000
KNOWN_USER_SECONDS = 60.0


class Placed:
    """A message with its place in the commit order (`Chat.place`)."""

    __slots__ = ("_chat", "_committed", "_message")

    def __init__(
        self, chat: Chat, message: StoredMessage, committed: asyncio.Future[None] | None
    ) -> None:
        self._chat, self._message, self._committed = chat, message, committed

    async def stored(self, *, from_sid: str | None = None) -> StoredMessage:
        """The message once committed and handed to its recipients (all but `from_sid`); the
        one stored before for a repeated client_msg_id (delivered then, not again)."""
        if self._committed is None or not isinstance(self._message, Posted):
            return self._message  # stored before: a retry
        return await self._chat._stored(self._message, self._committed, from_sid=from_sid)


class Chat:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        limits: MessageLimit,
        fanout: Fanout,
        cluster: Cluster,
        relay: RelayGate,
        writer: GroupWriter,
        team: Team,
    ) -> None:
        self.settings, self.sessions, self.dialect = settings, sessions, dialect
        self.limits, self.fanout, self.cluster, self.relay = limits, fanout, cluster, relay
        self.writer, self.team = writer, team
        # any ASCII-case spelling of a user's name -> the stored name, of users found to exist
        self._known: TTLCache[str, str] = TTLCache(KNOWN_USERS, KNOWN_USER_SECONDS)

    # -- sending ------------------------------------------------------------------------

    async def place(self, sender: Person, draft: Draft) -> Placed:
        """Check a message (route, relay gate, rate limit) and give it its place in the commit
        order: a message placed after this one is stored after it, and they may share a
        commit. `stored()` then waits for the commit and delivers it. Raises `AppError`
        (nothing placed) for a message that may not be sent."""
        conversation, recipient = await self._route(sender, draft.to)
        if draft.note and not sender.is_admin:
            raise AppError(Code.FORBIDDEN, "Only admins write private notes.")
        await self.relay.admit()  # while another process's listener lags, wait for it
        if not await self.limits.take(sender.user):
            # A retry of a stored message is answered even when the bucket is empty.
            if draft.client_msg_id is not None:
                earlier = await self._sent_before(sender.user, draft.client_msg_id)
                if earlier is not None:
                    return Placed(self, earlier, None)
            raise AppError(Code.RATE_LIMITED, "Too many messages; slow down.")
        attachments: list[Attachment] = []
        if draft.attachments:
            found = await claimable(self.sessions, sender.user, draft.attachments)
            if found is None:
                await self.limits.give_back(sender.user)
                # A resend of a stored message: its attachments are that message's now.
                if draft.client_msg_id is not None:
                    earlier = await self._sent_before(sender.user, draft.client_msg_id)
                    if earlier is not None:
                        return Placed(self, earlier, None)
                raise AppError(
                    Code.INVALID,
                    "Each attachment must be an upload of yours that is in no message yet.",
                )
            attachments = found
        message = Posted(
            sender=sender.user,
            recipient=recipient,
            conversation=conversation,
            text=draft.text,
            client_msg_id=draft.client_msg_id,
            sender_name=sender.name,
            note=draft.note,
            attachments=attachments,
        )
        return Placed(self, message, self.writer.submit(message))

    async def _stored(
        self, message: Posted, committed: asyncio.Future[None], *, from_sid: str | None
    ) -> StoredMessage:
        try:
            await committed
        except AppError:  # its attachments were claimed first: not stored
            await self.limits.give_back(message.sender)
            raise
        except IntegrityError:
            # This client_msg_id was stored before (a retry, or a concurrent send that committed
            # first): answer with that message; the retry does not count against the limit.
            await self.limits.give_back(message.sender)
            cid = message.client_msg_id
            earlier = None if cid is None else await self._sent_before(message.sender, cid)
            if earlier is None:
                raise
            return earlier
        MESSAGES_STORED.inc()
        await self.fanout.message(message, skip_sid=from_sid)
        if message.changed:
            try:
                await self.team.changed([message.conversation])
            except Exception as exc:  # stored and delivered: the sweep and the next change tell
                log.warning("conversation change not announced (%s)", type(exc).__name__)
        return message

    async def _route(self, sender: Person, to: str | None) -> tuple[str, str]:
        """(conversation, recipient) for a message or typing from `sender` to `to`."""
        if not sender.is_admin:
            if to not in (None, ADMINS):
                raise AppError(Code.FORBIDDEN, "Users write to the support team only.")
            return sender.user, ADMINS
        if to is None:
            raise AppError(Code.INVALID, "'to' is required: the user to write to.")
        if to == ADMINS:
            raise AppError(Code.FORBIDDEN, "Admins write to one user at a time.")
        target = await self._existing(to)
        return target, target

    async def _sent_before(self, sender: str, client_msg_id: str) -> Message | None:
        async with self.sessions() as db:
            query = with_sender_name(select(Message)).where(
                Message.sender == sender, Message.client_msg_id == client_msg_id
            )
            return (await db.execute(query)).scalar()

    async def _existing(self, name: str) -> str:
        """The stored name of the user `name` (in any ASCII case), or `not_found`."""
        known = self._known.get(name)
        if known is not None:
            return known
        async with self.sessions() as db:
            user = await user_named(db, self.dialect, name)
        if user is None:
            raise AppError(Code.NOT_FOUND, "No such user.")
        self._known[name] = user.user
        return user.user

    async def _conversation_of(self, me: Person, with_: str | None) -> str:
        """The conversation `me` asks about: its own for a user, `with_` for an admin."""
        if not me.is_admin:
            if with_ is not None and not same_name(me.user, with_):
                raise AppError(Code.FORBIDDEN, "Users read their own conversation only.")
            return me.user
        if with_ is None:
            raise AppError(Code.INVALID, "'with' is required: the user whose conversation to read.")
        return await self._existing(with_)

    # -- reading ------------------------------------------------------------------------

    async def history(self, me: Person, query: HistoryQuery) -> list[Message]:
        conversation = await self._conversation_of(me, query.with_)
        stmt = with_sender_name(select(Message)).where(Message.conversation == conversation)
        if not me.is_admin:
            stmt = stmt.where(Message.note.is_(False))  # the team's private notes
        if query.before is not None:
            stmt = stmt.where(Message.id < query.before)
        async with self.sessions() as db:
            rows = await db.execute(stmt.order_by(Message.id.desc()).limit(query.limit))
            return list(reversed(rows.scalars().all()))

    async def sync(self, me: Person, after: int) -> tuple[list[Message], bool]:
        stmt = with_sender_name(select(Message)).where(Message.id > after)
        if not me.is_admin:
            stmt = stmt.where(Message.conversation == me.user, Message.note.is_(False))
        async with self.sessions() as db:
            rows = (
                (await db.execute(stmt.order_by(Message.id).limit(SYNC_LIMIT + 1))).scalars().all()
            )
        return list(rows[:SYNC_LIMIT]), len(rows) > SYNC_LIMIT

    async def mark_read(self, me: Person, read: ReadUpTo) -> None:
        conversation = await self._conversation_of(me, read.with_)
        reader = READER_ADMINS if me.is_admin else READER_USER
        where = and_(ReadMarker.conversation == conversation, ReadMarker.reader == reader)
        async with self.sessions.begin() as db:
            moved = await db.execute(
                update(ReadMarker)
                .where(where, ReadMarker.up_to < read.up_to)
                .values(up_to=read.up_to)
            )
            if moved.rowcount:  # type: ignore[attr-defined]
                return
            try:
                async with db.begin_nested():
                    db.add(ReadMarker(conversation=conversation, reader=reader, up_to=read.up_to))
            except IntegrityError:
                pass  # already there, at or past up_to (or written by a concurrent call)

    # -- live only ----------------------------------------------------------------------

    async def typing(self, me: Person, typing: Typing) -> None:
        _, recipient = await self._route(me, typing.to)
        await self.fanout.typing(me, recipient, typing.typing)

    async def announce(self, me: Person, text: str) -> dict[str, Any]:
        if not me.is_admin:
            raise AppError(Code.FORBIDDEN, "Only admins make announcements.")
        if not await self.limits.take(me.user):
            raise AppError(Code.RATE_LIMITED, "Too many messages; slow down.")
        payload = {
            "from": me.user,
            "from_name": me.name,
            "text": text,
            "created_at": iso(datetime.now(UTC)),
        }
        await self.fanout.announcement(payload)
        log.info("announcement", extra={"user": me.user})
        return payload
