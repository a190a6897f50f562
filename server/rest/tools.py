"""``/tools/...``: find, lookup, clocks, UIDs, encodings, log level, reset, shutdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import logging_setup, requested_tags
from server.clock import local_now_iso, utc_now_iso
from server.dicom import uids
from server.dicom.charset import parse_encoding
from server.dicom.main_tags import parse_level
from server.errors import ErrorCode, OrthancError
from server.find import FindOptions, database_limit, parse_options, parse_request
from server.net.conformance import conformance_statement
from server.net.scp import DicomServer, accepted_transfer_syntaxes, configured_sop_classes
from server.resources import RESPONSE_CONTENT
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.body import parse_json
from server.rest.formats import body_format

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.config import Configuration
    from server.find import Finder
    from server.requested_tags import RequestedTags
    from server.resources import ResourceViews
    from server.rest.metadata import MetadataNames
    from server.storage.index import Index


class FindHandler(OrthancHandler):
    """``/tools/find``: the 1.10.1 fields, and the 1.12 labels, 1.12.5 ``OrderBy``,
    ``Parent*``, ``MetadataQuery`` and ``ResponseContent`` (which overrides ``Expand``)."""

    config: Configuration
    finder: Finder
    metadata_names: MetadataNames
    requested_tags: RequestedTags
    views: ResourceViews

    async def post(self) -> None:
        level, constraints, body = parse_request(self.json_body())
        options = parse_options(body, self.metadata_names.number)
        content = _response_content(body)
        requested = requested_tags.parse_list(body.get("RequestedTags", []))
        since = body.get("Since", 0)
        limit = body.get("Limit", 0)
        fmt = body_format(body, "simplify")
        self.answer_json(await self.run(self._find, level, constraints, options, since, limit,
                                        content, requested, fmt,
                                        bool(body.get("CaseSensitive", False))))

    def _find(self, level, constraints, options: FindOptions, since: int, limit: int,
              content: set[str] | None, requested: list, fmt: str, case_sensitive: bool) -> list:
        finder = self.finder
        if since and constraints and (case_sensitive
                                      or not finder.fully_in_index(level, constraints)):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               "Unable to use 'Since' when finding resources when querying "
                               "against Dicom Tags that are not in the MainDicomTags or when "
                               "using CaseSenstive queries.")
        found, _ = finder.find(level, constraints, since, limit, options,
                               database_limit(self.config, level))
        if content is None:
            return [r.public_id for r in found]
        if content == _EXPAND:
            answers = self.views.expand_many(found, fmt)
        else:
            answers = [self.views.content(r, content, fmt, self.metadata_names.name) for r in found]
        return self.requested_tags.add_to(answers, found, requested, fmt)


class CountResourcesHandler(OrthancHandler):
    """``/tools/count-resources`` (Orthanc 1.12.5): ``/tools/find``'s filters, ``{"Count"}``."""

    finder: Finder
    metadata_names: MetadataNames

    async def post(self) -> None:
        level, constraints, body = parse_request(self.json_body())
        if body.get("CaseSensitive") is True:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               'Setting "CaseSensitive" to "true" is not supported by '
                               '/tools/count-resources')
        options = parse_options(body, self.metadata_names.number)
        count = await self.run(self.finder.count, level, constraints, options)
        self.answer_json({"Count": count})


#: Stands for ``"Expand": true`` (the full view of ``GET /{level}/{id}``).
_EXPAND = {"*"}


def _response_content(body: dict) -> set[str] | None:
    """What a find answers per resource: None for identifiers only, :data:`_EXPAND`, or
    the ``ResponseContent`` items."""
    content = body.get("ResponseContent")
    if content is None:
        return _EXPAND if bool(body.get("Expand", False)) else None
    if not isinstance(content, list):
        raise OrthancError(ErrorCode.BAD_REQUEST, 'Field "ResponseContent" must be an array')
    for item in content:
        if item not in RESPONSE_CONTENT:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f'Unrecognized value for "ResponseContent": {item}')
    return set(content)


class LookupHandler(OrthancHandler):
    index: Index

    async def post(self) -> None:
        value = self.request.body.decode("utf-8", "replace")
        found = await self.run(self.index.lookup_identifier, value)
        self.answer_json([{"ID": r.public_id, "Path": f"/{r.level.plural}/{r.public_id}",
                           "Type": r.level.title} for r in found])


class NowHandler(OrthancHandler):
    async def get(self, local: str | None) -> None:
        self.answer_text(local_now_iso() if local else utc_now_iso())


class GenerateUidHandler(OrthancHandler):
    async def get(self) -> None:
        text = self.get_argument("level", None)
        if text is None:
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               'Missing "level" argument in /tools/generate-uid')
        self.answer_text(uids.generate(parse_level(text)))


