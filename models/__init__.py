"""Database models, engine and migrations."""

from models.db import Base
from models.message import Message, ReadMarker, RevokedToken
from models.user import User

__all__ = ["Base", "Message", "ReadMarker", "RevokedToken", "User"]
