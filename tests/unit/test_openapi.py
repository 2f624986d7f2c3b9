"""handlers.openapi: `/openapi.json` is a valid OpenAPI document, of a version that the Swagger
UI served at `/api-docs` can read."""

from __future__ import annotations

import re
from pathlib import Path

import swagger_ui_bundle
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator, validate

from handlers.openapi import openapi_document


def swagger_ui_major() -> int:
    """The major version of the Swagger UI that `/api-docs/vendor/` serves (the package keeps
    it in a folder named `swagger-ui-<version>`)."""
    found = re.fullmatch(
        r"swagger-ui-(\d+)\.\d+\.\d+", Path(swagger_ui_bundle.swagger_ui_path).name
    )
    assert found, swagger_ui_bundle.swagger_ui_path
    return int(found.group(1))


def test_the_document_declares_a_version_the_served_swagger_ui_reads() -> None:
    # Swagger UI 4 reads OpenAPI 2.0 and 3.0.x only; 3.1 needs Swagger UI 5. Anything else
    # gets "Unable to render this definition" instead of the operations.
    readable = r"3\.0\.\d+" if swagger_ui_major() < 5 else r"3\.[01]\.\d+"
    assert re.fullmatch(readable, openapi_document()["openapi"])


def test_the_document_is_valid_for_the_openapi_version_it_declares() -> None:
    document = openapi_document()
    validator = {"3.0": OpenAPIV30SpecValidator, "3.1": OpenAPIV31SpecValidator}
    validate(document, cls=validator[document["openapi"][:3]])