class DefaultEncodingHandler(OrthancHandler):
    encoding: Callable[[], str]
    set_encoding: Callable[[str], None]

    async def get(self) -> None:
        self.answer_text(self.encoding())

    async def put(self) -> None:
        """Any case is accepted; the answer is the encoding as Orthanc spells it."""
        text = self.request.body.decode("utf-8", "replace")
        name = parse_encoding(text)
        if name is None:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown encoding: {text}")
        self.set_encoding(name)
        self.answer_text(name)


class LogLevelHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_text(logging_setup.get_log_level())

    async def put(self) -> None:
        level = self.request.body.decode("utf-8", "replace").strip()
        if level not in ("default", "verbose", "trace"):
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               f"Bad log level: {level}")
        logging_setup.set_log_level(level)
        self.answer_empty_text()


class ConformanceHandler(OrthancHandler):
    dicom: Callable[[], DicomServer | None]

    async def get(self) -> None:
        dicom = self.dicom()
        self.answer_text(conformance_statement(dicom.ae if dicom else None))


class AcceptedTransferSyntaxesHandler(OrthancHandler):
    """What the DICOM server accepts in C-STORE, changed at run time (Orthanc 1.9)."""

    dicom: Callable[[], DicomServer | None]

    async def get(self) -> None:
        self.answer_json(self._dicom().transfer_syntaxes)

    async def put(self) -> None:
        try:
            patterns = parse_json(self.request.body, ValueError())
        except ValueError:  # a plain transfer syntax UID or pattern
            patterns = self.request.body.decode("utf-8", "replace").strip()
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               "Expected a transfer syntax UID or a JSON list of them")
        self._dicom().set_transfer_syntaxes(accepted_transfer_syntaxes(patterns))
        self.answer_json(self._dicom().transfer_syntaxes)

    def _dicom(self) -> DicomServer:
        dicom = self.dicom()
        if dicom is None:
            raise OrthancError(ErrorCode.BAD_SEQUENCE_OF_CALLS, "The DICOM server is disabled")
        return dicom


class UnknownSopClassAcceptedHandler(AcceptedTransferSyntaxesHandler):
    async def get(self) -> None:
        self.answer_text("1" if self._dicom().unknown_sop_class_accepted else "0")

    async def put(self) -> None:
        self._dicom().set_unknown_sop_class_accepted(self.boolean_body())
        self.answer_empty_text()


class AcceptedSopClassesHandler(OrthancHandler):
    """The storage SOP classes the C-STORE SCP accepts (Orthanc 1.12.6): ``AcceptedSopClasses``
    less ``RejectedSopClasses``, sorted as Orthanc's set, whether the DICOM server runs or not."""

    config: Configuration

    async def get(self) -> None:
        self.answer_json(sorted(configured_sop_classes(self.config)))


class ResetHandler(OrthancHandler):
    request_stop: Callable[[bool], None]

    async def post(self) -> None:
        self.answer_json({})
        self.request_stop(restart=True)


class ShutdownHandler(OrthancHandler):
    request_stop: Callable[[bool], None]

    async def post(self) -> None:
        self.answer_json({})
        self.request_stop(restart=False)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/tools/find", FindHandler),
        (r"/tools/count-resources", CountResourcesHandler),
        (r"/tools/lookup", LookupHandler),
        (r"/tools/now(-local)?", NowHandler),
        (r"/tools/generate-uid", GenerateUidHandler),
        (r"/tools/default-encoding", DefaultEncodingHandler),
        (r"/tools/log-level", LogLevelHandler),
        (r"/tools/dicom-conformance", ConformanceHandler),
        (r"/tools/accepted-transfer-syntaxes", AcceptedTransferSyntaxesHandler),
        (r"/tools/unknown-sop-class-accepted", UnknownSopClassAcceptedHandler),
        (r"/tools/accepted-sop-classes", AcceptedSopClassesHandler),
        (r"/tools/reset", ResetHandler),
        (r"/tools/shutdown", ShutdownHandler),
    ]


def routes(*, config: Configuration, dicom: Callable[[], DicomServer | None], encoding: Callable[[], str],
           finder: Finder, index: Index, metadata_names: MetadataNames, request_stop: Callable[[bool], None],
           requested_tags: RequestedTags, set_encoding: Callable[[str], None], views: ResourceViews) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), config=config, dicom=dicom, encoding=encoding, finder=finder, index=index,
                         metadata_names=metadata_names, request_stop=request_stop, requested_tags=requested_tags,
                         set_encoding=set_encoding, views=views)
