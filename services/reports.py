"""Reports of the team's work over a period, computed by the database on SQLite, MariaDB and
PostgreSQL alike.

What is counted, for a period [start, end):

- openings and resolutions: `conversation_events` of kind `opened` and `resolved` whose `at`
  is in the period;
- messages received: users' messages to the team (`recipient == "admins"`) created in it;
  replies: admins' messages to a user that are not notes;
- first response and resolution times: the `seconds` of the `first_reply` and `resolved`
  events that happened in the period (a resolution without an opening to measure from has no
  `seconds` and is counted, not measured).

Percentiles are continuous, with linear interpolation between the two nearest ranks (what
PostgreSQL's `percentile_cont` and numpy's default give): of n values sorted, the p-th is at
0-based position h = (n - 1) * p / 100, between the values at floor(h) and floor(h) + 1. So the
median of 10 and 20 is 15 and their p90 is 19. The database counts the values and hands back
the two at that position (`ORDER BY seconds LIMIT 2 OFFSET floor(h)`); the interpolation is
done here, with integer arithmetic for the position, so the answer is the same on every
database. Each admin's median is found in one query for all of them, with window functions.
Times are given in seconds, rounded to the millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, and_, case, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.conversation import FIRST_REPLY, OPENED, RESOLVED_EVENT, ConversationEvent
from models.message import ADMINS, Message
from services.inputs import ReportPeriod
from services.wire import iso

Event = ConversationEvent
MEDIAN = 50
P90 = 90


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile of some durations in seconds; None when there were none."""

    median: float | None
    p90: float | None

    def to_wire(self) -> dict[str, float | None]:
        return {"median": self.median, "p90": self.p90}


@dataclass(frozen=True)
class AdminFigures:
    admin: str
    replies: int
    resolved: int
    first_response_median: float | None


@dataclass(frozen=True)
class Day:
    day: date
    received: int
    replied: int
    resolved: int


@dataclass(frozen=True)
class Report:
    period: ReportPeriod
    conversations_opened: int
    conversations_resolved: int
    messages_received: int
    replies_sent: int
    first_response: Spread
    resolution: Spread
    by_admin: list[AdminFigures]
    by_day: list[Day]

    def to_wire(self) -> dict[str, Any]:
        """The body of `GET /api/reports`."""
        return {
            "from": iso(self.period.start),
            "to": iso(self.period.end),
            "conversations_opened": self.conversations_opened,
            "conversations_resolved": self.conversations_resolved,
            "messages_received": self.messages_received,
            "replies_sent": self.replies_sent,
            "first_response_seconds": self.first_response.to_wire(),
            "resolution_seconds": self.resolution.to_wire(),
            "by_admin": [
                {
                    "admin": a.admin,
                    "replies": a.replies,
                    "resolved": a.resolved,
                    "first_response_seconds": {"median": a.first_response_median},
                }
                for a in self.by_admin
            ],
            "by_day": [
                {
                    "date": d.day.isoformat(),
                    "received": d.received,
                    "replied": d.replied,
                    "resolved": d.resolved,
                }
                for d in self.by_day
            ],
        }


