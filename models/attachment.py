"""Attachments: files uploaded by a user, then claimed by one of its messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base
from models.types import UtcDateTime

ID_CHARS = 22  # secrets.token_urlsafe(16): 128 random bits
# Ids are random and compared exactly (MariaDB's default collation ignores case).
ExactId = String(ID_CHARS).with_variant(mysql.VARCHAR(ID_CHARS, collation="utf8mb4_bin"), "mysql")
NAME_MAX = 255


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(ExactId, primary_key=True)
    uploader: Mapped[str] = mapped_column(String(32))
    # The message that claimed it (a conditional UPDATE in the message's own transaction);
    # None until then. No foreign key: messages are never deleted, and tests empty tables.
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(127))
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Keys in the store: random, never made from the name.
    storage_key: Mapped[str] = mapped_column(String(64))
    thumbnail_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    thumbnail_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    # A message's attachments; the unclaimed ones by age, for the sweep.
    __table_args__ = (Index("ix_attachments_message_id", "message_id", "created_at"),)

    @property
    def is_image(self) -> bool:
        return self.width is not None
