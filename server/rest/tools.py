"""``/tools/...``: find, lookup, clocks, UIDs, encodings, log level, reset, shutdown."""

from __future__ import annotations

from server import logging_setup, requested_tags
from server.clock import local_now_iso, utc_now_iso
from server.dicom import uids
from server.dicom.charset import parse_encoding
from server.dicom.main_tags import parse_level
from server.errors import ErrorCode, OrthancError
from server.find import FindOptions, database_limit, parse_options, parse_request
from server.net.conformance import conformance_statement
from server.net.scp import DicomServer, accepted_transfer_syntaxes
from server.resources import RESPONSE_CONTENT
from server.rest.base import OrthancHandler
from server.rest.body import parse_json
from server.rest.formats import body_format


class FindHandler(OrthancHandler):
    """``/tools/find``: the 1.10.1 fields, and the 1.12 labels, 1.12.5 ``OrderBy``,
    ``Parent*``, ``MetadataQuery`` and ``ResponseContent`` (which overrides ``Expand``)."""

    async def post(self) -> None:
        level, constraints, body = parse_request(self.json_body())
        options = parse_options(body, self.ctx.metadata_names.number)
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
        finder = self.ctx.finder
        if since and constraints and (case_sensitive
                                      or not finder.fully_in_index(level, constraints)):
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               "Unable to use 'Since' when finding resources when querying "
                               "against Dicom Tags that are not in the MainDicomTags or when "
                               "using CaseSenstive queries.")
        found, _ = finder.find(level, constraints, since, limit, options,
                               database_limit(self.ctx.config, level))
        if content is None:
            return [r.public_id for r in found]
        return [self._answer(r, content, requested, fmt) for r in found]

    def _answer(self, resource, content: set[str], requested: list, fmt: str) -> dict:
        views = self.ctx.views
        if content == _EXPAND:
            answer = views.expand(resource, fmt)
        else:
            answer = views.content(resource, content, fmt, self.ctx.metadata_names.name)
        if requested:
            answer["RequestedTags"] = self.ctx.requested_tags.as_json(resource, requested, fmt)
        return answer


class CountResourcesHandler(OrthancHandler):
    """``/tools/count-resources`` (Orthanc 1.12.5): ``/tools/find``'s filters, ``{"Count"}``."""

    async def post(self) -> None:
        level, constraints, body = parse_request(self.json_body())
        if body.get("CaseSensitive") is True:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                               'Setting "CaseSensitive" to "true" is not supported by '
                               '/tools/count-resources')
        options = parse_options(body, self.ctx.metadata_names.number)
        count = await self.run(self.ctx.finder.count, level, constraints, options)
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
    async def post(self) -> None:
        value = self.request.body.decode("utf-8", "replace")
        found = await self.run(self.ctx.index.lookup_identifier, value)
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
    async def get(self) -> None:
        self.answer_text(self.ctx.default_encoding)

    async def put(self) -> None:
        """Any case is accepted; the answer is the encoding as Orthanc spells it."""
        text = self.request.body.decode("utf-8", "replace")
        name = parse_encoding(text)
        if name is None:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown encoding: {text}")
        self.ctx.set_default_encoding(name)
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
    async def get(self) -> None:
        self.answer_text(conformance_statement(self.ctx.dicom.ae if self.ctx.dicom else None))


class AcceptedTransferSyntaxesHandler(OrthancHandler):
    """What the DICOM server accepts in C-STORE, changed at run time (Orthanc 1.9)."""

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
        if self.ctx.dicom is None:
            raise OrthancError(ErrorCode.BAD_SEQUENCE_OF_CALLS, "The DICOM server is disabled")
        return self.ctx.dicom


class UnknownSopClassAcceptedHandler(AcceptedTransferSyntaxesHandler):
    async def get(self) -> None:
        self.answer_text("1" if self._dicom().unknown_sop_class_accepted else "0")

    async def put(self) -> None:
        self._dicom().set_unknown_sop_class_accepted(self.boolean_body())
        self.answer_empty_text()


class ResetHandler(OrthancHandler):
    async def post(self) -> None:
        self.answer_json({})
        self.ctx.request_stop(restart=True)


class ShutdownHandler(OrthancHandler):
    async def post(self) -> None:
        self.answer_json({})
        self.ctx.request_stop(restart=False)


def routes() -> list[tuple[str, type]]:
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
        (r"/tools/reset", ResetHandler),
        (r"/tools/shutdown", ShutdownHandler),
    ]
