"""Uploads: a received file (`services/incoming.py`) checked to its end, images examined off
the event loop, the bytes put in the store before their row is written (never a row without
its file), who may read one, and the sweep of uploads that no message claimed within a day.
Messages claim uploads in their own transaction (`GroupWriter`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.attachment import Attachment
from models.message import Message
from models.user import Person
from services.errors import AppError, Code, unavailable
from services.images import FORMATS, examine
from services.incoming import Incoming, UploadRequest, new_id, too_large
from services.limits import AttemptWindow
from services.storage import Store, StoreError

log = logging.getLogger(__name__)

IMAGE_THREADS = 2  # Pillow decodes at once, per process; more wait their turn
IMAGE_SECONDS = 30.0  # an image not examined by then (queue included) is refused
UNCLAIMED_FOR = timedelta(hours=24)
SWEEP_SECONDS = 600.0
SWEEP_BATCH = 200


class Uploads:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        store: Store,
        window: AttemptWindow,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings, self.sessions, self.store = settings, sessions, store
        self.window, self.clock = window, clock
        self._images = ThreadPoolExecutor(IMAGE_THREADS, thread_name_prefix="images")
        self._sweeper: asyncio.Task[None] | None = None

    # -- receiving ----------------------------------------------------------------------

    def check(self, request: UploadRequest) -> None:
        """Refuse what the headers already tell: a type outside UPLOAD_TYPES, a length above
        UPLOAD_MAX_BYTES, no bytes."""
        if request.content_type not in self.settings.upload_types:
            raise AppError(
                Code.UNSUPPORTED_MEDIA_TYPE,
                "Files of type %(type)s are not taken; send one of %(types)s.",
                type=request.content_type or "(none)",
                types=", ".join(self.settings.upload_types),
            )
        if request.length is not None and request.length > self.settings.upload_max_bytes:
            raise too_large(self.settings.upload_max_bytes)
        if request.length == 0:
            raise AppError(Code.INVALID, "The file is empty.")

    async def begin(self, me: Person, request: UploadRequest) -> Incoming:
        """Count the upload against the user's allowance and open its scratch file."""
        self.check(request)
        if await self.window.reserve(me.user) is None:
            raise AppError(Code.RATE_LIMITED, "Too many uploads; wait a minute.")
        try:
            return Incoming(
                request, limit=self.settings.upload_max_bytes, scratch=self.store.scratch
            )
        except OSError as exc:
            log.warning("upload not received: scratch file (%s)", exc.strerror)
            raise unavailable() from exc

    async def finish(self, me: Person, incoming: Incoming) -> Attachment:
        """The received upload, examined, stored and recorded; its scratch file is gone."""
        thumbnail = incoming.path.with_suffix(".thumb")
        try:
            incoming.done()
            attachment = Attachment(
                id=new_id(),
                uploader=me.user,
                message_id=None,
                name=incoming.request.name,
                content_type=incoming.request.content_type,
                storage_key=new_id(),
            )
            if attachment.content_type in FORMATS:
                loop = asyncio.get_running_loop()
                work = loop.run_in_executor(
                    self._images, examine, incoming.path, attachment.content_type, thumbnail
                )
                try:
                    found = await asyncio.wait_for(work, IMAGE_SECONDS)
                except TimeoutError:
                    raise AppError(Code.TOO_LARGE, "The image takes too long to process.") from None
                attachment.width, attachment.height = found.width, found.height
                attachment.thumbnail_key, attachment.thumbnail_type = new_id(), found.thumbnail_type
            attachment.size = incoming.path.stat().st_size
            await self._keep(attachment, incoming.path, thumbnail)
            return attachment
        finally:
            incoming.discard()
            with contextlib.suppress(OSError):
                thumbnail.unlink()

    async def _keep(self, attachment: Attachment, original: Path, thumbnail: Path) -> None:
        """Store the files, then write the row; on any failure nothing stays."""
        saved: list[str] = []
        try:
            await self.store.save(attachment.storage_key, original, attachment.content_type)
            saved.append(attachment.storage_key)
            thumbnail_key, thumbnail_type = attachment.thumbnail_key, attachment.thumbnail_type
            if thumbnail_key is not None and thumbnail_type is not None:
                await self.store.save(thumbnail_key, thumbnail, thumbnail_type)
                saved.append(thumbnail_key)
            attachment.created_at = self.clock()
            async with self.sessions.begin() as db:
                db.add(attachment)
        except BaseException as exc:
            await self._forget(saved)
            if isinstance(exc, StoreError):
                log.warning("upload not stored (%s)", exc)
                raise unavailable() from exc
            raise

    async def _forget(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self.store.delete(keys)
        except StoreError as exc:
            log.warning("stored files of a failed upload not deleted (%s)", exc)

    # -- reading ------------------------------------------------------------------------

    async def find(self, me: Person | None, attachment_id: str | None) -> Attachment:
        """The upload, when `me` may read it: its uploader; once in a message, that
        conversation's user (not for a private note) and every admin. `not_found` for anyone
        else, as for an id that does not exist."""
        if me is not None and attachment_id is not None:
            async with self.sessions() as db:
                row = (
                    await db.execute(
                        select(Attachment, Message.conversation, Message.note)
                        .outerjoin(Message, Message.id == Attachment.message_id)
                        .where(Attachment.id == attachment_id)
                    )
                ).first()
            if row is not None:
                attachment, conversation, note = row
                if attachment.uploader == me.user or (
                    conversation is not None
                    and (me.is_admin or (not note and conversation == me.user))
                ):
                    return attachment
        raise AppError(Code.NOT_FOUND, "No such upload.")

    async def link(self, key: str, *, content_type: str, disposition: str) -> str | None:
        """A signed URL of the store that serves the bytes, or None: read them here."""
        try:
            return await self.store.link(key, content_type=content_type, disposition=disposition)
        except StoreError as exc:
            log.warning("upload not linked (%s)", exc)
            raise unavailable() from exc

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.store.read(key):
                yield chunk
        except StoreError as exc:
            log.warning("upload not read (%s)", exc)
            raise unavailable() from exc

    # -- unclaimed ----------------------------------------------------------------------

    def start(self) -> None:
        self.store.open()
        log.info("attachments are stored in %s", self.store.where())
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self._images.shutdown(wait=False, cancel_futures=True)
        await self.store.close()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS * random.uniform(0.8, 1.2))  # noqa: S311
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("upload sweep failed (%s)", type(exc).__name__)

    async def sweep_once(self) -> int:
        """Delete uploads in no message for UNCLAIMED_FOR: each row by a DELETE that only
        matches while it is unclaimed, so that of any number of processes sweeping at once,
        and of a message claiming it meanwhile, exactly one wins; its files go after its row.
        How many this process deleted."""
        cutoff = self.clock() - UNCLAIMED_FOR
        deleted = 0
        while True:
            async with self.sessions() as db:
                rows = (
                    await db.execute(
                        select(Attachment.id, Attachment.storage_key, Attachment.thumbnail_key)
                        .where(Attachment.message_id.is_(None), Attachment.created_at < cutoff)
                        .limit(SWEEP_BATCH)
                    )
                ).all()
            for attachment_id, key, thumbnail_key in rows:
                async with self.sessions.begin() as db:
                    gone = await db.execute(
                        delete(Attachment).where(
                            Attachment.id == attachment_id, Attachment.message_id.is_(None)
                        )
                    )
                if gone.rowcount:  # type: ignore[attr-defined]
                    deleted += 1
                    await self._forget([k for k in (key, thumbnail_key) if k is not None])
            if len(rows) < SWEEP_BATCH:
                break
        if deleted:
            log.info("unclaimed uploads deleted", extra={"count": deleted})
        return deleted


async def claimable(
    sessions: async_sessionmaker[AsyncSession], sender: str, ids: Sequence[str]
) -> list[Attachment] | None:
    """The uploads `ids` of `sender` that no message has claimed yet, in the order messages
    list them (oldest upload first); None unless every one is such."""
    async with sessions() as db:
        found = (
            (
                await db.execute(
                    select(Attachment).where(
                        Attachment.id.in_(ids),
                        Attachment.uploader == sender,
                        Attachment.message_id.is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
    if len(found) != len(ids):
        return None
    return sorted(found, key=lambda a: (a.created_at, a.id))
