"""Operations: `/healthz`, `/metrics`, `/openapi.json` and the Swagger UI at `/api-docs`."""

from __future__ import annotations

import hmac
import json

import prometheus_client
import tornado.web

from handlers.base import CSP, BaseHandler, security_headers
from handlers.openapi import openapi_document
from handlers.pages import HtmlHandler
from services.errors import AppError, Code

# What templates/api_docs.html loads from the vendored Swagger UI directory; nothing else of it
# is served (its own index.html loads an outside site and would carry no CSP of ours).
SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")


class HealthHandler(BaseHandler):
    speaks_json = True

    async def get(self) -> None:
        checks = await self.services.health()
        ok = all(state == "ok" for state in checks.values())
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"status": "ok" if ok else "unavailable", "checks": checks}))


class MetricsHandler(BaseHandler):
    """Open unless METRICS_TOKEN is set; then only `Authorization: Bearer <METRICS_TOKEN>`."""

    speaks_json = True
    challenge = 'Bearer realm="metrics"'

    def get(self) -> None:
        if not self.authorized():
            raise AppError(Code.UNAUTHENTICATED, "Send Authorization: Bearer <METRICS_TOKEN>.")
        self.set_header("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)
        self.finish(prometheus_client.generate_latest())

    def authorized(self) -> bool:
        expected = self.services.settings.metrics_token
        if expected is None:
            return True
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.reveal().encode()
        )


class OpenApiHandler(BaseHandler):
    speaks_json = True

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(openapi_document()))


class ApiDocsHandler(HtmlHandler):
    # Swagger UI sets style attributes at run time; scripts stay 'self' only.
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        "frame-ancestors 'none'"
    )

    def get(self) -> None:
        self.render("api_docs.html")


class SwaggerAssetHandler(tornado.web.StaticFileHandler):
    """One of `SWAGGER_ASSETS` (the route names them), with our security headers."""

    def set_default_headers(self) -> None:
        security_headers(self, CSP)


class NotFoundHandler(HtmlHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)
