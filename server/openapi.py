"""The OpenAPI document and the cheat sheet of the REST API, generated from the routes table.

``python -m server --openapi=FILE`` and ``--cheatsheet=FILE`` write them, as Orthanc's
options do; ``schemas/openapi.json`` is the document, committed (a test checks that it is
what this module generates, so it never drifts from the routes).

Each route is a Tornado regular expression whose groups are the arguments of the handler's
methods.  A group that is a choice of literal words (``(patients|studies)``, ``(-local)?``)
becomes one path per word; any other group becomes a path parameter named after the
handler's argument (``{public_id}``).  An operation exists for each method the handler
implements; its summary is the first sentence of that method's docstring, else of the
handler's; its query parameters are the arguments the method reads by name.
"""

from __future__ import annotations

import csv
import inspect
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tornado.web

import server

METHODS = ("get", "post", "put", "delete")
#: The columns of Orthanc's cheat sheet, and the precedence of the methods for its summary.
CHEATSHEET_METHODS = ("get", "post", "delete", "put")
_QUERY_ARGUMENT = re.compile(r"""(?:get_argument|flag|int_argument)\(\s*["']([^"']+)["']""")
_SENTENCE_END = re.compile(r"(?<=\.)\s|\n\s*\n")


# -- from a route's regular expression to path templates -----------------------------------

@dataclass
class _Group:
    """A parenthesised part of a route: its alternatives, capturing or not, optional or not."""

    alternatives: list[list[_Item]]
    capturing: bool
    optional: bool

    def literal_words(self) -> list[str] | None:
        """The words of a choice between literal words, else None."""
        words = []
        for alternative in self.alternatives:
            parts = [item for item in alternative if isinstance(item, str)]
            if len(parts) != len(alternative):
                return None
            words.append("".join(parts).replace("\\", ""))
        return words


@dataclass
class _Wildcard:
    """A character class or ``.`` with its quantifier: only meaningful inside a capturing group."""

    text: str


_Item = str | _Group | _Wildcard


def _parse(pattern: str, start: int = 0) -> tuple[list[list[_Item]], int]:
    """The alternatives of ``pattern`` from ``start`` to the closing parenthesis (or the end)."""
    alternatives: list[list[_Item]] = [[]]
    i = start
    while i < len(pattern) and pattern[i] != ")":
        char = pattern[i]
        if char == "|":
            alternatives.append([])
            i += 1
        elif char == "(":
            capturing = not pattern.startswith("(?:", i)
            inner, end = _parse(pattern, i + (1 if capturing else 3))
            optional = pattern.startswith("?", end + 1)
            alternatives[-1].append(_Group(inner, capturing, optional))
            i = end + (2 if optional else 1)
        elif char == "\\":
            alternatives[-1].append(pattern[i:i + 2])
            i += 2
        elif char in "[.":
            end = pattern.index("]", i) + 1 if char == "[" else i + 1
            quantifier = re.match(r"[+*?]|\{\d+(,\d*)?\}", pattern[end:])
            end += len(quantifier.group()) if quantifier else 0
            alternatives[-1].append(_Wildcard(pattern[i:end]))
            i = end
        else:
            alternatives[-1].append(char)
            i += 1
    return alternatives, i


@dataclass(frozen=True)
class Template:
    """One path of a route: ``/studies/{public_id}/archive`` and its path parameters."""

    path: str
    parameters: tuple[str, ...]


def _alternatives_of(item: _Item, names: list[str], counter: list[int]) -> list[Template]:
    """What one item of a route stands for; ``counter`` numbers the capturing groups."""
    if isinstance(item, str):
        return [Template(item.replace("\\", ""), ())]
    if isinstance(item, _Wildcard):
        raise ValueError(f"{item.text!r} outside a capturing group: no path template for it")
    found: list[Template] = [Template("", ())] if item.optional else []
    words = item.literal_words() if item.capturing else None
    if item.capturing:
        number = counter[0]
        counter[0] += 1
    if words is not None:
        found += [Template(word, ()) for word in words]
    elif item.capturing:
        name = names[number] if number < len(names) else ""
        found.append(Template("{" + name + "}", (name,)))
    else:
        found += [template for alternative in item.alternatives
                  for template in _expand(alternative, names, counter)]
    return found


def _expand(items: list[_Item], names: list[str], counter: list[int]) -> list[Template]:
    """Every path template a sequence of a route's items stands for."""
    found = [Template("", ())]
    for item in items:
        following = _alternatives_of(item, names, counter)
        found = [Template(first.path + second.path, first.parameters + second.parameters)
                 for first in found for second in following]
    return found


