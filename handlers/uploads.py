"""`/api/uploads`: a file's bytes streamed in (never more than one chunk in memory), and the
stored bytes served back to those who may read them."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import tornado.web
from tornado.http1connection import HTTP1Connection

from handlers.base import ApiHandler
from handlers.listen import BODY_TIMEOUT
from services import Services
from services.errors import AppError, Code
from services.incoming import Incoming, UploadRequest
from services.inputs import declared_length, media_type, upload_id, upload_name
from services.wire import attachment_to_wire

# The slowest upload still taken: the body timeout grows with the largest allowed body.
SLOWEST_BYTES_PER_SECOND = 32 * 1024
# Tornado's own cap for this route: the handler refuses a body past UPLOAD_MAX_BYTES itself,
# with its JSON answer (a lower cap here would cut the connection with a bare 400 first).
STREAMED_BODY_CAP = 1 << 40
# After a refusal the rest of the body is read and dropped for at most this long, then the
# connection is closed. Closing at once, with the client still sending, resets the connection,
# and a client that sends its whole body before reading (most do) then sees that reset
# instead of the answer.
LINGER_SECONDS = 10.0
SERVED_CSP = "default-src 'none'"


@tornado.web.stream_request_body
class UploadsApi(ApiHandler):
    """`POST /api/uploads`. Its body is the file, not JSON: the custom `Upload-Name` header,
    which no cross-site form can send and no cross-site script can send without a CORS
    preflight this server never grants, is its CSRF protection instead of the JSON type.

    A refusal is answered as soon as it is known, before the body has come (`_refuse`); the
    rest of the body is then dropped as it arrives, and the request ends with it."""

    incoming: Incoming | None = None
    refusal: AppError | None = None
    _linger: asyncio.TimerHandle | None = None

    async def prepare(self) -> None:
        if self.request.method != "POST":
            raise tornado.web.HTTPError(405)
        limit = self.services.settings.upload_max_bytes
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(STREAMED_BODY_CAP)
            connection.set_body_timeout(BODY_TIMEOUT + limit / SLOWEST_BYTES_PER_SECOND)
        await self.load_user()
        headers = self.request.headers
        try:
            me = self.require_user()
            request = UploadRequest(
                name=upload_name(headers.get("Upload-Name")),
                content_type=media_type(headers.get("Content-Type")),
                length=declared_length(headers.get("Content-Length")),
            )
            self.incoming = await self.services.uploads.begin(me, request)
        except AppError as exc:
            if headers.get("Expect", "").lower() == "100-continue":
                raise  # answered instead of the 100: the client sends no body
            self._refuse(exc)

    def data_received(self, chunk: bytes) -> None:
        if self.refusal is not None or self.incoming is None:
            return  # refused: what is still sent is dropped
        try:
            self.incoming.feed(chunk)
        except AppError as exc:
            self._refuse(exc)

    async def post(self) -> None:
        if self.refusal is not None:
            self.finish()  # the answer went out already; the body is over
            return
        if self._finished or self.incoming is None:
            return
        incoming, self.incoming = self.incoming, None
        attachment = await self.services.uploads.finish(self.require_user(), incoming)
        self.send_json({"attachment": attachment_to_wire(attachment)}, 201)

    def _refuse(self, exc: AppError) -> None:
        """Send the error now, complete (its length given), without ending the request."""
        self._discard()
        self.refusal = exc
        body = json.dumps(exc.body(), ensure_ascii=False).encode()
        self.set_status(exc.status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Length", str(len(body)))
        self.write(body)
        self.flush().add_done_callback(lambda sent: sent.cancelled() or sent.exception())
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(LINGER_SECONDS, self._hang_up)

    def _hang_up(self) -> None:
        connection = self.request.connection
        if not self._finished and isinstance(connection, HTTP1Connection):
            connection.stream.close()

    def on_connection_close(self) -> None:
        self._end()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._end()
        super().on_finish()

    def _end(self) -> None:
        self._discard()
        if self._linger is not None:
            self._linger.cancel()

    def _discard(self) -> None:
        incoming, self.incoming = self.incoming, None
        if incoming is not None:
            incoming.discard()


class UploadApi(ApiHandler):
    """`GET /api/uploads/<id>` and `.../thumbnail`: the bytes, checked on every request
    against who asks (cookie or Bearer); 404 alike for no token, no right and no such id."""

    csp = SERVED_CSP

    def initialize(self, services: Services, thumbnail: bool = False) -> None:
        super().initialize(services)
        self.thumbnail = thumbnail

    async def get(self, raw_id: str) -> None:
        found = await self.services.uploads.find(self.me, upload_id(raw_id))
        if not self.thumbnail:
            key, content_type = found.storage_key, found.content_type
            name, inline = found.name, found.is_image
        else:
            if found.thumbnail_key is None or found.thumbnail_type is None:
                raise AppError(Code.NOT_FOUND, "This upload has no thumbnail.")
            key, content_type = found.thumbnail_key, found.thumbnail_type
            name, inline = _thumbnail_name(found.name, found.thumbnail_type), True
        if content_type == "text/plain":
            content_type = "text/plain; charset=utf-8"
        disposition = content_disposition(name, inline=inline)
        link = await self.services.uploads.link(
            key, content_type=content_type, disposition=disposition
        )
        self.set_header("Cache-Control", "private")
        if link is not None:
            self.redirect(link)
            return
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Disposition", disposition)
        if not self.thumbnail:
            self.set_header("Content-Length", str(found.size))
        async for chunk in self.services.uploads.read(key):
            self.write(chunk)
            await self.flush()  # one chunk in memory, whatever the reader's pace
        self.finish()


def content_disposition(name: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII `filename` for old clients, and the real one as RFC 5987
    `filename*`; neither can end the header or the quoted string."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _thumbnail_name(name: str, content_type: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return f"{stem}.thumbnail.{content_type.rsplit('/', 1)[-1]}"
