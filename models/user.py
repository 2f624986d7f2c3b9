"""`User` on the old service's table `usuarios`, whose four columns are kept as they are."""

from __future__ import annotations

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


def user_named(dialect: str, name: str) -> ColumnElement[bool]:
    """A WHERE clause finding `name` in any spelling of case.

    MariaDB's collation and SQLite's NOCASE column already ignore case (and keep the primary
    key usable); PostgreSQL compares lower() against its unique expression index.
    """
    if dialect == "postgresql":
        return func.lower(User.user) == name.lower()
    return User.user == name
