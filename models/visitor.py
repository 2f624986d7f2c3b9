"""`Visitor`: what makes a user of `usuarios` a website visitor (the widget's identities).

A table of its own beside `usuarios`, whose four columns stay as the old service knew them. A
user is a visitor exactly when it has a row here; an identified visitor's row holds the site's
`id` for it, found by its SHA-256 (exact on every database: no collation folds case or pads
spaces in a hex digest)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Boolean, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base
from models.types import UtcDateTime

# Stored in `usuarios.password` for a visitor: no hash format of ours or of the old service
# starts with "!", so no password check can ever accept it (and login refuses it by name).
UNUSABLE_PASSWORD = "!visitor"  # noqa: S105 (not a password: the mark of none)
EXTERNAL_ID_MAX = 255
EMAIL_MAX = 254  # the longest address SMTP carries


class Visitor(Base):
    __tablename__ = "visitors"

    user: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The site's id of an identified visitor (None for an anonymous one) and its key.
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_MAX), nullable=True)
    external_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("external_key", name="uq_visitors_external_key"),)


def external_key(external_id: str) -> str:
    """The unique key of a site's id: its SHA-256, in lowercase hex."""
    return hashlib.sha256(external_id.encode("utf-8")).hexdigest()
