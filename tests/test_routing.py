"""OrthancApplication's routing by first path segment picks the rule Tornado's own router
picks (the first that matches, in the routes' order), for every documented path."""

from __future__ import annotations

import re
import warnings

import pytest
import tornado.httputil
import tornado.routing
import tornado.web

from server import openapi
from server.rest.app import OrthancApplication, first_segments, normalize_path, rest_routes
from server.rest.base import UnknownRouteHandler

SAMPLE_VALUE = "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"
UNKNOWN = ["/", "/no-such-route", "/tools", "/tools/", "/toolsx/find", "/instancesx", "/Instances",
           "/instances/a/b/c/d/e/f", "//system", "/app/explorer.html", "/ui/app/index.html"]


def _request(path: str) -> tornado.httputil.HTTPServerRequest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return tornado.httputil.HTTPServerRequest(method="GET", uri=path, headers=tornado.httputil.HTTPHeaders())


def test_the_first_matching_rule_wins_as_in_tornado() -> None:
    handlers = [(pattern, handler) for pattern, handler in rest_routes()]
    settings = {"default_handler_class": UnknownRouteHandler, "default_handler_args": {}}
    ours, tornados = OrthancApplication(handlers, **settings), tornado.web.Application(handlers, **settings)
    paths = [re.sub(r"\{[^}]+\}", SAMPLE_VALUE, path) for path in openapi.application_document()["paths"]]
    for path in [*paths, *UNKNOWN]:
        expected = tornados.find_handler(_request(normalize_path(path)))  # as ours normalizes it
        found = ours.find_handler(_request(path))
        assert (found.handler_class, found.path_args) == (expected.handler_class, expected.path_args), path


@pytest.mark.parametrize("pattern, segments", [
    (r"/system$", {"system"}),
    (r"/tools/create-archive$", {"tools"}),
    (r"/(patients|studies|series|instances)/([^/]+)/archive$", {"patients", "studies", "series", "instances"}),
    (r"/(studies)/([^/]+)$", {"studies"}),
    (r"/$", None),                        # the root: no segment spelled out
    (r"/(.*)$", None),                    # any
    (r"/app/explorer.html$", {"app"}),
    (r"/a.b/c$", None),                   # "." is any character
    (r"/instances(/.*)?$", None),         # not followed by "/" or the end
    (r"/(?:tools|jobs)/x$", None),        # not a plain group of words
])
def test_first_segments(pattern: str, segments: set[str] | None) -> None:
    found = first_segments(tornado.routing.PathMatches(pattern))
    assert found == (None if segments is None else frozenset(segments))
