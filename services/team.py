"""The team's side of conversations: the inbox list, status, assignment (by hand and round
robin), labels, snoozing, and the admins' availability. Messages change conversations in the
writer's transaction (`services.activity`); everything else that changes them is here.

Work that any process may do at the same time is made safe by the database, never by choosing
one process: a snoozed conversation wakes by a conditional UPDATE that only one process can
match, and every auto-assignment holds the lock of the `assignment_lock` row, so that the
choice of admin and the capacity check see every earlier assignment."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.conversation import (
    ACTIVE,
    OPEN,
    RESOLVED,
    RESOLVED_EVENT,
    SNOOZED,
    Agent,
    AssignmentLock,
    ConversationEvent,
    ConversationLabel,
    ConversationState,
)
from models.message import ADMINS, READER_ADMINS, Message, ReadMarker, with_sender_name
from models.user import ADMIN, USER, Person, User, user_named
from models.visitor import Visitor
from services.cluster import Cluster
from services.errors import AppError, Code, admins_only
from services.fanout import Fanout
from services.inputs import UNSET, ConversationChange, ConversationQuery
from services.metrics import RESOLUTION_SECONDS

log = logging.getLogger(__name__)

ROUND_ROBIN = "round_robin"
# Every process looks for due snoozes and waiting conversations this often (with jitter).
SWEEP_SECONDS = 15.0
WAKE_BATCH = 500

CONVERSATIONS = cast(Table, ConversationState.__table__)


@dataclass(frozen=True)
class Conversation:
    user: str
    name: str
    rol: str
    online: bool
    unread: int
    last_message: Message
    status: str
    assignee: str | None
    labels: tuple[str, ...]
    snoozed_until: datetime | None
    visitor: bool = False  # a website visitor (else a registered user)
    email: str | None = None  # a visitor's e-mail, when it gave one
    verified: bool = False  # a visitor identified by the site


@dataclass(frozen=True)
class AdminState:
    user: str
    name: str
    online: bool
    available: bool
    open_assigned: int


class Team:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        cluster: Cluster,
        fanout: Fanout,
    ) -> None:
        self.settings, self.sessions, self.dialect = settings, sessions, dialect
        self.cluster, self.fanout = cluster, fanout
        self._assigning = asyncio.Lock()  # this process's assignment runs, one at a time
        self._again = False  # asked to assign while a run was under way
        self._sweeper: asyncio.Task[None] | None = None

    # -- the inbox ------------------------------------------------------------------------

    async def page(
        self, me: Person, query: ConversationQuery
    ) -> tuple[list[Conversation], int | None]:
        """A page of conversations, newest activity first, and the cursor of the next page."""
        admins_only(me)
        c = ConversationState
        where: list[ColumnElement[bool]] = []
        if query.statuses:
            where.append(c.status.in_(query.statuses))
        if query.assignee == "me":
            where.append(c.assignee == me.user)
        elif query.assignee == "none":
            where.append(c.assignee.is_(None))
        elif query.assignee is not None:
            async with self.sessions() as db:
                admin = await user_named(db, self.dialect, query.assignee, public_only=True)
            if admin is None:
                return [], None
            where.append(c.assignee == admin.user)
        if query.label is not None:
            where.append(
                exists().where(
                    ConversationLabel.conversation == c.user, ConversationLabel.label == query.label
                )
            )
        if query.before is not None:
            where.append(c.last_message_id < query.before)
        stmt = (
            select(c.user).where(*where).order_by(c.last_message_id.desc()).limit(query.limit + 1)
        )
        if query.label is not None:
            # MariaDB turns the label's EXISTS into a join from the labels, then sorts every
            # labelled conversation (52 ms a page with 10,000 of them); walking the activity
            # index and probing the labels stops after a page (PostgreSQL's own plan).
            stmt = stmt.with_hint(c, "FORCE INDEX (ix_conversations_activity)", "mysql")
        async with self.sessions() as db:
            users = (await db.execute(stmt)).scalars().all()
            more = len(users) > query.limit
            found = await self._conversations(db, list(users[: query.limit]))
        cursor = found[-1].last_message.id if more and found else None
        return found, cursor

    async def conversation(self, user: str) -> Conversation | None:
        async with self.sessions() as db:
            found = await self._conversations(db, [user])
        return found[0] if found else None

    async def _conversations(self, db: AsyncSession, users: list[str]) -> list[Conversation]:
        """The conversations of `users` (stored names), newest activity first."""
        if not users:
            return []
        c = ConversationState
        rows = (
            await db.execute(
                with_sender_name(select(Message))
                .add_columns(c, User.name, User.rol, Visitor)
                .join(c, c.last_message_id == Message.id)
                .outerjoin(User, User.user == c.user)
                .outerjoin(Visitor, Visitor.user == c.user)
                .where(c.user.in_(users))
                .order_by(c.last_message_id.desc())
            )
        ).all()
        unread: dict[str, int] = dict(
            (
                await db.execute(
                    select(Message.conversation, func.count())
                    .outerjoin(
                        ReadMarker,
                        and_(
                            ReadMarker.conversation == Message.conversation,
                            ReadMarker.reader == READER_ADMINS,
                        ),
                    )
                    .where(
                        Message.conversation.in_(users),
                        Message.recipient == ADMINS,
                        Message.id > func.coalesce(ReadMarker.up_to, 0),
                    )
                    .group_by(Message.conversation)
                )
            ).all()
        )
        labels: dict[str, list[str]] = {}
        for conversation, label in await db.execute(
            select(ConversationLabel.conversation, ConversationLabel.label)
            .where(ConversationLabel.conversation.in_(users))
            .order_by(ConversationLabel.label)
        ):
            labels.setdefault(conversation, []).append(label)
        online = await self.cluster.online([row[1].user for row in rows])
        return [
            Conversation(
                user=state.user,
                name=name or state.user,
                rol=rol or USER,
                online=online[state.user],
                unread=unread.get(state.user, 0),
                last_message=message,
                status=state.status,
                assignee=state.assignee,
                labels=tuple(labels.get(state.user, ())),
                snoozed_until=state.snoozed_until,
                visitor=visitor is not None,
                email=None if visitor is None else visitor.email,
                verified=visitor is not None and bool(visitor.verified),
            )
            for message, state, name, rol, visitor in rows
        ]

    # -- changes by admins -----------------------------------------------------------------

    async def change(self, me: Person, name: str, change: ConversationChange) -> Conversation:
        """Apply an admin's PATCH; announce the new state to every admin."""
        admins_only(me)
        now = datetime.now(UTC)
        if change.snoozed_until is not UNSET and change.snoozed_until is not None:
            if change.snoozed_until <= now:
                raise AppError(Code.INVALID, "'snoozed_until' must be in the future.")
        async with self.sessions() as db:
            user = await user_named(db, self.dialect, name, public_only=True)
            assignee = change.assignee
            if assignee is not UNSET and assignee is not None:
                admin = await user_named(db, self.dialect, assignee, public_only=True)
                if admin is None or admin.rol != ADMIN:
                    raise AppError(Code.INVALID, "'assignee' must be an admin.")
                assignee = admin.user
        if user is None:
            raise AppError(Code.NOT_FOUND, "No such conversation.")
        resolved_after: float | None = None
        async with self.sessions.begin() as db:
            c = ConversationState
            # An UPDATE first: the row's lock on every database (SQLite takes its write lock).
            touched = await db.execute(
                update(CONVERSATIONS)
                .where(CONVERSATIONS.c.user == user.user)
                .values(status=CONVERSATIONS.c.status)
            )
            if not touched.rowcount:  # type: ignore[attr-defined]
                raise AppError(Code.NOT_FOUND, "No such conversation: no message yet.")
            state = (await db.execute(select(c).where(c.user == user.user))).scalar_one()
            if change.status is not UNSET and change.status != state.status:
                if change.status == RESOLVED:
                    if state.opened_at is not None:
                        resolved_after = (now - state.opened_at).total_seconds()
                    db.add(
                        ConversationEvent(
                            conversation=state.user,
                            kind=RESOLVED_EVENT,
                            at=now,
                            admin=me.user,
                            seconds=resolved_after,
                        )
                    )
                    state.opened_at = None
                elif change.status == OPEN:
                    state.opened_id = state.last_message_id  # it queues from now
                state.status = change.status
            if state.status == SNOOZED:
                if change.snoozed_until is not UNSET:
                    state.snoozed_until = change.snoozed_until
            else:
                state.snoozed_until = None
            if assignee is not UNSET:
                state.assignee = assignee
            if change.labels is not UNSET:
                await db.execute(
                    delete(ConversationLabel).where(ConversationLabel.conversation == state.user)
                )
                if change.labels:
                    await db.execute(
                        insert(ConversationLabel),
                        [{"conversation": state.user, "label": label} for label in change.labels],
                    )
        if resolved_after is not None:
            RESOLUTION_SECONDS.observe(resolved_after)
        found = await self.announce(user.user)
        if found is None:  # gone meanwhile (removed by hand)
            raise AppError(Code.NOT_FOUND, "No such conversation.")
        self.assign_soon()
        return found

    async def announce(self, user: str) -> Conversation | None:
        """Send the conversation's state to every admin, on every process."""
        found = await self.conversation(user)
        if found is not None:
            await self.fanout.conversation(found)
        return found

    async def changed(self, users: Sequence[str]) -> None:
        """Messages changed these conversations' state (created or reopened them)."""
        for user in users:
            await self.announce(user)
        self.assign_soon()

    # -- admins -----------------------------------------------------------------------------

    async def set_available(self, me: Person, available: bool) -> bool:
        admins_only(me)
        async with self.sessions.begin() as db:
            await _upsert_agent(db, me.user, available=available)
        if available:
            self.assign_soon()
        return available

    async def admins(self, me: Person) -> list[AdminState]:
        admins_only(me)
        async with self.sessions() as db:
            rows = (
                await db.execute(
                    select(User.user, User.name, func.coalesce(Agent.available, True))
                    .outerjoin(Agent, Agent.user == User.user)
                    .where(User.rol == ADMIN)
                    .order_by(User.user)
                )
            ).all()
            counts = await _load(db, [user for user, _, _ in rows])
        online = await self.cluster.online([user for user, _, _ in rows])
        return [
            AdminState(
                user=user,
                name=name,
                online=online[user],
                available=bool(available),
                open_assigned=counts.get(user, 0),
            )
            for user, name, available in rows
        ]

    # -- auto-assignment --------------------------------------------------------------------

    def assign_soon(self) -> None:
        """Assign waiting conversations in the background (when auto-assignment is on)."""
        if self.settings.auto_assign != ROUND_ROBIN:
            return
        if self._assigning.locked():
            self._again = True  # the run under way goes round once more
            return
        task = asyncio.ensure_future(self.assign_waiting())
        task.add_done_callback(_log_failure)

    async def assign_waiting(self) -> int:
        """Give waiting conversations, oldest first, to online and available admins with the
        fewest active conversations, taking turns among equals, never past AGENT_CAPACITY.
        How many were assigned."""
        if self.settings.auto_assign != ROUND_ROBIN:
            return 0
        assigned = 0
        async with self._assigning:
            while True:
                self._again = False
                while (user := await self._assign_one()) is not None:
                    assigned += 1
                    await self.announce(user)
                if not self._again:
                    return assigned

    async def _assign_one(self) -> str | None:
        """One assignment in one transaction under the assignment lock: the conversation it
        gave an admin, or None when nothing waits or nobody qualifies."""
        c = ConversationState
        async with self.sessions.begin() as db:
            await db.execute(
                update(AssignmentLock)
                .where(AssignmentLock.id == 1)
                .values(counter=AssignmentLock.counter + 1)
            )
            round_ = (
                await db.execute(select(AssignmentLock.counter).where(AssignmentLock.id == 1))
            ).scalar_one()
            waiting = (
                await db.execute(
                    select(c.user)
                    .where(c.status == OPEN, c.assignee.is_(None), c.opened_id.is_not(None))
                    .order_by(c.opened_id)
                    .limit(1)
                )
            ).scalar()
            if waiting is None:
                return None
            # Available admins and when each last got one, read under the lock (a switch or an
            # assignment made meanwhile counts); then who of them is online, anywhere.
            turns: dict[str, int] = dict(
                (
                    await db.execute(
                        select(User.user, func.coalesce(Agent.last_assigned, 0))
                        .outerjoin(Agent, Agent.user == User.user)
                        .where(User.rol == ADMIN, func.coalesce(Agent.available, True))
                    )
                ).all()
            )
            online = await self.cluster.online(list(turns))
            candidates = [a for a in turns if online[a]]
            load = await _load(db, candidates)
            cap = self.settings.agent_capacity
            eligible = [a for a in candidates if cap == 0 or load.get(a, 0) < cap]
            if not eligible:
                return None
            pick = min(eligible, key=lambda a: (load.get(a, 0), turns[a], a))
            taken = await db.execute(
                update(CONVERSATIONS)
                .where(
                    CONVERSATIONS.c.user == waiting,
                    CONVERSATIONS.c.assignee.is_(None),
                    CONVERSATIONS.c.status == OPEN,
                )
                .values(assignee=pick)
            )
            if not taken.rowcount:  # type: ignore[attr-defined]
                return None
            await _upsert_agent(db, pick, last_assigned=round_)
        log.info("conversation assigned", extra={"user": waiting, "assignee": pick})
        return str(waiting)

    # -- timers -----------------------------------------------------------------------------

    async def wake_snoozed(self, now: datetime | None = None) -> list[str]:
        """Open the snoozed conversations whose time has come. Every process may run this at
        once: each wakes with a conditional UPDATE, so only one process announces it."""
        now = now or datetime.now(UTC)
        c = CONVERSATIONS.c
        async with self.sessions() as db:
            due = (
                (
                    await db.execute(
                        select(c.user)
                        .where(c.status == SNOOZED, c.snoozed_until <= now)
                        .limit(WAKE_BATCH)
                    )
                )
                .scalars()
                .all()
            )
        woke = []
        for user in due:
            async with self.sessions.begin() as db:
                moved = await db.execute(
                    update(CONVERSATIONS)
                    .where(c.user == user, c.status == SNOOZED, c.snoozed_until <= now)
                    .values(status=OPEN, snoozed_until=None, opened_id=c.last_message_id)
                )
            if moved.rowcount:  # type: ignore[attr-defined]
                woke.append(user)
                await self.announce(user)
        if woke:
            log.info("snoozed conversations woke", extra={"count": len(woke)})
            self.assign_soon()
        return woke

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS * random.uniform(0.8, 1.2))  # noqa: S311
            await self.sweep_once()

    async def sweep_once(self) -> None:
        """Wake due snoozes and assign what waits (a trigger may have died with a process).
        A failure (the database or Redis down) is logged, and the next sweep tries again."""
        try:
            await self.wake_snoozed()
            await self.assign_waiting()
        except Exception as exc:
            log.warning("conversation sweep failed (%s)", type(exc).__name__)


async def _load(db: AsyncSession, admins: Sequence[str]) -> dict[str, int]:
    """How many open and pending conversations each of `admins` is assigned (none: absent)."""
    c = ConversationState
    rows = await db.execute(
        select(c.assignee, func.count())
        .where(c.status.in_(ACTIVE), c.assignee.in_(admins))
        .group_by(c.assignee)
    )
    return {str(assignee): int(count) for assignee, count in rows.all()}


async def _upsert_agent(db: AsyncSession, user: str, **values: Any) -> None:
    """Set an admin's `agents` columns, adding its row if it has none (made meanwhile by
    another transaction: then updated)."""
    moved = await db.execute(update(Agent).where(Agent.user == user).values(**values))
    if moved.rowcount:  # type: ignore[attr-defined]
        return
    try:
        async with db.begin_nested():
            await db.execute(insert(Agent).values(user=user, **values))
    except IntegrityError:
        await db.execute(update(Agent).where(Agent.user == user).values(**values))


def _admin_only(me: Person) -> None:
    if not me.is_admin:
        raise AppError(Code.FORBIDDEN, "Admins only.")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("auto-assignment failed (%s)", type(task.exception()).__name__)
