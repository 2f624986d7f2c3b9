"""`User` on the old service's table `usuarios`, whose four columns are kept as they are."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, load_only, mapped_column

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


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(name: str) -> str:
    """`name` with A-Z as a-z and every other character as it is (no Unicode case folding)."""
    return name.translate(_ASCII_LOWER)


def same_name(stored: str, given: str) -> bool:
    """Whether `given` names the user stored as `stored`: equal up to ASCII case only."""
    return ascii_lower(stored) == ascii_lower(given)


def _storable(name: str) -> bool:
    """No U+0000 (PostgreSQL text cannot hold it) and no lone surrogate (not UTF-8)."""
    if "\x00" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def user_named(
    db: AsyncSession, dialect: str, name: str, *, public_only: bool = False
) -> User | None:
    """The user whose stored name equals `name` up to ASCII case, on every database: the one
    way any name from outside (login, `to`, `with`, the role path, a token) finds a user.

    The database narrows to candidates with its index, by rules that are looser than ours
    (MariaDB's collation pads trailing spaces and folds accents, PostgreSQL's lower() folds
    Unicode case such as the Kelvin sign); the exact comparison is made here.
    """
    if not _storable(name):
        return None  # no stored name holds it, and some databases refuse to be asked
    if dialect == "postgresql":  # the unique expression index on lower("user")
        near = func.lower(User.user) == func.lower(name)
    else:  # MariaDB's *_ci collation, SQLite's NOCASE column: the primary key
        near = User.user == name
    query = select(User).where(near)
    if public_only:  # not the password hash: for what keeps only who the user is
        query = query.options(load_only(User.user, User.name, User.rol))
    for user in (await db.execute(query)).scalars():
        if same_name(user.user, name):
            return user
    return None
