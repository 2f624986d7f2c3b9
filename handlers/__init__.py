"""`make_app`: the route table, nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import swagger_ui_bundle
import tornado.web

from config.settings import Settings
from handlers import api, ops, pages, uploads, widget
from handlers.base import page_csp
from services import Services
from services.storage import link_origins

ROOT = Path(__file__).resolve().parent.parent


def make_app(
    settings: Settings, services: Services, transport: type[Any]
) -> tornado.web.Application:
    """`transport` is the Engine.IO handler made by `sockets.transport.make_transport_handler`."""
    s = {"services": services}
    routes: list[tuple[str, type[Any], dict[str, Any]]] = [
        (r"/", pages.HomePage, s),
        (r"/login", pages.LoginPage, s),
        (r"/register", pages.RegisterPage, s),
        (r"/logout", pages.LogoutPage, s),
        (r"/chat", pages.ChatPage, s),
        (r"/admin", pages.AdminPage, s),
        (r"/admin/reports", pages.ReportsPage, s),
        (r"/widget\.js", widget.WidgetScript, s),
        (r"/widget", widget.WidgetPage, s),
        (r"/api/login", api.LoginApi, s),
        (r"/api/logout", api.LogoutApi, s),
        (r"/api/register", api.RegisterApi, s),
        (r"/api/visitors", api.VisitorsApi, s),
        (r"/api/me", api.MeApi, s),
        (r"/api/messages", api.MessagesApi, s),
        (r"/api/conversations", api.ConversationsApi, s),
        (r"/api/conversations/([^/]+)", api.ConversationApi, s),
        (r"/api/me/availability", api.AvailabilityApi, s),
        (r"/api/admins", api.AdminsApi, s),
        (r"/api/users/([^/]+)/role", api.RoleApi, s),
        (r"/api/canned-responses", api.CannedResponsesApi, s),
        (r"/api/canned-responses/([0-9]+)", api.CannedResponseApi, s),
        (r"/api/reports", api.ReportsApi, s),
        (r"/api/uploads", uploads.UploadsApi, s),
        (r"/api/uploads/([A-Za-z0-9_-]+)", uploads.UploadApi, s),
        (r"/api/uploads/([A-Za-z0-9_-]+)/thumbnail", uploads.UploadApi, {**s, "thumbnail": True}),
        (r"/api/.*", api.UnknownApi, s),
        (r"/healthz", ops.HealthHandler, s),
        (r"/metrics", ops.MetricsHandler, s),
        (r"/openapi.json", ops.OpenApiHandler, s),
        (r"/api-docs/?", ops.ApiDocsHandler, s),
        (
            rf"/api-docs/vendor/({'|'.join(re.escape(a) for a in ops.SWAGGER_ASSETS)})",
            ops.SwaggerAssetHandler,
            {"path": swagger_ui_bundle.swagger_ui_path},
        ),
        (r"/socket.io/", transport, {}),
    ]
    return tornado.web.Application(
        routes,
        template_path=str(ROOT / "templates"),
        static_path=str(ROOT / "static"),
        xsrf_cookies=True,
        # Over HTTPS the form token's cookie is `__Host-`: a browser takes it only from a secure
        # page of this host, set with Path=/ and no Domain (not from a sibling subdomain, nor
        # from plain HTTP on another port). The Origin check of the form posts covers the rest.
        xsrf_cookie_name="__Host-xsrf" if settings.cookie_secure else "_xsrf",
        xsrf_cookie_kwargs={
            "httponly": True,
            "samesite": "Strict",
            "secure": settings.cookie_secure,
            "path": "/",
        },
        default_handler_class=ops.NotFoundHandler,
        default_handler_args=s,
        websocket_max_message_size=settings.max_packet_chars * 4 + 64,
        websocket_ping_interval=None,
        compress_response=False,
        hsts=settings.cookie_secure,
        page_csp=page_csp(link_origins(settings)),
    )
