"""Every string of the wire contract, and the shapes sent to clients."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from models.attachment import Attachment
from models.conversation import CannedResponse
from models.message import ADMINS, StoredMessage
from models.user import User
from models.visitor import Visitor

if TYPE_CHECKING:
    from services.team import AdminState, Conversation

# Cookie and rooms
TOKEN_COOKIE = "token"  # noqa: S105 (a cookie name)
ROOM_ADMINS = ADMINS


def user_room(user: str) -> str:
    return f"user:{user}"


# Events
EV_MESSAGE = "mensaje_privado"
EV_TYPING = "typing"
EV_PRESENCE = "presence"
EV_ANNOUNCEMENT = "announcement"
EV_CONVERSATION = "conversation"

# Handshake refusals, exactly as the old service sent them
NOT_AUTHENTICATED = "No autenticado"
NO_TOKEN = "Token no proporcionado"  # noqa: S105
BAD_TOKEN = "Token inválido"  # noqa: S105
REFUSED_UNAVAILABLE = "unavailable"

SYNC_LIMIT = 500
HISTORY_DEFAULT = 50
HISTORY_LIMIT = 200


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, e.g. 2026-11-27T05:25:22.123456Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def user_to_wire(user: User) -> dict[str, str]:
    return {"user": user.user, "name": user.name, "rol": user.rol}


def visitor_to_wire(user: User, visitor: Visitor) -> dict[str, Any]:
    """The `user` of `POST /api/visitors`: a user with what makes it a visitor."""
    return {
        **user_to_wire(user),
        "visitor": True,
        "verified": bool(visitor.verified),
        "email": visitor.email,
    }


def canned_to_wire(canned: CannedResponse) -> dict[str, Any]:
    return {"id": canned.id, "shortcut": canned.shortcut, "text": canned.text}


UPLOADS_PATH = "/api/uploads"


def attachment_to_wire(a: Attachment) -> dict[str, Any]:
    url = f"{UPLOADS_PATH}/{a.id}"
    return {
        "id": a.id,
        "name": a.name,
        "size": a.size,
        "content_type": a.content_type,
        "url": url,
        "thumbnail_url": None if a.thumbnail_key is None else f"{url}/thumbnail",
        "width": a.width,
        "height": a.height,
    }


def message_to_wire(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "from": message.sender,
        "from_name": message.sender_name or message.sender,
        "to": message.recipient,
        "text": message.text,
        "created_at": iso(message.created_at),
        "client_msg_id": message.client_msg_id,
        "note": bool(message.note),
        "attachments": [attachment_to_wire(a) for a in message.attachments],
    }


def conversation_to_wire(c: Conversation) -> dict[str, Any]:
    """A `Conversation`."""
    return {
        "user": c.user,
        "name": c.name,
        "rol": c.rol,
        "online": c.online,
        "unread": c.unread,
        "last_message": message_to_wire(c.last_message),
        "status": c.status,
        "assignee": c.assignee,
        "labels": list(c.labels),
        "snoozed_until": None if c.snoozed_until is None else iso(c.snoozed_until),
        "visitor": c.visitor,
        "email": c.email,
        "verified": c.verified,
    }


def admin_to_wire(a: AdminState) -> dict[str, Any]:
    return {
        "user": a.user,
        "name": a.name,
        "online": a.online,
        "available": a.available,
        "open_assigned": a.open_assigned,
    }
