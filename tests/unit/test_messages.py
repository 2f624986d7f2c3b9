"""Server-side messages that the pages show (form errors, the error page) are whole sentences
with placeholders, each translated in locale/es.csv with the same placeholders; `AppError`
renders them in either language."""

from __future__ import annotations

import ast
import csv
import re

import pytest
import tornado.locale

from services.errors import AppError, Code, Label
from services.inputs import LABELS, Registration
from tests.conftest import ROOT

# Where the messages of the login and registration forms and of the error page come from.
SHOWN_ON_PAGES = (
    "services/inputs.py",
    "services/auth.py",
    "services/errors.py",
    "handlers/pages.py",
)
# handlers/base.py's own texts for the error page (its other messages are the JSON API's).
ERROR_PAGE_TEXTS = (
    "Forbidden",
    "Not found",
    "Something went wrong.",
    "Something went wrong on our side.",
)
# Messages that are rightly the same in both languages. None so far: keep it short.
SAME_IN_BOTH: frozenset[str] = frozenset({"{n} bytes"})  # "bytes" is Spanish too
# Where each kind of call takes its message template.
TEMPLATE_ARG = {"AppError": 1, "invalid": 0, "refused": 0, "Label": 0}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


# Functions that pass on a template they were given (or its translation).
PASSING_ON = {"invalid", "refused", "translated"}


def templates_in(path: str) -> list[tuple[int, ast.expr]]:
    """(line, template) of every message made in the module at `path`."""
    tree = ast.parse((ROOT / path).read_text(), path)
    passed_on = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name in PASSING_ON
        for node in ast.walk(fn)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and id(node) not in passed_on
        ):
            index = TEMPLATE_ARG.get(node.func.id)
            if index is not None and len(node.args) > index:
                found.append((node.lineno, node.args[index]))
    return found


def page_messages() -> list[str]:
    messages = list(ERROR_PAGE_TEXTS)
    for path in SHOWN_ON_PAGES:
        for line, arg in templates_in(path):
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{path}:{line}: a message is a literal template with %(name)s placeholders "
                "and keyword parameters, so that it can be translated (no f-string)"
            )
            messages.append(arg.value)
    return sorted(set(messages))


def spanish(text: str) -> str:
    return tornado.locale.get("es").translate(text)


def test_the_error_page_texts_are_still_those_of_handlers_base() -> None:
    source = (ROOT / "handlers/base.py").read_text()
    for text in ERROR_PAGE_TEXTS:
        assert f'"{text}"' in source, text


def test_messages_are_found() -> None:
    messages = page_messages()
    assert "%(field)s must be %(min)d-%(max)d characters." in messages
    assert "That user name is taken." in messages
    assert "Password" in messages  # a field's label


@pytest.mark.parametrize("english", page_messages())
def test_each_message_the_pages_show_is_a_translated_sentence(english: str) -> None:
    translated = spanish(english)
    assert translated != english or english in SAME_IN_BOTH, f"no Spanish for {english!r}"
    assert english[:1].isupper() or english.startswith("%(field)s"), english
    assert translated[:1].isupper() or translated.startswith("%(field)s"), translated
    assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(english))


# What a template translates (templates/strings.html carries the pages' scripts' texts):
# `_("...")`, or `_("...", "...", n)` for a singular or plural form ("Resolved": the status of
# one conversation, Resuelta; without a count, the reports' column, Resueltas).
TEMPLATE_TEXT = re.compile(r'\b_\("((?:[^"\\]|\\.)*)"(?:, "((?:[^"\\]|\\.)*)", (\d+))?\)')


def template_texts() -> list[tuple[str, str | None, int | None]]:
    found = {
        (text, plural or None, int(count) if count else None)
        for path in (ROOT / "templates").glob("*.html")
        for text, plural, count in TEMPLATE_TEXT.findall(path.read_text(encoding="utf-8"))
    }
    return sorted(found, key=str)


def test_template_texts_are_found() -> None:
    texts = template_texts()
    assert ("Log out", None, None) in texts  # logout.html
    assert ("Private note", None, None) in texts  # the inbox's composer and strings.html
    assert ("Resolved", "Resolved", 1) in texts  # a status


@pytest.mark.parametrize(("english", "plural", "count"), template_texts())
def test_each_text_of_the_templates_has_spanish(
    english: str, plural: str | None, count: int | None
) -> None:
    translated = tornado.locale.get("es").translate(english, plural, count)
    assert translated != english or english in SAME_IN_BOTH, f"no Spanish for {english!r}"
    assert re.findall(r"\{\w+\}", translated) == re.findall(r"\{\w+\}", english), translated


def test_field_labels_are_capitalized() -> None:
    assert all(label[:1].isupper() for label in LABELS.values())


def test_locale_files_name_each_english_text_once() -> None:
    for path in (ROOT / "locale").glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as f:
            # A text may have a singular and a plural form besides its form without a count.
            keys = [(row[0], row[2] if len(row) > 2 else "") for row in csv.reader(f) if row]
        assert len(keys) == len(set(keys)), {k for k in keys if keys.count(k) > 1}


def test_an_error_renders_in_english_or_through_a_translation() -> None:
    with pytest.raises(AppError) as caught:
        Registration.parse({"username": "ana", "name": "Ana", "password": "short"}, min_password=12)
    err = caught.value
    assert err.message == "Password must be 12-128 characters."
    assert err.body() == {"error": "invalid", "message": err.message}
    assert err.text(spanish) == "El campo Contraseña debe tener entre 12 y 128 caracteres."


def test_parameters_are_shown_as_given_and_only_labels_are_translated() -> None:
    err = AppError(Code.INVALID, "%(field)s: %(given)s", field=Label("Name"), given="Name")
    assert err.message == "Name: Name"
    assert err.text(lambda text: {"Name": "Nombre"}.get(text, text)) == "Nombre: Name"
    assert AppError(Code.INVALID, "100% sure").text(spanish) == "100% sure"
