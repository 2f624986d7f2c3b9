"""This process's live sockets, by sid, by user and by token (presence across processes is
`services.cluster`'s)."""

from __future__ import annotations

from models.user import Identity, same_name


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


class Handshake:
    """A socket's handshake under way: from its token's check until it is registered. News
    that the user's sockets must close (a logout, a role change) that arrives meanwhile finds
    no socket to close yet, so it marks the handshake `stale` instead."""

    __slots__ = ("jti", "stale", "user")

    def __init__(self, user: str, jti: str) -> None:
        self.user, self.jti, self.stale = user, jti, False


class Connections:
    def __init__(self) -> None:
        self._by_sid: dict[str, Connection] = {}
        self._by_user: dict[str, set[str]] = {}
        self._handshakes: set[Handshake] = set()

    def begin_handshake(self, user: str, jti: str) -> Handshake:
        handshake = Handshake(user, jti)
        self._handshakes.add(handshake)
        return handshake

    def end_handshake(self, handshake: Handshake) -> bool:
        """Forget the handshake; whether news for its user or token came while it lasted."""
        self._handshakes.discard(handshake)
        return handshake.stale

    def close_user(self, user: str) -> list[str]:
        """The user's sockets to close; its handshakes under way become stale."""
        for handshake in self._handshakes:
            if same_name(handshake.user, user):
                handshake.stale = True
        return self.of_user(user)

    def close_token(self, jti: str) -> list[str]:
        """The sockets of a token to close; its handshakes under way become stale."""
        for handshake in self._handshakes:
            if handshake.jti == jti:
                handshake.stale = True
        return self.of_token(jti)

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
