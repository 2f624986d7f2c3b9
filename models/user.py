"""`User` on the old service's table `usuarios`, whose four columns are kept as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base

ADMIN = "admin"
USER = "user"


class User(Base):
    __tablename__ = "usuarios"

    user: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    rol: Mapped[str] = mapped_column(String(10))
    password: Mapped[str] = mapped_column(String(255))

    @property
    def is_admin(self) -> bool:
        return self.rol == ADMIN


class Person(Protocol):
    """What code acting for someone reads of them: a `User` row or an `Identity`."""

    @property
    def user(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def rol(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a live socket speaks for, as read at its handshake: the three public columns of
    `usuarios` and nothing else (no password hash, no ORM state), held for the socket's life."""

    user: str
    name: str
    rol: str

    @property
    def is_admin(self) -> bool:
        return self.rol == ADMIN


def user_named(dialect: str, name: str) -> ColumnElement[bool]:
    """A WHERE clause finding `name` in any spelling of case.

    MariaDB's collation and SQLite's NOCASE column already ignore case (and keep the primary
    key usable); PostgreSQL compares lower() against its unique expression index.
    """
    if dialect == "postgresql":
        return func.lower(User.user) == name.lower()
    return User.user == name
