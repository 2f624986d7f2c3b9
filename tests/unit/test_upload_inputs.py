"""Parsing of what uploads and messages with attachments send: `Upload-Name`, the ids of a
message's `attachments`, and `Incoming`, which judges a body's size and type as it comes."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.errors import AppError, Code
from services.incoming import SNIFF_BYTES, Incoming, UploadRequest
from services.inputs import Draft, attachment_ids, upload_id, upload_name

ID = "b1Vq0yXz4tq0kRj9mZ8c3A"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("report.pdf", "report.pdf"),
        ("screen%20shot.png", "screen shot.png"),
        ("r%C3%A9sum%C3%A9.txt", "résumé.txt"),
        ("%E2%98%83", "☃"),
        ("%20%20padded.txt%20", "padded.txt"),
        ("..hidden", "..hidden"),
        ("n" * 255, "n" * 255),
    ],
)
def test_upload_names_are_percent_decoded(raw, name):
    assert upload_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "%20",
        ".",
        "..",
        "a%2Fb",
        "..%2F..%2Fetc%2Fpasswd",
        "C%3A%5Cwindows%5Cx",
        "a%00b",
        "a%0Ab",
        "a%7Fb",
        "evil%E2%80%AEtxt.exe",  # right-to-left override
        "%FF",  # not UTF-8
        "%ED%A0%80",  # a surrogate in UTF-8
        "raw é",  # not percent-encoded
        "tab\there",
        "n" * 256,
        "%C3%A9" * 256,
    ],
)
def test_bad_upload_names_are_invalid(raw):
    with pytest.raises(AppError) as caught:
        upload_name(raw)
    assert caught.value.code is Code.INVALID


def test_attachment_ids_are_at_most_ten_distinct_upload_ids():
    assert attachment_ids(None) == ()
    assert attachment_ids([]) == ()
    ten = [f"{i:02d}{ID[2:]}" for i in range(10)]
    assert attachment_ids(ten) == tuple(ten)
    bad: object
    for bad in ([*ten, "x" * 22], [ID, ID], [ID[:-1]], [ID + "A"], ["../" + ID[3:]], [1], ID, {}):
        with pytest.raises(AppError) as caught:
            attachment_ids(bad)
        assert caught.value.code is Code.INVALID
    assert upload_id(ID) == ID
    assert upload_id("short") is None


def test_text_may_be_empty_only_with_attachments():
    draft = Draft.parse({"text": "", "attachments": [ID]}, max_text=10)
    assert (draft.text, draft.attachments) == ("", (ID,))
    assert Draft.parse({"attachments": [ID]}, max_text=10).text == ""
    assert Draft.parse({"text": "hi"}, max_text=10).attachments == ()
    for body in ({"text": ""}, {"text": "", "attachments": []}, {"attachments": None}):
        with pytest.raises(AppError):
            Draft.parse(body, max_text=10)
    with pytest.raises(AppError):  # the text's own rules still hold
        Draft.parse({"text": "x" * 11, "attachments": [ID]}, max_text=10)


def incoming(tmp_path: Path, content_type: str, limit: int = 1000) -> Incoming:
    return Incoming(UploadRequest("f", content_type, None), limit=limit, scratch=tmp_path)


def test_a_body_is_refused_as_soon_as_it_passes_the_limit(tmp_path):
    body = incoming(tmp_path, "text/plain", limit=100)
    body.feed(b"a" * 100)
    with pytest.raises(AppError) as caught:
        body.feed(b"a")
    assert caught.value.code is Code.TOO_LARGE
    body.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_binary_type_is_judged_once_its_first_bytes_are_in(tmp_path):
    body = incoming(tmp_path, "application/pdf", limit=10 * SNIFF_BYTES)
    body.feed(b"\x89PNG\r\n\x1a\n")  # too few bytes to judge yet
    with pytest.raises(AppError) as caught:
        body.feed(b"\x00" * SNIFF_BYTES)  # now it can: a PNG, not a PDF
    assert caught.value.code is Code.UNSUPPORTED_MEDIA_TYPE
    body.discard()
    small = incoming(tmp_path, "application/pdf")
    small.feed(b"%PDF-1.7\n")
    small.done()  # judged at the end when shorter than what is sniffed
    assert small.path.read_bytes() == b"%PDF-1.7\n"
    small.discard()


def test_text_must_be_utf8_without_nul_even_split_across_reads(tmp_path):
    body = incoming(tmp_path, "text/plain")
    snowman = "☃".encode()
    body.feed(snowman[:1])  # a character cut between two reads is fine
    body.feed(snowman[1:] + b"\n")
    body.done()
    for chunks in ([b"ok", b"\x00"], [b"caf\xe9"], [b"\xe2\x98"]):
        bad = incoming(tmp_path, "text/plain")
        with pytest.raises(AppError) as caught:
            for chunk in chunks:
                bad.feed(chunk)
            bad.done()
        assert caught.value.code is Code.UNSUPPORTED_MEDIA_TYPE
        bad.discard()
    empty = incoming(tmp_path, "text/plain")
    with pytest.raises(AppError) as caught:
        empty.done()
    assert caught.value.code is Code.INVALID
