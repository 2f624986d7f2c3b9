"""This process's live sockets, by sid, by user and by token (presence across processes is
`services.cluster`'s)."""

from __future__ import annotations

from models.user import Identity


class Connection:
    """One live socket: who it speaks for and its token. Thousands are held at once, so it is
    a slotted object holding an `Identity` (not the ORM row, which weighs ~1.5 KB with its
    state and password hash)."""

    __slots__ = ("expires", "identity", "jti", "sid")

    def __init__(self, sid: str, user: Identity, jti: str, expires: float) -> None:
        self.sid = sid
        self.identity = user  # as read from the database at the handshake
        self.jti = jti
        self.expires = expires  # the token's exp, epoch seconds

    @property
    def name(self) -> str:
        return self.identity.user


class Connections:
    def __init__(self) -> None:
        self._by_sid: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}

    def add(self, conn: Connection) -> None:
        self._by_sid[conn.sid] = conn
        self._by_user.setdefault(conn.name, set()).add(conn.sid)

    def remove(self, sid: str) -> Connection | None:
        conn = self._by_sid.pop(sid, None)
        if conn is not None:
            sids = self._by_user.get(conn.name, set())
            sids.discard(sid)
            if not sids:
                self._by_user.pop(conn.name, None)
        return conn

    def get(self, sid: str) -> Connection | None:
        return self._by_sid.get(sid)

    def of_user(self, user: str) -> list[str]:
        return list(self._by_user.get(user, ()))

    def of_token(self, jti: str) -> list[str]:
        return [c.sid for c in self._by_sid.values() if c.jti == jti]

    def pairs(self) -> list[tuple[str, str]]:
        """(user, sid) of every socket of this process."""
        return [(c.name, sid) for sid, c in self._by_sid.items()]

    def __len__(self) -> int:
        return len(self._by_sid)
