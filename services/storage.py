"""Where attachments' bytes live: a directory of this machine (`file:`) or an S3-compatible
bucket (`s3://`), behind one small interface. Keys are random ids made by the server, never a
name a user gave; the stores check that before using one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from config.settings import Settings, redact_url, sqlite_path

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")  # always fullmatch
READ_CHUNK = 64 * 1024
# S3: one request up to this size, multipart above it with parts of this size (S3's parts are
# at least 5 MiB but the last): an upload holds one part in memory at a time.
PART_BYTES = 8 * 1024 * 1024
# Parts (or whole small objects) being sent at once by this process, whatever the number of
# uploads: what S3 uploads hold in memory is at most this many parts (and the copies the
# client makes of each to sign and send it), 20 concurrent uploads or 2.
PARTS_IN_FLIGHT = 4
LINK_SECONDS = 60
# Scratch files older than this were left by a process that stopped mid-upload.
STALE_SCRATCH_SECONDS = 3600.0


class StoreError(Exception):
    """The store failed or could not be reached (answered `unavailable`)."""


class Store(Protocol):
    scratch: Path  # where an upload is received before it is stored (then moved or copied)

    def open(self) -> None:
        """Make the directories it needs (at start, not at import or for a command)."""

    def where(self) -> str:
        """Where the bytes go, for the log."""

    async def save(self, key: str, source: Path, content_type: str) -> None:
        """Store the file `source` under `key`; the file may be moved away."""

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, a chunk at a time (stores that `link` may not serve them)."""

    async def link(self, key: str, *, content_type: str, disposition: str) -> str | None:
        """A URL valid for LINK_SECONDS that serves the bytes with those headers, or None when
        this server serves them itself (`read`)."""

    async def delete(self, keys: Sequence[str]) -> None: ...

    async def close(self) -> None: ...


def _checked(key: str) -> str:
    if not KEY.fullmatch(key):
        raise ValueError("not a storage key")
    return key


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o700)


def _sweep_scratch(scratch: Path) -> None:
    """Forget what a stopped process left half received."""
    cutoff = time.time() - STALE_SCRATCH_SECONDS
    for item in scratch.iterdir():
        with contextlib.suppress(OSError):
            if item.is_file() and item.stat().st_mtime < cutoff:
                item.unlink()


