"""Images of uploads, with Pillow, in a worker thread (never on the event loop): the format
checked against the declared type, the size read, JPEG metadata removed (orientation applied
first), a thumbnail of the first frame. Pixel counts above Pillow's decompression-bomb
threshold are refused before anything is decoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError, features

from services.errors import AppError, Code

# The declared media type -> the format Pillow must find in the bytes.
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
THUMBNAIL_PX = 320
JPEG_QUALITY = 90
# Pillow's threshold for its decompression-bomb warning (about 89 million pixels).
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


@dataclass(frozen=True)
class Examined:
    width: int
    height: int
    thumbnail_type: str  # of the file written to the thumbnail path
    rewritten: bool  # the original's file was replaced (a JPEG without its metadata)


def thumbnail_type() -> str:
    return "image/webp" if features.check("webp") else "image/png"


def examine(path: Path, content_type: str, thumbnail: Path) -> Examined:
    """Check the image in `path`, strip a JPEG's metadata in place, write a thumbnail to
    `thumbnail`. Raises `AppError`: `unsupported_media_type` when the bytes are not an image of
    `content_type`, `too_large` past `Image.MAX_IMAGE_PIXELS` pixels."""
    expected = FORMATS[content_type]
    try:
        with Image.open(path, formats=[expected]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                # Pillow only warns up to twice its threshold: a warning is no refusal.
                raise AppError(
                    Code.TOO_LARGE, "Images may have at most %(max)d pixels.", max=MAX_PIXELS
                )
            image.seek(0)  # the first frame of an animation
            image.load()
            rewritten = False
            if expected == "JPEG":
                upright = ImageOps.exif_transpose(image)
                width, height = upright.size
                icc = image.info.get("icc_profile")
                upright.save(
                    path.with_suffix(".clean"),
                    "JPEG",
                    quality=JPEG_QUALITY,
                    **({"icc_profile": icc} if icc else {}),
                )
                path.with_suffix(".clean").replace(path)
                rewritten = True
                frame = upright
            else:
                frame = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image
            small = frame.copy()
            small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            kind = thumbnail_type()
            if small.mode not in ("RGB", "RGBA"):
                small = small.convert("RGBA")
            small.save(thumbnail, "WEBP" if kind == "image/webp" else "PNG")
    except AppError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AppError(
            Code.TOO_LARGE, "Images may have at most %(max)d pixels.", max=MAX_PIXELS
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise AppError(
            Code.UNSUPPORTED_MEDIA_TYPE,
            "The file is not a readable %(type)s image.",
            type=content_type,
        ) from exc
    return Examined(width, height, kind, rewritten)