def days_of(period: ReportPeriod) -> list[date]:
    """Every UTC date that the period touches, in order."""
    first = period.start.date()
    last = (period.end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def utc_date(column: Any) -> ColumnElement[date]:
    """The UTC date of a stored time (times are stored in UTC without a zone). `date(x)` is a
    function on SQLite and MariaDB and a cast on PostgreSQL; SQLAlchemy's `Date` reads SQLite's
    'YYYY-MM-DD' text back as a date, like the other two."""
    return func.date(column, type_=Date)


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _in(column: Any, period: ReportPeriod) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


# A user's message to the team; an admin's reply to a user (private notes are no replies).
USER_MESSAGE = Message.recipient == ADMINS
REPLY = and_(Message.recipient != ADMINS, Message.note.is_(false()))


class Reports:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def report(self, period: ReportPeriod) -> Report:
        async with self.sessions() as db, db.begin():
            by_day = await self._by_day(db, period)
            opened = await self._count_events(db, OPENED, period)
            first_response = await self._spread(db, FIRST_REPLY, period)
            resolution = await self._spread(db, RESOLVED_EVENT, period)
            by_admin = await self._by_admin(db, period)
        return Report(
            period=period,
            conversations_opened=opened,
            conversations_resolved=sum(d.resolved for d in by_day),
            messages_received=sum(d.received for d in by_day),
            replies_sent=sum(d.replied for d in by_day),
            first_response=first_response,
            resolution=resolution,
            by_admin=by_admin,
            by_day=by_day,
        )

    async def _by_day(self, db: AsyncSession, period: ReportPeriod) -> list[Day]:
        """Messages received and replies sent, and resolutions, per UTC date (zeros included)."""
        day = utc_date(Message.created_at).label("day")
        messages = (
            select(
                day,
                func.sum(case((USER_MESSAGE, 1), else_=0)),
                func.sum(case((REPLY, 1), else_=0)),
            )
            .where(_in(Message.created_at, period))
            .group_by(day)
        )
        received: dict[date, int] = {}
        replied: dict[date, int] = {}
        for when, users, admins in (await db.execute(messages)).all():
            received[when], replied[when] = int(users), int(admins)
        event_day = utc_date(Event.at).label("day")
        events = (
            select(event_day, func.count())
            .where(Event.kind == RESOLVED_EVENT, _in(Event.at, period))
            .group_by(event_day)
        )
        resolved = {when: int(n) for when, n in (await db.execute(events)).all()}
        return [
            Day(d, received.get(d, 0), replied.get(d, 0), resolved.get(d, 0))
            for d in days_of(period)
        ]

    async def _count_events(self, db: AsyncSession, kind: str, period: ReportPeriod) -> int:
        query = select(func.count()).where(Event.kind == kind, _in(Event.at, period))
        return int(await db.scalar(query) or 0)

    async def _spread(self, db: AsyncSession, kind: str, period: ReportPeriod) -> Spread:
        """Median and p90 of the `seconds` of the events of `kind` in the period."""
        measured = (Event.kind == kind, _in(Event.at, period), Event.seconds.is_not(None))
        count = int(await db.scalar(select(func.count()).where(*measured)) or 0)
        if count == 0:
            return Spread(None, None)
        found: dict[int, float | None] = {}
        for percent in (MEDIAN, P90):
            position, rest = divmod((count - 1) * percent, 100)
            query = (
                select(Event.seconds)
                .where(*measured)
                .order_by(Event.seconds)
                .limit(2 if rest else 1)
                .offset(position)
            )
            values = [float(v) for v in (await db.scalars(query)).all() if v is not None]
            if not values:  # rows gone between the two statements (a database kept by hand)
                found[percent] = None
                continue
            low, high = values[0], values[-1]
            found[percent] = _seconds(low + (high - low) * rest / 100)
        return Spread(found[MEDIAN], found[P90])

    async def _by_admin(self, db: AsyncSession, period: ReportPeriod) -> list[AdminFigures]:
        """Every admin with replies, resolutions or first responses in the period, by name."""
        replies_query = (
            select(Message.sender, func.count())
            .where(REPLY, _in(Message.created_at, period))
            .group_by(Message.sender)
        )
        replies = {name: int(n) for name, n in (await db.execute(replies_query)).all()}
        resolved_query = (
            select(Event.admin, func.count())
            .where(Event.kind == RESOLVED_EVENT, _in(Event.at, period), Event.admin.is_not(None))
            .group_by(Event.admin)
        )
        resolved: dict[str, int] = {
            str(name): int(n) for name, n in (await db.execute(resolved_query)).all()
        }
        # Each admin's median first response: number that admin's first replies by `seconds`
        # (1..n) and average the one or two in the middle: 2*rank between n and n + 2.
        ranked = (
            select(
                Event.admin.label("admin"),
                Event.seconds.label("seconds"),
                func.row_number()
                .over(partition_by=Event.admin, order_by=Event.seconds)
                .label("rank"),
                func.count().over(partition_by=Event.admin).label("n"),
            )
            .where(
                Event.kind == FIRST_REPLY,
                _in(Event.at, period),
                Event.admin.is_not(None),
                Event.seconds.is_not(None),
            )
            .subquery()
        )
        medians_query = (
            select(ranked.c.admin, func.avg(ranked.c.seconds))
            .where(2 * ranked.c.rank >= ranked.c.n, 2 * ranked.c.rank <= ranked.c.n + 2)
            .group_by(ranked.c.admin)
        )
        medians: dict[str, float | None] = {
            str(name): _seconds(m) for name, m in (await db.execute(medians_query)).all()
        }
        names = sorted(set(replies) | set(resolved) | set(medians), key=lambda n: (n.lower(), n))
        return [
            AdminFigures(
                admin=name,
                replies=replies.get(name, 0),
                resolved=resolved.get(name, 0),
                first_response_median=medians.get(name),
            )
            for name in names
        ]