class FileStore:
    """A directory (0700) of files (0600) named by key, with a scratch directory inside it so
    that a received upload is stored by a rename. Shared by the workers of one machine, or of
    several through a shared file system."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scratch = directory / ".incoming"

    def where(self) -> str:
        return f"directory {self.directory.resolve()}"

    def open(self) -> None:
        _private_dir(self.directory)
        _private_dir(self.scratch)
        _sweep_scratch(self.scratch)

    def _path(self, key: str) -> Path:
        return self.directory / _checked(key)

    async def save(self, key: str, source: Path, content_type: str) -> None:
        target = self._path(key)
        try:
            await asyncio.to_thread(_move_private, source, target)
        except OSError as exc:
            raise StoreError(f"file store: {exc.strerror}") from exc

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            file = await asyncio.to_thread(self._path(key).open, "rb")
        except OSError as exc:
            raise StoreError(f"file store: {exc.strerror}") from exc
        try:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk
        finally:
            file.close()

    async def link(self, key: str, *, content_type: str, disposition: str) -> str | None:
        return None

    async def delete(self, keys: Sequence[str]) -> None:
        def remove() -> None:
            for key in keys:
                with contextlib.suppress(FileNotFoundError):
                    self._path(key).unlink()

        try:
            await asyncio.to_thread(remove)
        except OSError as exc:
            raise StoreError(f"file store: {exc.strerror}") from exc

    async def close(self) -> None:
        pass


def _move_private(source: Path, target: Path) -> None:
    source.chmod(0o600)
    os.replace(source, target)  # same file system: the scratch directory is inside


class S3Store:
    """An S3-compatible bucket (AWS, MinIO, Ceph...). The client is made at first use and
    kept; reads are 302s to presigned URLs, so bytes never pass through this server twice."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.storage.location
        self.prefix = settings.storage.prefix
        self.scratch = Path(tempfile.gettempdir()) / "supportchat-incoming"
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._opening = asyncio.Lock()
        self._sending = asyncio.Semaphore(PARTS_IN_FLIGHT)

    def where(self) -> str:
        endpoint = redact_url(self.settings.s3_endpoint_url or "AWS")
        return f"s3://{self.bucket}/{self.prefix} at {endpoint}"

    def open(self) -> None:
        _private_dir(self.scratch)
        _sweep_scratch(self.scratch)

    async def _s3(self) -> S3Client:
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is not None:
                return self._client
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            s = self.settings
            secret = s.aws_secret_access_key
            options: dict[str, Any] = {
                "region_name": s.aws_region or "us-east-1",
                "endpoint_url": s.s3_endpoint_url,
                "config": AioConfig(
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 2, "mode": "standard"},
                    signature_version="s3v4",
                ),
            }
            if s.aws_access_key_id is not None and secret is not None:
                options["aws_access_key_id"] = s.aws_access_key_id
                options["aws_secret_access_key"] = secret.reveal()
            client: S3Client = await self._stack.enter_async_context(
                get_session().create_client("s3", **options)
            )
            self._client = client
            return client

    def _key(self, key: str) -> str:
        return self.prefix + _checked(key)

    async def save(self, key: str, source: Path, content_type: str) -> None:
        try:
            s3 = await self._s3()
            size = (await asyncio.to_thread(source.stat)).st_size
            if size <= PART_BYTES:
                async with self._sending:
                    body = await asyncio.to_thread(source.read_bytes)
                    await s3.put_object(
                        Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type
                    )
                    del body
            else:
                await self._multipart(s3, key, source, content_type)
        except StoreError:
            raise
        except Exception as exc:  # botocore's and aiohttp's errors have no common base
            raise StoreError(f"S3: {type(exc).__name__}") from exc
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)

    async def _multipart(self, s3: S3Client, key: str, source: Path, content_type: str) -> None:
        started = await s3.create_multipart_upload(
            Bucket=self.bucket, Key=self._key(key), ContentType=content_type
        )
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with source.open("rb") as file:
                while True:
                    async with self._sending:
                        part = await asyncio.to_thread(file.read, PART_BYTES)
                        if not part:
                            break
                        sent = await s3.upload_part(
                            Bucket=self.bucket,
                            Key=self._key(key),
                            UploadId=upload_id,
                            PartNumber=len(parts) + 1,
                            Body=part,
                        )
                        del part
                    parts.append({"ETag": sent["ETag"], "PartNumber": len(parts) + 1})
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                )
            raise

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            s3 = await self._s3()
            got = await s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise StoreError(f"S3: {type(exc).__name__}") from exc
        async with got["Body"] as body:
            while chunk := await body.read(READ_CHUNK):
                yield chunk

    async def link(self, key: str, *, content_type: str, disposition: str) -> str | None:
        try:
            return await self._presign(key, content_type=content_type, disposition=disposition)
        except Exception as exc:  # no credentials found, a client that cannot be made
            raise StoreError(f"S3: {type(exc).__name__}") from exc

    async def _presign(self, key: str, *, content_type: str, disposition: str) -> str:
        s3 = await self._s3()
        url: str = await s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": "private",
            },
            ExpiresIn=LINK_SECONDS,
        )
        return url

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            s3 = await self._s3()
            await s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": self._key(k)} for k in keys], "Quiet": True},
            )
        except Exception as exc:
            raise StoreError(f"S3: {type(exc).__name__}") from exc

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


def link_origins(settings: Settings) -> tuple[str, ...]:
    """Where the store's signed links point, for the pages' Content-Security-Policy (their
    images, and the widget's fetches, follow the 302 of `GET url` there): nothing for a
    directory; the endpoint, path-style or with the bucket as a subdomain; else AWS's."""
    if settings.storage.kind != "s3":
        return ()
    if settings.s3_endpoint_url is None:
        return ("https://*.amazonaws.com",)
    parts = urlsplit(settings.s3_endpoint_url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    where = host if parts.port is None else f"{host}:{parts.port}"
    return (f"{parts.scheme}://{where}", f"{parts.scheme}://*.{where}")


def make_store(settings: Settings) -> Store:
    """The store `STORAGE_URL` names. A relative directory is taken from the SQLite database's
    directory, else from the working directory."""
    if settings.storage.kind == "s3":
        return S3Store(settings)
    directory = Path(settings.storage.location)
    if not directory.is_absolute():
        db_file = sqlite_path(settings.database_url)
        base = db_file.parent if db_file is not None else Path.cwd()
        directory = base / directory
    return FileStore(directory)
