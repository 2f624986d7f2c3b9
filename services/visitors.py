"""Website visitors: the identities behind the widget (anonymous, or identified by the site
with an HMAC of its own id), their tokens, and the refresh of those tokens.

A visitor is a `User` of role `user` with an unusable password and a `Visitor` row; everywhere
else (rooms, sync, limits, the inbox, reports) it is a user like any other."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import Secret, Settings
from models.user import USER, User, user_named
from models.visitor import UNUSABLE_PASSWORD, Visitor, external_key
from services.auth import IDENTITY_REQUIRED, REFRESH_GRACE_SECONDS, Auth, Issued
from services.errors import AppError, Code
from services.inputs import IdentifiedVisitor, NewVisitor, VisitorProfile, VisitorRefresh
from services.limits import AttemptWindow

log = logging.getLogger(__name__)

NAME_PREFIX = "v_"
NAME_ALPHABET = string.ascii_lowercase + string.digits  # one case: unique on every database
NAME_RANDOM_CHARS = 16  # 36**16: never guessed, and "v_" + 16 fits the 3-32 rule
CREATE_ATTEMPTS = 5


@dataclass(frozen=True)
class VisitorPass:
    """A visitor and its new token; `created` when this request made the visitor."""

    user: User
    visitor: Visitor
    issued: Issued
    created: bool


def hash_matches(secret: Secret | None, external_id: str, given: str | None) -> bool:
    """Whether `given` is the lowercase hex HMAC-SHA256 of `external_id` under `secret`,
    compared in constant time. No secret, no hash: never."""
    if secret is None or given is None:
        return False
    expected = hmac.new(
        secret.reveal().encode("utf-8"), external_id.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    # Bytes: compare_digest refuses str with non-ASCII characters (an exception, not False).
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def new_visitor_name() -> str:
    return NAME_PREFIX + "".join(secrets.choice(NAME_ALPHABET) for _ in range(NAME_RANDOM_CHARS))


def generated_display_name() -> str:
    return f"Visitor {secrets.randbelow(10000):04d}"


class Visitors:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        auth: Auth,
        arrivals: AttemptWindow,
    ) -> None:
        """`arrivals`: new anonymous visitors per client address (`VISITORS_PER_HOUR`)."""
        self.settings, self.sessions, self.auth, self.arrivals = settings, sessions, auth, arrivals

    async def admit(
        self, request: NewVisitor | IdentifiedVisitor | VisitorRefresh, *, address: str
    ) -> VisitorPass:
        """Answer `POST /api/visitors`: 404 while the widget is off."""
        self.require_widget()
        if isinstance(request, VisitorRefresh):
            return await self.refresh(request.token)
        if isinstance(request, IdentifiedVisitor):
            return await self.identified(request)
        return await self.anonymous(request.profile, address=address)

    def require_widget(self) -> None:
        """Visitors exist only while the widget is served (`WIDGET_ORIGINS` set)."""
        if not self.settings.widget:
            raise AppError(Code.NOT_FOUND, "No such API route.")

    async def anonymous(self, profile: VisitorProfile, *, address: str) -> VisitorPass:
        """A new anonymous visitor: at most `VISITORS_PER_HOUR` per client address, across
        workers (one is counted before it is made, and given back when none was made)."""
        self._anonymous_allowed()
        held = await self.arrivals.reserve(f"addr:{address}")
        if held is None:
            raise AppError(Code.RATE_LIMITED, "Too many new visitors; try again later.")
        try:
            user, visitor, _ = await self._create(profile, external_id=None)
        except BaseException:
            await self.arrivals.release(held)
            raise
        return self._pass(user, visitor, created=True)

    async def identified(self, request: IdentifiedVisitor) -> VisitorPass:
        """The visitor the site vouches for: one user per `id`, made the first time (also
        when two workers are asked at once), its name and e-mail updated when given."""
        if not hash_matches(self.settings.widget_secret, request.external_id, request.hash):
            raise AppError(Code.BAD_CREDENTIALS, "The visitor's hash does not match its id.")
        key = external_key(request.external_id)
        found = await self._by_key(key)
        if found is not None:
            user, visitor = await self._update(*found, request.profile)
            return self._pass(user, visitor, created=False)
        user, visitor, created = await self._create(
            request.profile, external_id=request.external_id
        )
        if not created:  # made meanwhile by another request
            user, visitor = await self._update(user, visitor, request.profile)
        return self._pass(user, visitor, created=created)

    async def refresh(self, token: str) -> VisitorPass:
        """A fresh token for the visitor of `token`: a visitor token of ours, unexpired or
        expired at most 7 days ago, not revoked, whose user still exists and is a visitor."""
        bad = AppError(Code.BAD_CREDENTIALS, "That token cannot be refreshed.")
        try:
            claims = self.auth.tokens.verify(token, grace=REFRESH_GRACE_SECONDS)
        except AppError:
            raise bad from None
        if not claims.visitor or self.auth.revocations.is_revoked(claims.jti):
            raise bad
        async with self.sessions() as db:
            user = await user_named(db, self.auth.dialect, claims.user)
            visitor = None if user is None else await db.get(Visitor, user.user)
        if user is None or visitor is None:
            raise bad
        if not visitor.verified:
            self._anonymous_allowed()
        return self._pass(user, visitor, created=False)

    def _anonymous_allowed(self) -> None:
        if self.settings.widget_identity == IDENTITY_REQUIRED:
            raise AppError(Code.FORBIDDEN, "Only visitors identified by the site are accepted.")

    def _pass(self, user: User, visitor: Visitor, *, created: bool) -> VisitorPass:
        issued = self.auth.tokens.issue(user, ttl=self.settings.visitor_ttl_seconds, visitor=True)
        if created:
            log.info("visitor created", extra={"user": user.user, "verified": visitor.verified})
        return VisitorPass(user, visitor, issued, created)

    async def _by_key(self, key: str) -> tuple[User, Visitor] | None:
        async with self.sessions() as db:
            row = (
                await db.execute(
                    select(User, Visitor)
                    .join(Visitor, Visitor.user == User.user)
                    .where(Visitor.external_key == key)
                )
            ).first()
        return None if row is None else (row[0], row[1])

    async def _create(
        self, profile: VisitorProfile, *, external_id: str | None
    ) -> tuple[User, Visitor, bool]:
        """Make a visitor: (user, visitor, True); or, for an `external_id` that another
        request made meanwhile, that one: (user, visitor, False)."""
        key = None if external_id is None else external_key(external_id)
        for _ in range(CREATE_ATTEMPTS):
            user = User(
                user=new_visitor_name(),
                name=profile.name or generated_display_name(),
                rol=USER,
                password=UNUSABLE_PASSWORD,
            )
            visitor = Visitor(
                user=user.user,
                external_id=external_id,
                external_key=key,
                email=profile.email,
                verified=external_id is not None,
                created_at=datetime.now(UTC),
            )
            try:
                async with self.sessions.begin() as db:
                    db.add(user)
                    await db.flush()
                    db.add(visitor)
            except IntegrityError:
                if key is not None:
                    if (found := await self._by_key(key)) is not None:
                        return found[0], found[1], False
                    await self._drop_orphan(key)
                continue  # the generated name was taken, or the id freed: once more
            return user, visitor, True
        raise AppError(Code.UNAVAILABLE, "Could not create the visitor; try again.")

    async def _drop_orphan(self, key: str) -> None:
        """Free the id of a visitor whose user was removed by hand (rare: never on the way of
        an ordinary first call, whose concurrent inserts must not lock each other's gaps)."""
        async with self.sessions.begin() as db:
            await db.execute(
                delete(Visitor).where(
                    Visitor.external_key == key, ~exists().where(User.user == Visitor.user)
                )
            )

    async def _update(
        self, user: User, visitor: Visitor, profile: VisitorProfile
    ) -> tuple[User, Visitor]:
        """Store the name and e-mail the site gave, when they differ from the stored ones."""
        name = profile.name if profile.name not in (None, user.name) else None
        email = profile.email if profile.email not in (None, visitor.email) else None
        if name is None and email is None:
            return user, visitor
        async with self.sessions.begin() as db:
            if name is not None:
                await db.execute(update(User).where(User.user == user.user).values(name=name))
                user.name = name
            if email is not None:
                await db.execute(
                    update(Visitor).where(Visitor.user == visitor.user).values(email=email)
                )
                visitor.email = email
        return user, visitor
