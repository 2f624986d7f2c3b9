"""docs/PROTOCOL.md keeps up with the code: every `/api/` route of the route table (with each
of its methods), every error code with its HTTP status, and every setting that
`load_settings` reads are in it; and every `/api/` route is in the OpenAPI document."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import tornado.web

from config.settings import Settings
from handlers import api, make_app
from handlers.openapi import openapi_document
from services.errors import STATUS, Code

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "PROTOCOL.md"
SETTINGS_SOURCE = ROOT / "config" / "settings.py"
METHODS = ("get", "post", "put", "patch", "delete")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def api_routes() -> list[tuple[re.Pattern[str], type[Any]]]:
    """The `/api/` rules of `handlers.make_app`'s table (the catch-all `/api/.*` left out):
    their compiled path patterns and handler classes. Only the table is read: nothing the
    handlers are given is used, so no services are needed."""
    services: Any = None
    app = make_app(Settings(), services, tornado.web.RequestHandler)
    found = []
    for rule in app.wildcard_router.rules:
        regex = getattr(rule.matcher, "regex", None)
        if regex is None or not regex.pattern.startswith("/api/"):
            continue
        if rule.target is api.UnknownApi:
            continue
        found.append((regex, rule.target))
    return found


def methods_of(handler: type[Any]) -> list[str]:
    """The HTTP methods a handler class implements itself (not Tornado's 405 defaults)."""
    return [
        m
        for m in METHODS
        if getattr(handler, m, None) is not getattr(tornado.web.RequestHandler, m, None)
    ]


def settings_read() -> list[str]:
    """Every NAME of a `get("NAME", ...)` call in `load_settings`."""
    tree = ast.parse(SETTINGS_SOURCE.read_text(encoding="utf-8"))
    function = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "load_settings"
    )
    return [
        node.args[0].value
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


def documented_operations(text: str) -> list[tuple[str, str]]:
    """(method, path) of every `` `METHOD /api/...` `` in the document; a path stops at `?`,
    and its placeholders (`<user>`, `<id>`) stand for a value of the route's groups."""
    pattern = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^\s`?]*)")
    return [(m.group(1).lower(), sample(m.group(2))) for m in pattern.finditer(text)]


def sample(path: str) -> str:
    """`path` with each placeholder (`<id>` in the document, `{id}` in OpenAPI) as a value that
    any route group takes (`[^/]+` and `[0-9]+` alike)."""
    return re.sub(r"<[^>/]+>|\{[^}/]+\}", "1", path)


ROUTES = api_routes()


def test_the_route_table_and_the_settings_are_found() -> None:
    """Guards against passing on nothing: the readers above see what they should."""
    paths = {regex.pattern for regex, _ in ROUTES}
    assert "/api/login$" in paths and len(ROUTES) >= 5, paths
    assert all(methods_of(handler) for _, handler in ROUTES)
    names = settings_read()
    assert "PORT" in names and "DATABASE_URL" in names and len(names) >= 10, names


@pytest.mark.parametrize(("regex", "handler"), ROUTES, ids=[r.pattern for r, _ in ROUTES])
def test_every_api_route_and_method_is_in_the_protocol_document(
    regex: re.Pattern[str], handler: type[Any]
) -> None:
    operations = documented_operations(doc_text())
    for method in methods_of(handler):
        assert any(m == method and regex.fullmatch(p) for m, p in operations), (
            f"docs/PROTOCOL.md does not document `{method.upper()} {regex.pattern}`"
        )


@pytest.mark.parametrize(("regex", "handler"), ROUTES, ids=[r.pattern for r, _ in ROUTES])
def test_every_api_route_and_method_is_in_the_openapi_document(
    regex: re.Pattern[str], handler: type[Any]
) -> None:
    paths: dict[str, dict[str, Any]] = openapi_document()["paths"]
    matching = [p for p in paths if regex.fullmatch(sample(p))]
    assert matching, f"openapi_document() has no path for {regex.pattern}"
    for method in methods_of(handler):
        assert any(method in paths[p] for p in matching), (
            f"openapi_document() lacks {method.upper()} {matching[0]}"
        )


def test_every_openapi_path_is_a_route() -> None:
    for path in openapi_document()["paths"]:
        assert any(regex.fullmatch(sample(path)) for regex, _ in ROUTES), f"{path} is not routed"


@pytest.mark.parametrize("code", list(Code), ids=[c.value for c in Code])
def test_every_error_code_is_in_the_protocol_document_with_its_status(code: Code) -> None:
    row = re.compile(rf"^\|\s*`{re.escape(code.value)}`\s*\|\s*{STATUS[code]}\s*\|", re.M)
    assert row.search(doc_text()), (
        f"docs/PROTOCOL.md has no error table row `{code.value}` | {STATUS[code]}"
    )


@pytest.mark.parametrize("name", settings_read())
def test_every_setting_is_in_the_protocol_document(name: str) -> None:
    row = re.compile(rf"^\|\s*`{re.escape(name)}`\s*\|", re.M)
    assert row.search(doc_text()), f"docs/PROTOCOL.md has no settings table row for `{name}`"
