"""One upload being received: its bytes go to a scratch file as they come, and it is refused
as soon as it passes the size limit or its first bytes are not of the declared type."""

from __future__ import annotations

import codecs
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import filetype

from services.errors import AppError, Code, unavailable

log = logging.getLogger(__name__)

SNIFF_BYTES = 8192  # what filetype reads of a file's start
# Same format, another name: an animated PNG is a PNG to browsers and to Pillow.
ALIASES = {"image/apng": "image/png"}


def new_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters, 128 random bits


@dataclass(frozen=True)
class UploadRequest:
    name: str
    content_type: str  # a media type of UPLOAD_TYPES
    length: int | None  # Content-Length; None for a chunked body


class Incoming:
    """One upload being received into a scratch file: refused (`AppError`) as soon as it is
    too large or its first bytes are not of the declared type; one chunk in memory at most."""

    def __init__(self, request: UploadRequest, *, limit: int, scratch: Path) -> None:
        self.request, self.limit = request, limit
        self.path = scratch / f"{new_id()}.part"
        self.size = 0
        self._head = b""
        self._sniffed = False
        self._file: IO[bytes] | None = self.path.open("xb")
        self.path.chmod(0o600)
        text = request.content_type == "text/plain"
        self._text = codecs.getincrementaldecoder("utf-8")("strict") if text else None

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        if self._text is not None:
            self._check_text(chunk, final=False)
        elif not self._sniffed:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._sniff()
        if self._file is not None:
            try:
                self._file.write(chunk)
            except OSError as exc:  # the scratch directory's disk is full or gone
                log.warning("upload not received: scratch file (%s)", exc.strerror)
                raise unavailable() from exc

    def done(self) -> None:
        """The whole body has come."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.size == 0:
            raise AppError(Code.INVALID, "The file is empty.")
        if self._text is not None:
            self._check_text(b"", final=True)
        elif not self._sniffed:
            self._sniff()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _check_text(self, chunk: bytes, *, final: bool) -> None:
        try:
            if self._text is not None:
                self._text.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise not_of_type("text/plain") from None
        if b"\x00" in chunk:
            raise not_of_type("text/plain")

    def _sniff(self) -> None:
        self._sniffed = True
        found = filetype.guess_mime(self._head)
        if ALIASES.get(found, found) != self.request.content_type:
            raise not_of_type(self.request.content_type)
        self._head = b""


def too_large(limit: int) -> AppError:
    return AppError(Code.TOO_LARGE, "Files may be at most %(max)d bytes.", max=limit)


def not_of_type(content_type: str) -> AppError:
    return AppError(
        Code.UNSUPPORTED_MEDIA_TYPE, "The file's bytes are not of type %(type)s.", type=content_type
    )
