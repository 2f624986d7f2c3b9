"""Operations: `/healthz`, `/metrics`, `/openapi.json` and the Swagger UI at `/api-docs`."""

from __future__ import annotations

import json

import prometheus_client
import tornado.web

from handlers.base import BaseHandler
from handlers.openapi import openapi_document


class HealthHandler(BaseHandler):
    async def get(self) -> None:
        checks = await self.services.health()
        ok = all(state == "ok" for state in checks.values())
        self.set_status(200 if ok else 503)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"status": "ok" if ok else "unavailable", "checks": checks}))


class MetricsHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)
        self.finish(prometheus_client.generate_latest())


class OpenApiHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(openapi_document()))


class ApiDocsHandler(BaseHandler):
    # Swagger UI sets style attributes at run time; scripts stay 'self' only.
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        "frame-ancestors 'none'"
    )

    def get(self) -> None:
        self.render("api_docs.html")


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)
