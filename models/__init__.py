"""Database models, engine and migrations."""

from models.attachment import Attachment
from models.conversation import (
    Agent,
    AssignmentLock,
    CannedResponse,
    ConversationEvent,
    ConversationLabel,
    ConversationState,
)
from models.db import Base
from models.message import Message, ReadMarker, RevokedToken
from models.user import User
from models.visitor import Visitor

__all__ = [
    "Agent",
    "AssignmentLock",
    "Attachment",
    "Base",
    "CannedResponse",
    "ConversationEvent",
    "ConversationLabel",
    "ConversationState",
    "Message",
    "ReadMarker",
    "RevokedToken",
    "User",
    "Visitor",
]
