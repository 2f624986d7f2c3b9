"""The pages' Content-Security-Policy lets their images (and the widget's fetches) follow an
attachment's redirect to the S3 store, and nowhere else."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from handlers.base import CSP, page_csp
from services.storage import link_origins


def settings(**env: str):
    return load_settings(env, dotenv_path=None)


def directives(csp: str) -> dict[str, list[str]]:
    return {p.split()[0]: p.split()[1:] for p in csp.split(";") if p.strip()}


def test_a_directory_store_adds_nothing() -> None:
    assert link_origins(settings()) == ()
    assert page_csp(link_origins(settings())) == CSP
    assert directives(CSP)["img-src"] == ["'self'", "data:", "blob:"]
    assert directives(CSP)["connect-src"] == ["'self'"]


@pytest.mark.parametrize(
    ("endpoint", "origins"),
    [
        (None, ("https://*.amazonaws.com",)),
        ("http://127.0.0.1:9000", ("http://127.0.0.1:9000", "http://*.127.0.0.1:9000")),
        (
            "https://minio.example.com/",
            ("https://minio.example.com", "https://*.minio.example.com"),
        ),
        ("http://[::1]:9000", ("http://[::1]:9000", "http://*.[::1]:9000")),
    ],
)
def test_an_s3_store_adds_its_endpoint_to_images_and_fetches(
    endpoint: str | None, origins: tuple[str, ...]
) -> None:
    env = {"STORAGE_URL": "s3://bucket/chat"}
    if endpoint is not None:
        env["S3_ENDPOINT_URL"] = endpoint
    found = link_origins(settings(**env))
    assert found == origins
    csp = directives(page_csp(found))
    assert csp["img-src"] == ["'self'", "data:", "blob:", *origins]
    assert csp["connect-src"] == ["'self'", *origins]
    assert csp["script-src"] == ["'self'"]  # scripts never
    assert csp["frame-ancestors"] == ["'none'"]
