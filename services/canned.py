"""Canned responses: replies the team shares, which an admin inserts in the inbox by their
shortcut. Admins only. A shortcut is unique: the database's unique constraint decides, so two
admins creating the same one at once get one 201 and one `exists`, on every database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.conversation import CannedResponse
from models.user import Person
from services.errors import AppError, Code, admins_only
from services.inputs import MAX_ID, CannedDraft, invalid

# How many the team may keep, so that the list (sent whole) stays bounded. Counted when one is
# created: creations racing at the cap may each see room, so the table can pass it by the few
# in flight, never by more.
CANNED_MAX = 1_000


def _taken() -> AppError:
    return AppError(Code.EXISTS, "A canned response with that shortcut exists.")


def _not_found() -> AppError:
    return AppError(Code.NOT_FOUND, "No such canned response.")


class CannedResponses:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def responses(self, me: Person) -> list[CannedResponse]:
        """Every canned response, by shortcut in code-point order (`-`, digits, `_`, letters),
        the same on every database whatever its collation."""
        admins_only(me)
        async with self.sessions() as db:
            rows = (await db.execute(select(CannedResponse))).scalars().all()
        return sorted(rows, key=lambda r: r.shortcut)

    async def create(self, me: Person, draft: CannedDraft) -> CannedResponse:
        admins_only(me)
        if draft.shortcut is None or draft.text is None:
            raise invalid("A canned response needs 'shortcut' and 'text'.")
        now = datetime.now(UTC)
        row = CannedResponse(
            shortcut=draft.shortcut, text=draft.text, created_at=now, updated_at=now
        )
        try:
            async with self.sessions.begin() as db:
                count = await db.scalar(select(func.count()).select_from(CannedResponse))
                if (count or 0) >= CANNED_MAX:
                    raise invalid(
                        "The team keeps at most %(max)d canned responses; delete one first.",
                        max=CANNED_MAX,
                    )
                db.add(row)
        except IntegrityError:
            raise _taken() from None
        return row

    async def update(self, me: Person, canned_id: int, change: CannedDraft) -> CannedResponse:
        """Change the shortcut, the text or both (a field left None stays as it is)."""
        admins_only(me)
        if not 1 <= canned_id <= MAX_ID:
            raise _not_found()
        values: dict[str, object] = {"updated_at": datetime.now(UTC)}
        if change.shortcut is not None:
            values["shortcut"] = change.shortcut
        if change.text is not None:
            values["text"] = change.text
        try:
            async with self.sessions.begin() as db:
                # One UPDATE, not a read and a write: a concurrent delete makes it match nothing.
                changed = await db.execute(
                    update(CannedResponse).where(CannedResponse.id == canned_id).values(values)
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    raise _not_found()
                row = (
                    await db.execute(select(CannedResponse).where(CannedResponse.id == canned_id))
                ).scalar_one()
        except IntegrityError:
            raise _taken() from None
        return row

    async def delete(self, me: Person, canned_id: int) -> None:
        admins_only(me)
        if not 1 <= canned_id <= MAX_ID:
            raise _not_found()
        async with self.sessions.begin() as db:
            gone = await db.execute(delete(CannedResponse).where(CannedResponse.id == canned_id))
            if not gone.rowcount:  # type: ignore[attr-defined]
                raise _not_found()
