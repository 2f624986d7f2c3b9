"""`/api/*`: parse at the edge, call the services, write JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.base import ApiHandler
from services.errors import AppError, Code
from services.inputs import (
    CannedDraft,
    ConversationChange,
    ConversationQuery,
    Credentials,
    HistoryQuery,
    Registration,
    ReportPeriod,
    availability,
    path_id,
    role,
    visitor_request,
)
from services.wire import (
    admin_to_wire,
    canned_to_wire,
    conversation_to_wire,
    iso,
    message_to_wire,
    user_to_wire,
    visitor_to_wire,
)


class LoginApi(ApiHandler):
    async def post(self) -> None:
        creds = Credentials.parse(self.json_body())
        user, issued = await self.services.auth.login(creds, address=self.client_ip)
        self.set_token_cookie(issued.token, issued.expires_at)
        self.send_json(
            {
                "token": issued.token,
                "expires_at": iso(issued.expires_at),
                "user": user_to_wire(user),
            }
        )


class LogoutApi(ApiHandler):
    async def post(self) -> None:
        await self.services.auth.logout(self.require_claims())
        self.clear_token_cookie()
        self.set_status(204)
        self.finish()


class RegisterApi(ApiHandler):
    async def post(self) -> None:
        form = Registration.parse(
            self.json_body(), min_password=self.services.settings.password_min_length
        )
        user = await self.services.auth.register(form, address=self.client_ip)
        self.send_json({"user": user_to_wire(user)}, 201)


class VisitorsApi(ApiHandler):
    """The widget's identities: no cookie is set (the widget keeps the token itself)."""

    async def post(self) -> None:
        self.services.visitors.require_widget()  # off: 404 whatever the body
        request = visitor_request(self.json_body())
        admitted = await self.services.visitors.admit(request, address=self.client_ip)
        self.send_json(
            {
                "token": admitted.issued.token,
                "expires_at": iso(admitted.issued.expires_at),
                "user": visitor_to_wire(admitted.user, admitted.visitor),
            },
            201 if admitted.created else 200,
        )


class MeApi(ApiHandler):
    async def get(self) -> None:
        self.send_json(user_to_wire(self.require_user()))


class MessagesApi(ApiHandler):
    async def get(self) -> None:
        me = self.require_user()
        query = HistoryQuery.parse(
            self.get_query_argument("with", None, strip=False),  # "bob " is not bob
            self.get_query_argument("before", None),
            self.get_query_argument("limit", None),
        )
        messages = await self.services.chat.history(me, query)
        self.send_json({"messages": [message_to_wire(m) for m in messages]})


class ConversationsApi(ApiHandler):
    async def get(self) -> None:
        me = self.require_admin()
        arg = self.get_query_argument
        query = ConversationQuery.parse(
            arg("status", None),
            arg("assignee", None, strip=False),
            arg("label", None, strip=False),
            arg("limit", None),
            arg("before", None),
        )
        found, cursor = await self.services.team.page(me, query)
        self.send_json(
            {
                "conversations": [conversation_to_wire(c) for c in found],
                "next": None if cursor is None else str(cursor),
            }
        )


class ConversationApi(ApiHandler):
    async def patch(self, name: str) -> None:
        me = self.require_admin()
        change = ConversationChange.parse(self.json_body())
        found = await self.services.team.change(me, name, change)
        self.send_json({"conversation": conversation_to_wire(found)})


class AvailabilityApi(ApiHandler):
    async def put(self) -> None:
        me = self.require_admin()
        available = await self.services.team.set_available(me, availability(self.json_body()))
        self.send_json({"available": available})


class AdminsApi(ApiHandler):
    async def get(self) -> None:
        me = self.require_admin()
        self.send_json({"admins": [admin_to_wire(a) for a in await self.services.team.admins(me)]})


class RoleApi(ApiHandler):
    async def post(self, name: str) -> None:
        self.require_admin()
        rol = role(self.json_body())
        user = await self.services.auth.set_role(name, rol)
        self.send_json({"user": user_to_wire(user)})


class CannedResponsesApi(ApiHandler):
    async def get(self) -> None:
        me = self.require_admin()
        canned = await self.services.canned.responses(me)
        self.send_json({"canned_responses": [canned_to_wire(c) for c in canned]})

    async def post(self) -> None:
        me = self.require_admin()
        draft = CannedDraft.parse(self.json_body(), max_text=self.services.settings.msg_max_chars)
        canned = await self.services.canned.create(me, draft)
        self.send_json({"canned_response": canned_to_wire(canned)}, 201)


class CannedResponseApi(ApiHandler):
    async def patch(self, canned_id: str) -> None:
        me = self.require_admin()
        change = CannedDraft.parse(
            self.json_body(), max_text=self.services.settings.msg_max_chars, partial=True
        )
        canned = await self.services.canned.update(me, path_id(canned_id), change)
        self.send_json({"canned_response": canned_to_wire(canned)})

    async def delete(self, canned_id: str) -> None:
        me = self.require_admin()
        await self.services.canned.delete(me, path_id(canned_id))
        self.set_status(204)
        self.finish()


class ReportsApi(ApiHandler):
    async def get(self) -> None:
        self.require_admin()
        period = ReportPeriod.parse(
            self.get_query_argument("from", None),
            self.get_query_argument("to", None),
            now=datetime.now(UTC),
        )
        report = await self.services.reports.report(period)
        self.send_json(report.to_wire())


class UnknownApi(ApiHandler):
    """Any other `/api/` path: a JSON 404, never the HTML one."""

    async def prepare(self) -> None:
        raise AppError(Code.NOT_FOUND, "No such API route.")
