"""Attachments from outside: uploads over HTTP (streamed, sized and typed from their bytes),
images (size, thumbnail, JPEG metadata), who may read them, messages that claim them (once,
in the message's own transaction), the sweep of unclaimed ones, both stores (a directory and a
local S3-compatible server), two workers on one Redis, and bodies far past the limit."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image
from sqlalchemy import select, update

import services.uploads
from config.settings import Secret, Storage
from models.attachment import Attachment
from services.storage import PART_BYTES
from tests.conftest import Stack, StackFactory, free_port, service_url, statements
from tests.integration.test_api import assert_error, bearer

SQLITE_ONLY = pytest.mark.parametrize("make_stack", ["sqlite"], indirect=True)


# -- helpers --------------------------------------------------------------------------------


def png(width: int = 640, height: int = 480, color: tuple[int, ...] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif(width: int = 400, height: int = 200) -> bytes:
    """A JPEG turned on its side (orientation 6) with a GPS position in its EXIF."""
    image = Image.new("RGB", (width, height), (10, 120, 240))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (40.0, 26.0, 46.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels that compresses to a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    pack = zlib.compressobj(9)
    data = b"".join(pack.compress(row) for _ in range(side)) + pack.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def upload(
    stack: Stack,
    token: str | None,
    body: Any,
    *,
    name: str | None = "file.bin",
    content_type: str | None = "image/png",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    assert stack.http is not None
    sent = dict(headers or {})
    if token is not None:
        sent.update(bearer(token))
    if name is not None:
        sent["Upload-Name"] = quote(name, safe="")
    if content_type is not None:
        sent["Content-Type"] = content_type
    return await stack.http.post("/api/uploads", content=body, headers=sent)


def attachment_of(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"attachment"}
    a: dict[str, Any] = body["attachment"]
    assert set(a) == {
        "id",
        "name",
        "size",
        "content_type",
        "url",
        "thumbnail_url",
        "width",
        "height",
    }
    assert len(a["id"]) == 22 and a["url"] == f"/api/uploads/{a['id']}"
    return a


async def uploaded(stack: Stack, token: str, body: bytes, **kwargs: Any) -> dict[str, Any]:
    return attachment_of(await upload(stack, token, body, **kwargs))


async def fetch(stack: Stack, url: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    assert stack.http is not None
    return await stack.http.get(url, headers=bearer(token) if token else {}, **kwargs)


def files(stack: Stack) -> list[str]:
    directory = Path(stack.settings.storage.location)
    return sorted(p.name for p in directory.iterdir() if p.is_file())


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


async def with_files(make_stack: StackFactory, store_dir: Path, **settings: Any) -> Stack:
    return await make_stack(storage=Storage("file", str(store_dir)), **settings)


async def rows(stack: Stack) -> list[Attachment]:
    async with stack.services.sessions() as db:
        return list((await db.execute(select(Attachment))).scalars())


async def people(stack: Stack) -> tuple[str, str, str]:
    """Tokens of an admin, the user "ana" and the user "bob"."""
    return (
        await stack.register("boss", "Boss", admin=True),
        await stack.register("ana", "Ana"),
        await stack.register("bob", "Bob"),
    )


# -- the whole way, on every database -------------------------------------------------------


async def test_an_image_goes_up_into_a_message_and_back_to_those_who_may_see_it(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    boss, ana, bob = await people(stack)
    image = png(640, 480)
    a = await uploaded(stack, ana, image, name="red square.png")
    assert a["name"] == "red square.png" and a["content_type"] == "image/png"
    assert a["size"] == len(image) and (a["width"], a["height"]) == (640, 480)
    assert a["thumbnail_url"] == f"/api/uploads/{a['id']}/thumbnail"
    # The files are named by random keys, private, in a private directory.
    assert len(files(stack)) == 2 and not any("red" in f for f in files(stack))
    assert (store_dir.stat().st_mode & 0o777) == 0o700
    assert all((store_dir / f).stat().st_mode & 0o777 == 0o600 for f in files(stack))

    # Before it is in a message: the uploader only.
    assert (await fetch(stack, a["url"], ana)).content == image
    for who in (boss, bob, None):
        assert_error(await fetch(stack, a["url"], who), 404, "not_found")

    admin = await stack.connect(boss)
    user = await stack.connect(ana)
    ack = await user.call("mensaje_privado", {"text": "", "attachments": [a["id"]]})
    assert ack["ok"], ack
    assert ack["message"]["text"] == "" and ack["message"]["attachments"] == [a]
    live = (await admin.wait_for("mensaje_privado"))[0]
    assert live["attachments"] == [a]

    # Now the conversation's user and every admin, by Bearer or cookie; nobody else.
    got = await fetch(stack, a["url"], boss)
    assert got.status_code == 200 and got.content == image
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"] == "private"
    assert got.headers["content-security-policy"] == "default-src 'none'"
    assert got.headers["content-disposition"] == (
        "inline; filename=\"red square.png\"; filename*=UTF-8''red%20square.png"
    )
    assert stack.http is not None
    cookie = await stack.http.get(a["url"], headers={"Cookie": f"token={ana}"})
    assert cookie.status_code == 200 and cookie.content == image
    assert_error(await fetch(stack, a["url"], bob), 404, "not_found")
    assert_error(await fetch(stack, a["url"]), 404, "not_found")
    assert_error(await fetch(stack, a["thumbnail_url"], bob), 404, "not_found")
    thumb = await fetch(stack, a["thumbnail_url"], ana)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert thumb.headers["content-security-policy"] == "default-src 'none'"
    small = Image.open(io.BytesIO(thumb.content))
    assert small.size == (320, 240)

    # Every way of reading messages carries them.
    assert (await user.call("sync", {"after": 0}))["messages"][0]["attachments"] == [a]
    history = await fetch(stack, "/api/messages", ana)
    assert history.json()["messages"][0]["attachments"] == [a]
    inbox = await fetch(stack, "/api/conversations", boss)
    assert inbox.json()["conversations"][0]["last_message"]["attachments"] == [a]
    # ... and messages without any carry [].
    plain = await user.call("mensaje_privado", {"text": "just words"})
    assert plain["message"]["attachments"] == []
    assert (await fetch(stack, "/api/messages", ana)).json()["messages"][1]["attachments"] == []


async def test_a_message_claims_only_its_senders_unused_uploads(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, bob = await people(stack)
    mine = await uploaded(stack, ana, png(), name="a.png")
    theirs = await uploaded(stack, bob, png(), name="b.png")
    user = await stack.connect(ana)

    async def send(payload: dict[str, Any]) -> dict[str, Any]:
        return dict(await user.call("mensaje_privado", payload))

    def refused(ack: dict[str, Any]) -> None:
        assert ack == {"ok": False, "error": "invalid", "message": ack["message"]}, ack

    refused(await send({"text": "x", "attachments": [theirs["id"]]}))  # someone else's
    refused(await send({"text": "x", "attachments": ["A" * 22]}))  # unknown
    refused(await send({"text": "x", "attachments": ["../../etc/passwd"]}))
    refused(await send({"text": "x", "attachments": [mine["id"], mine["id"]]}))
    refused(await send({"text": "x", "attachments": [mine["id"]] * 11}))
    refused(await send({"text": "x", "attachments": "nope"}))
    refused(await send({"text": "", "attachments": []}))  # empty text needs attachments
    refused(await send({"text": ""}))
    assert (await fetch(stack, "/api/messages", ana)).json()["messages"] == []

    first = await send({"attachments": [mine["id"]], "client_msg_id": "c1"})
    assert first["ok"] and first["message"]["attachments"] == [mine]
    # The resend gets the stored message, though its upload is used now.
    again = await send({"text": "other", "attachments": [mine["id"]], "client_msg_id": "c1"})
    assert again == first
    refused(await send({"text": "x", "attachments": [mine["id"]]}))  # already in a message
    refused(await send({"text": "x", "attachments": [mine["id"]], "client_msg_id": "c2"}))
    listed = (await fetch(stack, "/api/messages", ana)).json()["messages"]
    assert [m["id"] for m in listed] == [first["message"]["id"]]

    # Ten at once, in the order they were uploaded.
    ten = [await uploaded(stack, ana, png(8, 8), name=f"{i}.png") for i in range(10)]
    ack = await send({"text": "all", "attachments": [t["id"] for t in reversed(ten)]})
    assert ack["ok"] and ack["message"]["attachments"] == ten
    more = await uploaded(stack, ana, pdf(), content_type="application/pdf")
    assert (await send({"text": "one more", "attachments": [more["id"]]}))["ok"]
    # A list of messages reads the attachments of all of them in one query.
    with statements(stack) as seen:
        synced = (await user.call("sync", {"after": 0}))["messages"]
    assert [m["attachments"] for m in synced] == [[mine], ten, [more]]
    assert len([s for s in seen if "FROM attachments" in s]) == 1, seen


async def test_concurrent_messages_claim_an_upload_once(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    a = await uploaded(stack, ana, pdf(), name="doc.pdf", content_type="application/pdf")
    sockets = [await stack.connect(ana) for _ in range(4)]
    acks = await asyncio.gather(
        *(
            s.call("mensaje_privado", {"text": f"try {i}", "attachments": [a["id"]]})
            for i, s in enumerate(sockets)
        )
    )
    won = [ack for ack in acks if ack["ok"]]
    assert len(won) == 1, acks
    assert all(ack["error"] == "invalid" for ack in acks if not ack["ok"])
    stored = (await fetch(stack, "/api/messages", ana)).json()["messages"]
    assert [m["id"] for m in stored] == [won[0]["message"]["id"]]
    assert [r.message_id for r in await rows(stack)] == [won[0]["message"]["id"]]


async def test_messages_without_attachments_cost_no_attachment_query(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    user = await stack.connect(ana)
    # The first message opens the conversation (announced with its last message, read back).
    assert (await user.call("mensaje_privado", {"text": "hello"}))["ok"]
    with statements(stack) as seen:
        acks = await asyncio.gather(
            *(user.call("mensaje_privado", {"text": f"m{i}"}) for i in range(20))
        )
    assert all(ack["ok"] for ack in acks)
    assert any("INSERT INTO messages" in s for s in seen)
    assert not [s for s in seen if "attachments" in s]


async def test_private_notes_attachments_are_the_teams_only(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    boss, ana, _ = await people(stack)
    lead = await stack.register("lead", "Lead", admin=True)
    await (await stack.connect(ana)).call("mensaje_privado", {"text": "hi"})
    a = await uploaded(stack, boss, b"internal only\n", name="n.txt", content_type="text/plain")
    admin = await stack.connect(boss)
    ack = await admin.call(
        "mensaje_privado", {"to": "ana", "note": True, "text": "see", "attachments": [a["id"]]}
    )
    assert ack["ok"], ack
    assert (await fetch(stack, a["url"], lead)).text == "internal only\n"
    assert_error(await fetch(stack, a["url"], ana), 404, "not_found")
    # A reply (not a note) shows its attachment to the user.
    b = await uploaded(stack, boss, b"for you\n", name="r.txt", content_type="text/plain")
    ack = await admin.call("mensaje_privado", {"to": "ana", "text": "", "attachments": [b["id"]]})
    assert ack["ok"], ack
    got = await fetch(stack, b["url"], ana)
    assert got.text == "for you\n" and got.headers["content-type"] == "text/plain; charset=utf-8"
    assert got.headers["content-disposition"].startswith("attachment; ")


async def test_unclaimed_uploads_are_deleted_after_a_day_by_exactly_one_sweeper(
    make_stack: StackFactory, store_dir: Path
) -> None:
    a_stack = await with_files(make_stack, store_dir)
    b_stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(a_stack)
    old = [await uploaded(a_stack, ana, png(16, 16), name=f"{i}.png") for i in range(3)]
    used = await uploaded(a_stack, ana, png(16, 16), name="used.png")
    fresh = await uploaded(a_stack, ana, png(16, 16), name="fresh.png")
    user = await a_stack.connect(ana)
    assert (await user.call("mensaje_privado", {"text": "", "attachments": [used["id"]]}))["ok"]
    day_ago = datetime.now(UTC) - timedelta(hours=25)
    async with a_stack.services.sessions.begin() as db:
        await db.execute(
            update(Attachment)
            .where(Attachment.id.in_([*(o["id"] for o in old), used["id"]]))
            .values(created_at=day_ago)
        )
    assert len(files(a_stack)) == 10
    counts = await asyncio.gather(
        a_stack.services.uploads.sweep_once(), b_stack.services.uploads.sweep_once()
    )
    assert sum(counts) == 3
    assert sorted(r.id for r in await rows(a_stack)) == sorted([used["id"], fresh["id"]])
    assert len(files(a_stack)) == 4
    for gone in old:
        assert_error(await fetch(a_stack, gone["url"], ana), 404, "not_found")
    assert (await fetch(a_stack, used["url"], ana)).status_code == 200
    assert await a_stack.services.uploads.sweep_once() == 0


# -- what an upload must be ---------------------------------------------------------------


@SQLITE_ONLY
async def test_jpeg_metadata_is_removed_after_turning_it_upright(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    original = jpeg_with_exif(400, 200)
    assert b"PhoneMaker" in original
    a = await uploaded(stack, ana, original, name="IMG_0001.JPG", content_type="image/jpeg")
    assert (a["width"], a["height"]) == (200, 400)  # turned as the orientation said
    stored = (await fetch(stack, a["url"], ana)).content
    assert a["size"] == len(stored)
    assert b"Exif" not in stored and b"PhoneMaker" not in stored
    image = Image.open(io.BytesIO(stored))
    assert image.size == (200, 400) and not image.getexif()
    thumb = Image.open(io.BytesIO((await fetch(stack, a["thumbnail_url"], ana)).content))
    assert thumb.size == (160, 320)


@SQLITE_ONLY
async def test_an_animation_keeps_its_frames_and_thumbnails_the_first(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    frames = [Image.new("RGB", (500, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    a = await uploaded(stack, ana, out.getvalue(), name="anim.gif", content_type="image/gif")
    assert (a["width"], a["height"]) == (500, 100)
    assert (await fetch(stack, a["url"], ana)).content == out.getvalue()
    thumb = Image.open(io.BytesIO((await fetch(stack, a["thumbnail_url"], ana)).content))
    assert thumb.size == (320, 64)
    red, _, blue = thumb.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert red > 200 and blue < 50  # the first frame


@SQLITE_ONLY
async def test_types_are_judged_by_the_bytes(make_stack: StackFactory, store_dir: Path) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    header_only = b"\x89PNG\r\n\x1a\n" + b"just some text pretending\n" * 10
    cases = [
        (header_only, "image/jpeg"),  # a PNG header on a text file, said to be a JPEG
        (header_only, "image/png"),  # a PNG header and nothing of a PNG after it
        (b"hello, world\n", "image/png"),
        (png(), "image/jpeg"),
        (png(), "text/plain"),  # binary is not text
        (b"caf\xe9\n", "text/plain"),  # not UTF-8
        (b"nul\x00inside", "text/plain"),
        (pdf(), "image/png"),
        (b"PK\x03\x04" + b"\x00" * 40, "application/zip"),  # not in UPLOAD_TYPES
        (png(), "image/svg+xml"),
        (png(), None),
    ]
    for body, declared in cases:
        r = await upload(stack, ana, body, name="x", content_type=declared)
        assert_error(r, 415, "unsupported_media_type")
    assert await rows(stack) == [] and files(stack) == []
    # What is what it says is taken.
    text = await uploaded(stack, ana, "héllo ☃\n".encode(), name="t.txt", content_type="text/plain")
    assert text["thumbnail_url"] is None and text["width"] is None and text["height"] is None
    assert (await uploaded(stack, ana, pdf(), content_type="application/pdf"))["width"] is None
    charset = await uploaded(stack, ana, b"x", content_type="text/plain; charset=utf-8")
    assert charset["content_type"] == "text/plain"


@SQLITE_ONLY
async def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    bomb = png_bomb(20_000)
    assert len(bomb) < 200_000
    assert_error(await upload(stack, ana, bomb, name="bomb.png"), 413, "too_large")
    assert await rows(stack) == [] and files(stack) == []


@SQLITE_ONLY
async def test_an_image_not_examined_in_time_is_refused(
    make_stack: StackFactory, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    monkeypatch.setattr(services.uploads, "IMAGE_SECONDS", 0.000_001)
    r = await upload(stack, ana, png(2000, 2000), name="slow.png")
    assert_error(r, 413, "too_large")
    assert await rows(stack) == [] and files(stack) == []


@SQLITE_ONLY
async def test_names_are_checked_and_never_paths(make_stack: StackFactory, store_dir: Path) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    body = b"text\n"
    bad = [
        None,
        "",
        "../../etc/passwd",
        "..",
        "dir\\file.txt",
        "a\nb.txt",
        "a\x00b.txt",
        "evil\u202etxt.exe",
        "x" * 256,
        "é" * 1000,
    ]
    for name in bad:
        r = await upload(stack, ana, body, name=name, content_type="text/plain")
        assert_error(r, 400, "invalid")
    raw = {"Upload-Name": "%FF%FE.txt", **bearer(ana), "Content-Type": "text/plain"}
    assert stack.http is not None
    assert_error(await stack.http.post("/api/uploads", content=body, headers=raw), 400, "invalid")
    assert await rows(stack) == []
    a = await uploaded(stack, ana, body, name='résumé "final".txt', content_type="text/plain")
    assert a["name"] == 'résumé "final".txt'
    got = await fetch(stack, a["url"], ana)
    assert got.headers["content-disposition"] == (
        'attachment; filename="r_sum_ _final_.txt"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt"
    )
    assert len(await uploaded(stack, ana, body, name="n" * 255, content_type="text/plain")) > 0


@SQLITE_ONLY
async def test_refusals_of_the_route(make_stack: StackFactory, store_dir: Path) -> None:
    stack = await with_files(make_stack, store_dir, uploads_per_minute=3)
    _, ana, bob = await people(stack)
    assert_error(await upload(stack, None, png()), 401, "unauthenticated")
    assert_error(await upload(stack, "not.a.token", png()), 401, "unauthenticated")
    assert_error(await upload(stack, ana, b"", content_type="text/plain"), 400, "invalid")
    assert stack.http is not None
    r = await stack.http.put("/api/uploads", content=png(), headers=bearer(ana))
    assert r.status_code == 405
    r = await stack.http.post(f"/api/uploads/{'A' * 22}", json={}, headers=bearer(ana))
    assert r.status_code == 405
    for url in ("/api/uploads/short", f"/api/uploads/{'A' * 22}", f"/api/uploads/{'A' * 22}/x"):
        assert_error(await fetch(stack, url, ana), 404, "not_found")
    # The per-user allowance: three a minute (what the headers refuse does not count), then 429.
    for _ in range(2):
        await uploaded(stack, ana, png(8, 8))
    assert_error(await upload(stack, ana, b"not a png"), 415, "unsupported_media_type")
    assert_error(await upload(stack, ana, png(8, 8)), 429, "rate_limited")
    await uploaded(stack, bob, png(8, 8))  # everyone has their own
    # A text upload has no thumbnail.
    t = await uploaded(stack, bob, b"t", content_type="text/plain")
    assert_error(await fetch(stack, f"{t['url']}/thumbnail", bob), 404, "not_found")


# -- bodies past the limit: refused early, memory flat --------------------------------------


def rss_bytes() -> int:
    """The resident memory of this process: the server runs in it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def raw_post(
    stack: Stack, token: str, head: dict[str, str], chunks: Iterator[bytes]
) -> tuple[bytes, int]:
    """Send a request head and then `chunks` until the server answers or closes; what it
    answered and how many body bytes went out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    lines = [
        "POST /api/uploads HTTP/1.1",
        f"Host: 127.0.0.1:{stack.port}",
        f"Authorization: Bearer {token}",
        "Upload-Name: big.txt",
        "Content-Type: text/plain",
        *(f"{k}: {v}" for k, v in head.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = asyncio.ensure_future(reader.read(4096))
    sent = 0
    try:
        for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    except (ConnectionError, OSError):
        pass
    got = await asyncio.wait_for(answer, 10)
    writer.close()
    return got, sent


def text_chunks(total: int, size: int = 256 * 1024, *, chunked: bool = False) -> Iterator[bytes]:
    block = b"0123456789abcdef" * (size // 16)
    left = total
    while left > 0:
        piece = block[: min(size, left)]
        left -= len(piece)
        yield b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


@SQLITE_ONLY
async def test_bodies_past_the_limit_are_refused_without_being_held(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir, upload_max_bytes=4 * 1024 * 1024)
    _, ana, _ = await people(stack)
    before = rss_bytes()
    huge = 200 * 1024 * 1024

    # Known from Content-Length: answered before the body, which is never read.
    got, sent = await raw_post(stack, ana, {"Content-Length": str(huge)}, text_chunks(huge))
    assert got.startswith(b"HTTP/1.1 413 "), got[:200]
    assert b'"too_large"' in got
    assert sent < 64 * 1024 * 1024, sent
    print(f"Content-Length refused after {sent / 2**20:.1f} MiB sent")

    # A chunked body of unknown length: cut once it passes the limit.
    got, sent = await raw_post(
        stack, ana, {"Transfer-Encoding": "chunked"}, text_chunks(huge, chunked=True)
    )
    assert got.startswith(b"HTTP/1.1 413 "), got[:200]
    assert sent < 64 * 1024 * 1024, sent
    print(f"chunked body cut after {sent / 2**20:.1f} MiB sent")

    # With Expect: 100-continue, the refusal comes instead of the 100.
    got, sent = await raw_post(
        stack,
        ana,
        {"Content-Length": str(huge), "Expect": "100-continue"},
        iter(()),
    )
    assert got.startswith(b"HTTP/1.1 413 "), got[:200]

    growth = rss_bytes() - before
    print(f"200 MB refused twice: RSS +{growth / 2**20:.1f} MiB")  # shown by pytest -s
    assert growth < 32 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB"
    assert await rows(stack) == [] and files(stack) == []
    assert os.listdir(store_dir / ".incoming") == []

    # Just under the limit, streamed in pieces, is taken.
    limit = stack.settings.upload_max_bytes
    got, sent = await raw_post(stack, ana, {"Content-Length": str(limit)}, text_chunks(limit))
    assert got.startswith(b"HTTP/1.1 201 "), got[:300]
    assert [r.size for r in await rows(stack)] == [limit]


@SQLITE_ONLY
async def test_a_client_that_sends_its_whole_body_first_still_reads_the_refusal(
    make_stack: StackFactory, store_dir: Path
) -> None:
    """httpx, like most clients, reads the answer only once its body is sent: the refusal is
    sent at once, and the rest of the body is dropped as it comes rather than reset."""
    stack = await with_files(make_stack, store_dir, upload_max_bytes=1024 * 1024)
    _, ana, _ = await people(stack)
    big = b"a" * (8 * 1024 * 1024)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b"b" * (256 * 1024)

    for _ in range(2):  # and the connection, kept alive, serves the next request
        assert_error(await upload(stack, ana, big, content_type="text/plain"), 413, "too_large")
        r = await upload(stack, ana, chunked(), content_type="text/plain")
        assert_error(r, 413, "too_large")
        r = await upload(stack, None, big, content_type="text/plain")
        assert_error(r, 401, "unauthenticated")
        r = await upload(stack, ana, big[: 512 * 1024], content_type="image/png")
        assert_error(r, 415, "unsupported_media_type")  # judged by its first bytes
    assert (await uploaded(stack, ana, b"fine", content_type="text/plain"))["size"] == 4
    assert len(await rows(stack)) == 1


# -- a store that is down ---------------------------------------------------------------------


@SQLITE_ONLY
async def test_an_unreachable_s3_store_is_unavailable_and_nothing_is_half_stored(
    make_stack: StackFactory,
) -> None:
    closed = free_port()
    stack = await make_stack(
        storage=Storage("s3", "attachments", "chat/"),
        s3_endpoint_url=f"http://127.0.0.1:{closed}",
        aws_access_key_id="test-key",
        aws_secret_access_key=Secret("test-secret-value"),
        aws_region="us-east-1",
    )
    _, ana, _ = await people(stack)
    scratch = stack.services.uploads.store.scratch  # shared by this machine's S3 workers
    before = set(os.listdir(scratch))
    assert_error(await upload(stack, ana, png(), name="a.png"), 503, "unavailable")
    assert await rows(stack) == []
    assert set(os.listdir(scratch)) <= before


@SQLITE_ONLY
async def test_a_file_store_that_is_gone_is_unavailable_and_leaves_no_row(
    make_stack: StackFactory, store_dir: Path
) -> None:
    stack = await with_files(make_stack, store_dir)
    _, ana, _ = await people(stack)
    kept = await uploaded(stack, ana, b"kept\n", name="k.txt", content_type="text/plain")
    store_dir.rename(store_dir.with_name("moved"))
    store_dir.write_bytes(b"")  # a file where the directory was: nothing can go in
    assert_error(await upload(stack, ana, png(), name="a.png"), 503, "unavailable")
    assert_error(await fetch(stack, kept["url"], ana), 503, "unavailable")
    assert [r.id for r in await rows(stack)] == [kept["id"]]


# -- S3: a local S3-compatible server -----------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    import boto3

    name = f"chat-{secrets.token_hex(4)}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret-value",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    return name


def s3_settings(endpoint: str, bucket: str) -> dict[str, Any]:
    return {
        "storage": Storage("s3", bucket, "chat/"),
        "s3_endpoint_url": endpoint,
        "aws_access_key_id": "test-key",
        "aws_secret_access_key": Secret("test-secret-value"),
        "aws_region": "us-east-1",
    }


async def s3_keys(endpoint: str, bucket: str) -> list[str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret-value",
        region_name="us-east-1",
    )
    listed = await asyncio.to_thread(client.list_objects_v2, Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


async def test_on_s3_reads_are_redirects_to_urls_signed_for_a_minute(
    make_stack: StackFactory, s3_server: str, s3_bucket: str
) -> None:
    stack = await make_stack(
        **s3_settings(s3_server, s3_bucket), upload_max_bytes=PART_BYTES + 2 * 1024 * 1024
    )
    boss, ana, bob = await people(stack)
    image = png(400, 400)
    a = await uploaded(stack, ana, image, name="photo 1.png")
    keys = await s3_keys(s3_server, s3_bucket)
    assert len(keys) == 2 and all(k.startswith("chat/") and "photo" not in k for k in keys)

    r = await fetch(stack, a["url"], ana)
    assert r.status_code == 302 and r.headers["cache-control"] == "private"
    link = r.headers["location"]
    assert link.startswith(f"{s3_server}/{s3_bucket}/chat/") and "X-Amz-Expires=60" in link
    async with httpx.AsyncClient() as outside:
        got = await outside.get(link)
    assert got.status_code == 200 and got.content == image
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"].startswith('inline; filename="photo 1.png"')
    thumb = await fetch(stack, a["thumbnail_url"], ana)
    async with httpx.AsyncClient() as outside:
        small = await outside.get(thumb.headers["location"])
    assert Image.open(io.BytesIO(small.content)).size == (320, 320)
    for who in (boss, bob, None):
        assert_error(await fetch(stack, a["url"], who), 404, "not_found")

    # Larger than one part: a multipart upload, read back whole.
    big = b"".join(text_chunks(PART_BYTES + 1024 * 1024))
    t = await uploaded(stack, ana, big, name="big.txt", content_type="text/plain")
    async with httpx.AsyncClient() as outside:
        whole = await outside.get((await fetch(stack, t["url"], ana)).headers["location"])
    assert whole.content == big
    assert whole.headers["content-disposition"].startswith("attachment; ")

    # The sweep deletes the objects of what no message claimed.
    async with stack.services.sessions.begin() as db:
        await db.execute(
            update(Attachment).values(created_at=datetime.now(UTC) - timedelta(days=2))
        )
    assert await stack.services.uploads.sweep_once() == 2
    assert await s3_keys(s3_server, s3_bucket) == []


# -- two workers --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_two_workers_share_uploads_and_the_upload_allowance(
    make_stack: StackFactory, store_dir: Path
) -> None:
    redis_url = service_url("redis")
    settings = {"redis_url": redis_url, "uploads_per_minute": 3}
    a = await with_files(make_stack, store_dir, **settings)
    b = await with_files(make_stack, store_dir, **settings)
    boss, ana, _ = await people(a)
    up = await uploaded(a, ana, png(32, 32), name="a.png")
    admin = await a.connect(boss)
    user = await b.connect(ana)
    ack = await user.call("mensaje_privado", {"text": "from b", "attachments": [up["id"]]})
    assert ack["ok"] and ack["message"]["attachments"] == [up]
    assert (await admin.wait_for("mensaje_privado"))[0]["attachments"] == [up]
    assert (await fetch(b, up["url"], boss)).content == (await fetch(a, up["url"], ana)).content
    await uploaded(b, ana, png(8, 8))
    await uploaded(a, ana, png(8, 8))
    assert_error(await upload(b, ana, png(8, 8)), 429, "rate_limited")


@pytest.mark.redis
async def test_two_workers_on_s3(make_stack: StackFactory, s3_server: str, s3_bucket: str) -> None:
    settings = {"redis_url": service_url("redis"), **s3_settings(s3_server, s3_bucket)}
    a = await make_stack(**settings)
    b = await make_stack(**settings)
    boss, ana, _ = await people(a)
    up = await uploaded(a, ana, pdf(), name="doc.pdf", content_type="application/pdf")
    user = await b.connect(ana)
    assert (await user.call("mensaje_privado", {"text": "x", "attachments": [up["id"]]}))["ok"]
    r = await fetch(b, up["url"], boss)
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(r.headers["location"])).content == pdf()


# -- behind nginx, as deployed -----------------------------------------------------------------

from tests.integration.test_nginx import DeploymentFactory, deploy  # noqa: E402, F401


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.mariadb
async def test_uploads_go_through_nginx_and_are_read_back_from_every_worker(
    deploy: DeploymentFactory,  # noqa: F811
) -> None:
    d = await deploy("a", "b")  # UPLOAD_MAX_BYTES: 10 MiB, for nginx-config as for the workers
    await d.add_users("ana", admins=("boss",))
    ana = await d.login("ana")
    headers = {**bearer(ana), "Content-Type": "application/pdf", "Upload-Name": "big.pdf"}
    body = b"%PDF-1.7\n" + os.urandom(3 * 1024 * 1024)  # past nginx's limit for other routes
    r = await d.http.post("/api/uploads", content=body, headers=headers, timeout=30)
    a = attachment_of(r)
    # Past UPLOAD_MAX_BYTES, with a length or chunked: the contract's JSON answer.
    huge = body * 4
    r = await d.http.post("/api/uploads", content=huge, headers=headers, timeout=30)
    assert_error(r, 413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 256 * 1024):
            yield huge[start : start + 256 * 1024]

    r = await d.http.post("/api/uploads", content=chunks(), headers=headers, timeout=30)
    assert_error(r, 413, "too_large")
    got = await d.http.get(a["url"], headers=bearer(ana))
    assert got.status_code == 200 and got.content == body
    for worker in d.workers.values():  # each reads the store the workers share
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}") as direct:
            got = await direct.get(a["url"], headers=bearer(ana))
        assert got.status_code == 200 and got.content == body
    boss = await d.login("boss")
    assert_error(await d.http.get(a["url"], headers=bearer(boss)), 404, "not_found")
