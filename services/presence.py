"""This process's live sockets: who is connected, by user and by token; first/last socket."""

from __future__ import annotations

from dataclasses import dataclass

from models.user import User


@dataclass(frozen=True)
class Connection:
    sid: str
    user: User  # as read from the database at the handshake
    jti: str
    expires: float  # the token's exp, epoch seconds

    @property
    def name(self) -> str:
        return self.user.user


class Connections:
    def __init__(self) -> None:
        self._by_sid: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}

    def add(self, conn: Connection) -> bool:
        """Record a socket; True when it is its user's first."""
        self._by_sid[conn.sid] = conn
        sids = self._by_user.setdefault(conn.name, set())
        sids.add(conn.sid)
        return len(sids) == 1

    def remove(self, sid: str) -> tuple[Connection | None, bool]:
        """Forget a socket; returns it and whether it was its user's last."""
        conn = self._by_sid.pop(sid, None)
        if conn is None:
            return None, False
        sids = self._by_user.get(conn.name, set())
        sids.discard(sid)
        if sids:
            return conn, False
        self._by_user.pop(conn.name, None)
        return conn, True

    def get(self, sid: str) -> Connection | None:
        return self._by_sid.get(sid)

    def of_user(self, user: str) -> list[str]:
        return list(self._by_user.get(user, ()))

    def of_token(self, jti: str) -> list[str]:
        return [c.sid for c in self._by_sid.values() if c.jti == jti]

    def is_online(self, user: str) -> bool:
        return user in self._by_user

    def __len__(self) -> int:
        return len(self._by_sid)

    def all_sids(self) -> list[str]:
        return list(self._by_sid)