def templates(pattern: str, names: list[str]) -> list[Template]:
    """The path templates of a route, its groups named by ``names`` (the handler's arguments)."""
    alternatives, _ = _parse(pattern)
    found: list[Template] = []
    for alternative in alternatives:
        for template in _expand(alternative, names, [0]):
            template = _name_anonymous(template)
            if template not in found:
                found.append(template)
    return found


def _name_anonymous(template: Template) -> Template:
    """Name the parameters a handler takes as ``*args`` after the segment before them
    (``/frames/{}`` is ``/frames/{frame}``)."""
    if "" not in template.parameters:
        return template
    segments = template.path.split("/")
    for i, segment in enumerate(segments):
        if segment == "{}":
            segments[i] = "{" + (segments[i - 1].removesuffix("s") or "argument") + "}"
    path = "/".join(segments)
    return Template(path, tuple(re.findall(r"\{([^}]+)\}", path)))


def _shape(path: str) -> str:
    """A path with its parameters unnamed: two paths of one shape are one path for OpenAPI."""
    return re.sub(r"\{[^}]*\}", "{}", path)


# -- handlers --------------------------------------------------------------------------------

def implemented_methods(handler: type) -> list[str]:
    """The HTTP methods a handler class answers (its own ``get``, ``post``... not the base's)."""
    from server.rest.base import OrthancHandler

    base = OrthancHandler if issubclass(handler, OrthancHandler) else tornado.web.RequestHandler
    return [method for method in METHODS if getattr(handler, method) is not getattr(base, method)]


def _argument_names(function: Callable[..., Any]) -> list[str]:
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _summary(*docstrings: str | None) -> str:
    """The first sentence of the first docstring there is, on one line, without markup."""
    for doc in docstrings:
        if doc and doc.strip():
            sentence = _SENTENCE_END.split(inspect.cleandoc(doc), maxsplit=1)[0]
            return " ".join(sentence.replace("``", "").split()).rstrip(".:")
    return ""


def _query_arguments(function: Callable[..., Any]) -> list[str]:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return []
    return sorted(set(_QUERY_ARGUMENT.findall(source)))


def _operation(handler: type, method: str, parameters: tuple[str, ...]) -> dict[str, Any]:
    function = getattr(handler, method)
    summary = _summary(function.__doc__, handler.__doc__) or \
        f"{method.upper()} ({re.sub(r'Handler$', '', handler.__name__)})"
    return {
        "summary": summary,
        "parameters": [
            *({"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in parameters),
            *({"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
              for name in _query_arguments(function)),
        ],
        "responses": {"200": {"description": "Success"}},
    }


# -- the documents ---------------------------------------------------------------------------

def document(routes: list[tuple[str, type]]) -> dict[str, Any]:
    """The OpenAPI 3 document of ``routes`` (Tornado's table: the first route matching wins)."""
    paths: dict[str, dict[str, Any]] = {}
    shapes: set[str] = set()
    for pattern, handler in routes:
        methods = implemented_methods(handler)
        if not methods:
            continue
        names = _argument_names(getattr(handler, methods[0]))
        for template in templates(pattern, names):
            if _shape(template.path) in shapes:
                continue  # an earlier route answers it
            shapes.add(_shape(template.path))
            paths[template.path] = {method: _operation(handler, method, template.parameters)
                                    for method in methods}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Isengard REST API",
            "version": server.__version__,
            "description": f"The REST API of Isengard, compatible with Orthanc {server.ORTHANC_VERSION}'s; "
                           "generated from its routes table.",
        },
        "paths": dict(sorted(paths.items())),
    }


def application_document() -> dict[str, Any]:
    """The document of the application's own routes (the scripts' routes aside)."""
    from server.rest.app import rest_routes

    return document(rest_routes())


def cheatsheet(openapi: dict[str, Any]) -> str:
    """Orthanc's cheat sheet: CSV, one row per path, its methods and a summary (GET's first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Path", *(method.upper() for method in CHEATSHEET_METHODS), "Summary"])
    for path, operations in openapi["paths"].items():
        summary = next((operations[m]["summary"] for m in CHEATSHEET_METHODS if m in operations), "")
        writer.writerow([f"``{path}``",
                         *(method.upper() if method in operations else "" for method in CHEATSHEET_METHODS),
                         summary])
    return buffer.getvalue()
