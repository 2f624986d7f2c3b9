"""Passwords (hashed off the event loop), tokens (issue, verify, revoke), login throttling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import argon2
import bcrypt
import jwt
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Settings
from models.message import RevokedToken
from models.user import ADMIN, USER, Identity, User, ascii_lower, user_named
from models.visitor import UNUSABLE_PASSWORD, Visitor
from services.cluster import Cluster
from services.errors import AppError, Code
from services.fanout import Fanout
from services.inputs import Credentials, Registration
from services.limits import AttemptWindow

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# How long after its expiry a visitor's token may still be exchanged for a fresh one.
REFRESH_GRACE_SECONDS = 7 * 86400.0
HASH_WAIT_SECONDS = 2.0
T = TypeVar("T")
_LEGACY_PREFIXES = ("$2a$", "$2b$", "$2y$")


IDENTITY_REQUIRED = "required"


def password_usable(stored: str) -> bool:
    """Whether a stored password value may be checked at all (a visitor's never is)."""
    return stored != UNUSABLE_PASSWORD and not stored.startswith("!")


async def visitor_of(db: AsyncSession, user: str) -> Visitor | None:
    """The visitor row of the user stored as `user`, or None for a registered user."""
    return await db.get(Visitor, user)


class Passwords:
    """argon2id for new hashes; the old service's bcrypt hashes still verify.

    The async methods run a hash in a thread, at most `slots` at once in this process (the
    CPU count, at least 2): a burst of registrations cannot queue up logins behind it for
    longer than `wait` seconds; a caller that gets no slot by then is told to come back."""

    def __init__(
        self,
        hasher: argon2.PasswordHasher | None = None,
        *,
        slots: int | None = None,
        wait: float = HASH_WAIT_SECONDS,
    ) -> None:
        self.hasher = hasher or argon2.PasswordHasher()
        self._dummy: str | None = None
        self.slots = slots or max(2, os.cpu_count() or 2)
        self.wait = wait
        self._free = asyncio.Semaphore(self.slots)

    async def new_hash(self, password: str) -> str:
        return await self._bounded(lambda: self.hash(password))

    async def check(self, stored: str, password: str) -> tuple[bool, bool]:
        """`verify` off the event loop, within the bound."""
        return await self._bounded(lambda: self.verify(stored, password))

    async def check_nobody(self, password: str) -> None:
        """`burn` off the event loop, within the bound."""
        await self._bounded(lambda: self.burn(password))

    async def _bounded(self, work: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
        except TimeoutError:
            log.warning("password hashing saturated: %d in flight", self.slots)
            raise AppError(Code.UNAVAILABLE, "The server is busy; try again shortly.") from None
        try:
            return await asyncio.to_thread(work)
        finally:
            self._free.release()

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str, password: str) -> tuple[bool, bool]:
        """(matches, needs_rehash). Blocking: call through `asyncio.to_thread`."""
        if not password_usable(stored):
            return False, False  # a website visitor's mark: no password at all
        try:
            password.encode()
        except UnicodeEncodeError:
            return False, False  # lone surrogates: no stored password can contain them
        if stored.startswith(_LEGACY_PREFIXES):
            # bcrypt only ever looked at the first 72 bytes; bcrypt 5 refuses longer input.
            try:
                ok = bcrypt.checkpw(password.encode()[:72], stored.encode())
            except ValueError:
                return False, False
            return ok, ok
        try:
            self.hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, False
        return True, self.hasher.check_needs_rehash(stored)

    def burn(self, password: str) -> None:
        """Spend the time of a real check, so that an unknown user name answers as slowly."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_hex(16))
        self.verify(self._dummy, password)


@dataclass(frozen=True)
class Claims:
    user: str
    jti: str
    exp: float
    iat: float
    visitor: bool = False  # issued to a website visitor (claim `vis`)


@dataclass(frozen=True)
class Issued:
    token: str
    claims: Claims

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.claims.exp, UTC)


class Tokens:
    """HS256 only; `exp`, `iat` and `jti` required; nothing else is trusted from a token."""

    def __init__(self, secret: str, ttl_seconds: float, *, clock: Callable[[], float] = time.time):
        self.secret, self.ttl, self.clock = secret, ttl_seconds, clock

    def issue(self, user: User, *, ttl: float | None = None, visitor: bool = False) -> Issued:
        """A token for `user`, living `ttl` seconds (default: this object's); a visitor's
        carries the claim `"vis": true`."""
        now = int(self.clock())
        exp = int(now + (self.ttl if ttl is None else ttl))
        claims = Claims(
            user=user.user, jti=secrets.token_urlsafe(18), iat=now, exp=exp, visitor=visitor
        )
        payload: dict[str, object] = {
            "user": user.user,
            "name": user.name,
            "rol": user.rol,
            "iat": now,
            "exp": exp,
            "jti": claims.jti,
        }
        if visitor:
            payload["vis"] = True
        return Issued(jwt.encode(payload, self.secret, algorithm=ALGORITHM), claims)

    def verify(self, token: str, *, grace: float = 0.0) -> Claims:
        """The token's claims, or `AppError(UNAUTHENTICATED)` for any defect. `grace`: seconds
        past `exp` during which the token is still taken (a visitor's refresh only)."""
        try:
            payload = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                # exp and iat are checked below against this object's clock
                options={
                    "require": ["exp", "iat", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise AppError(Code.UNAUTHENTICATED, "The token is not valid.") from None
        user, jti, exp = payload.get("user"), payload.get("jti"), payload.get("exp")
        if not isinstance(user, str) or not isinstance(jti, str) or not user or not jti:
            raise AppError(Code.UNAUTHENTICATED, "The token is not valid.")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AppError(Code.UNAUTHENTICATED, "The token is not valid.")
        if exp + grace <= self.clock():
            raise AppError(Code.UNAUTHENTICATED, "The token has expired.")
        if not isinstance(payload["iat"], int | float) or isinstance(payload["iat"], bool):
            raise AppError(Code.UNAUTHENTICATED, "The token is not valid.")
        return Claims(
            user=user,
            jti=jti,
            exp=float(payload["exp"]),
            iat=float(payload["iat"]),
            visitor=payload.get("vis") is True,
        )


class Revocations:
    """Revoked token ids: kept in the database (they outlive any restart), held in every
    process's memory until they expire, so that no handshake queries the database for them.
    Other processes learn of a revocation through the cluster's news, and reload from the
    database whenever that news channel was down."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cluster: Cluster) -> None:
        self.sessions, self.cluster = sessions, cluster
        self._revoked: dict[str, float] = {}

    async def load(self) -> None:
        now = datetime.now(UTC)
        async with self.sessions() as db:
            rows = await db.execute(select(RevokedToken).where(RevokedToken.expires_at > now))
            self._revoked = {r.jti: r.expires_at.timestamp() for r in rows.scalars()}
            await db.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            await db.commit()

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    async def revoke(self, claims: Claims) -> None:
        # A visitor's token can still be refreshed for a while after it expires: its
        # revocation is kept until then.
        until = claims.exp + (REFRESH_GRACE_SECONDS if claims.visitor else 0.0)
        try:
            async with self.sessions.begin() as db:
                db.add(RevokedToken(jti=claims.jti, expires_at=datetime.fromtimestamp(until, UTC)))
        except IntegrityError:
            pass  # revoked already
        self.remember(claims.jti, until)
        await self.cluster.publish({"op": "revoked", "jti": claims.jti, "exp": until})

    def remember(self, jti: str, exp: float) -> None:
        """Hold a revocation in memory (news from any process) until the token expires."""
        self._revoked[jti] = exp
        self._forget_expired()

    def _forget_expired(self) -> None:
        now = time.time()
        self._revoked = {j: e for j, e in self._revoked.items() if e > now}


class Auth:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dialect: str,
        tokens: Tokens,
        revocations: Revocations,
        failures: AttemptWindow,
        registrations: AttemptWindow,
        fanout: Fanout,
        passwords: Passwords | None = None,
    ) -> None:
        self.settings, self.sessions, self.dialect = settings, sessions, dialect
        self.tokens, self.revocations, self.failures = tokens, revocations, failures
        self.registrations, self.fanout = registrations, fanout
        self.passwords = passwords or Passwords()

    async def find_user(self, name: str) -> User | None:
        async with self.sessions() as db:
            return await user_named(db, self.dialect, name)

    def _unrevoked(self, token: str) -> Claims:
        claims = self.tokens.verify(token)
        if self.revocations.is_revoked(claims.jti):
            raise AppError(Code.UNAUTHENTICATED, "The token has been revoked.")
        return claims

    async def authenticate(self, token: str) -> tuple[User, Claims]:
        """The user a token speaks for, read from the database (role and existence)."""
        claims = self._unrevoked(token)
        async with self.sessions() as db:
            user = await user_named(db, self.dialect, claims.user)
            user = await self._admitted(db, user)
        return user, claims

    async def identify(self, token: str) -> tuple[Identity, Claims]:
        """`authenticate` for a socket's handshake: the same checks, and the socket keeps for
        its life only the three public columns (the password hash is not even read)."""
        claims = self._unrevoked(token)
        async with self.sessions() as db:
            user = await user_named(db, self.dialect, claims.user, public_only=True)
            user = await self._admitted(db, user)
        return Identity(user.user, user.name, user.rol), claims

    async def _admitted(self, db: AsyncSession, user: User | None) -> User:
        """Refuse a token whose user is gone, or, with `WIDGET_IDENTITY=required`, an anonymous
        visitor (whatever its token says: read from the database, on every path)."""
        if user is None:
            raise AppError(Code.UNAUTHENTICATED, "The token's user no longer exists.")
        if self.settings.widget_identity == IDENTITY_REQUIRED:
            found = await visitor_of(db, user.user)
            if found is not None and not found.verified:
                raise AppError(Code.UNAUTHENTICATED, "Anonymous visitors are not accepted.")
        return user

    async def register(self, form: Registration, *, address: str) -> User:
        """Create a user: at most `REGISTRATIONS_PER_HOUR` from one client address (one is
        counted before its password is hashed, and given back when it creates nobody)."""
        held = await self.registrations.reserve(f"addr:{address}")
        if held is None:
            raise AppError(Code.RATE_LIMITED, "Too many registrations; try again later.")
        try:
            return await self._create(form)
        except BaseException:
            await self.registrations.release(held)
            raise

    async def _create(self, form: Registration) -> User:
        if await self.find_user(form.username) is not None:
            raise AppError(Code.EXISTS, "That user name is taken.")
        hashed = await self.passwords.new_hash(form.password)
        user = User(user=form.username, name=form.name, rol=USER, password=hashed)
        try:
            async with self.sessions.begin() as db:
                db.add(user)
                # A visitor row left by a user removed by hand must not make this new,
                # registered user a visitor.
                await db.execute(
                    delete(Visitor).where(func.lower(Visitor.user) == form.username.lower())
                )
        except IntegrityError:
            raise AppError(Code.EXISTS, "That user name is taken.") from None
        log.info("user registered", extra={"user": user.user})
        return user

    async def add_user(self, username: str, name: str, password: str, *, admin: bool) -> User:
        """For the command line: same rules as registration (but no limit), any role."""
        form = Registration.parse(
            {"username": username, "name": name, "password": password},
            min_password=self.settings.password_min_length,
        )
        user = await self._create(form)
        if admin:
            user = await self.set_role(user.user, ADMIN)
        return user

    async def login(self, creds: Credentials, *, address: str) -> tuple[User, Issued]:
        """Check a password, at most `LOGIN_FAILURES_PER_MINUTE` failures per user and per
        address in any minute. Each attempt is counted as a failure before its password is
        checked, so attempts at once cannot outrun the limit, and given back when it succeeds."""
        user = await self.find_user(creds.username)
        # Counted by the user found, whatever spelling was typed; else by the spelling.
        user_key = f"user:{ascii_lower(user.user if user is not None else creds.username)}"
        held = await self.failures.reserve(user_key, f"addr:{address}")
        if held is None:
            raise AppError(Code.RATE_LIMITED, "Too many failed logins; wait a minute.")
        try:
            if user is None or not password_usable(user.password):
                # Nobody, or a website visitor (who has no password): the same answer as a
                # wrong password, in about the same time.
                await self.passwords.check_nobody(creds.password)
                ok, rehash = False, False
            else:
                ok, rehash = await self.passwords.check(user.password, creds.password)
        except BaseException:
            await self.failures.release(held)  # not a failure: the password was not checked
            raise
        if user is None or not ok:
            log.info("login failed", extra={"address": address})
            raise AppError(Code.BAD_CREDENTIALS, "Wrong user name or password.")
        await self.failures.release(held)
        await self.failures.clear(user_key)
        if rehash:
            # Without a hashing slot now (`unavailable`), a later login upgrades the hash.
            with contextlib.suppress(AppError):
                await self._rehash(user, creds.password)
        log.info("login", extra={"user": user.user})
        return user, self.tokens.issue(user)

    async def admin_ui_login(self, auth: object) -> bool:
        """The Socket.IO Admin UI's login form: an admin's user name and password."""
        if not isinstance(auth, dict):
            return False
        try:
            creds = Credentials.parse(auth)
            user, _ = await self.login(creds, address="socketio-admin-ui")
        except AppError:
            return False
        return user.is_admin

    async def _rehash(self, user: User, password: str) -> None:
        hashed = await self.passwords.new_hash(password)
        async with self.sessions.begin() as db:
            await db.execute(update(User).where(User.user == user.user).values(password=hashed))
        user.password = hashed

    async def logout(self, claims: Claims) -> None:
        """Revoke the token until it expires and close the sockets that used it."""
        await self.revocations.revoke(claims)
        await self.fanout.disconnect_token(claims.jti)
        log.info("logout", extra={"user": claims.user})

    async def set_role(self, name: str, rol: str) -> User:
        """Change a role; the user's sockets are closed so that they reconnect with it."""
        async with self.sessions.begin() as db:
            # Lock every admin row first, in one statement (a write, so that SQLite takes its
            # write lock before reading anything): two admins demoting each other at once,
            # on any workers, take turns, and the second finds itself the last admin.
            await db.execute(update(User).where(User.rol == ADMIN).values(rol=User.rol))
            user = await user_named(db, self.dialect, name)
            if user is None:
                raise AppError(Code.NOT_FOUND, "No such user.")
            if rol == ADMIN and await visitor_of(db, user.user) is not None:
                raise AppError(Code.CONFLICT, "A website visitor cannot be made an admin.")
            if user.is_admin and rol != ADMIN:
                others = select(func.count()).where(User.rol == ADMIN, User.user != user.user)
                if not (await db.execute(others)).scalar_one():
                    raise AppError(Code.CONFLICT, "The last admin cannot stop being one.")
            user.rol = rol
        log.info("role changed", extra={"user": user.user, "rol": rol})
        await self.fanout.disconnect_user(user.user)
        return user
