"""`/api/*`: parse at the edge, call the services, write JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.base import ApiHandler
from services.errors import AppError, Code
from services.inputs import Credentials, HistoryQuery, Registration, ReportPeriod, role
from services.wire import iso, message_to_wire, user_to_wire


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
        conversations = await self.services.chat.conversations(me)
        self.send_json(
            {
                "conversations": [
                    {
                        "user": c.user,
                        "name": c.name,
                        "rol": c.rol,
                        "online": c.online,
                        "unread": c.unread,
                        "last_message": message_to_wire(c.last_message),
                    }
                    for c in conversations
                ]
            }
        )


class RoleApi(ApiHandler):
    async def post(self, name: str) -> None:
        self.require_admin()
        rol = role(self.json_body())
        user = await self.services.auth.set_role(name, rol)
        self.send_json({"user": user_to_wire(user)})


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
