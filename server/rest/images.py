"""Orthanc's image routes: ``/instances/{id}/frames[/{n}/...]``, ``/instances/{id}/{preview,
image-uint8, image-uint16, image-int16, rendered, matlab, numpy}``, ``/series/{id}/numpy``.

As Orthanc's ``IDecodedFrameHandler``: a frame beyond the instance or an unknown instance
answers an empty 404, a frame that cannot be decoded or encoded 415, and the image format
follows ``Accept`` (PNG by default, JPEG with ``quality``, PAM).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server import images
from server.dicom import render
from server.errors import ErrorCode, OrthancError
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.resources import ID

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles

log = logging.getLogger("isengard.images")

#: The formats an image route can answer, the default first (Orthanc's registration order).
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/x-portable-arbitrarymap")
_FRAME_CHILDREN = ["image-int16", "image-uint16", "image-uint8", "matlab", "numpy", "preview", "raw", "raw.gz",
                   "rendered"]
_MODES = "|".join(m.value for m in render.Mode)


def negotiate(accept: str | None) -> str:
    """The answer's type from ``Accept`` (highest quality first, PNG for wildcards or none)."""
    if not accept:
        return _IMAGE_TYPES[0]
    ranges: list[tuple[float, str]] = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        quality = 1.0
        for parameter in parts[1:]:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if parts[0]:
            ranges.append((quality, parts[0].lower()))
    for quality, media_range in sorted(ranges, key=lambda r: -r[0]):
        kind, _, subtype = media_range.partition("/")
        for candidate in _IMAGE_TYPES:
            ckind, csub = candidate.split("/")
            if quality > 0 and kind in ("*", ckind) and subtype in ("*", csub):
                return candidate
    raise NoAnswer()  # Orthanc's negotiation fails silently: an empty 404


class _ImageHandler(OrthancHandler):
    """Shared parsing: the frame number, the output format, Orthanc's error mapping."""

    def output(self) -> images.Output:
        mime = negotiate(self.request.headers.get("Accept"))
        quality = 90
        if mime == "image/jpeg":
            value = self.get_argument("quality", "90")
            if not value.isdigit() or not 1 <= int(value) <= 100:
                raise OrthancError(ErrorCode.BAD_REQUEST,
                                   f"Bad quality for a JPEG encoding (must be a number between 0 and 100): {value}")
            quality = int(value)
        return images.Output(mime, quality)

    @staticmethod
    def frame_number(text: str | None) -> int:
        if text is None:
            return 0
        if not text.isdigit():
            raise NoAnswer()
        return int(text)

    async def answer_image(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        """Run ``fn``; out-of-range frames and unknown instances answer an empty 404, other
        failures (no pixel data, undecodable or corrupt frames) an empty 415, as Orthanc."""
        try:
            encoded = await self.run(fn, *args)
        except NoAnswer:
            raise
        except OrthancError as e:
            if e.code in (ErrorCode.PARAMETER_OUT_OF_RANGE, ErrorCode.UNKNOWN_RESOURCE):
                raise NoAnswer() from None
            if e.code == ErrorCode.BAD_REQUEST:
                raise
            log.info("Cannot answer %s: %s", self.request.path, e.details or e)
            self._empty(415)
            self.finish()
            return
        self.answer_bytes(encoded.body, encoded.mime)


class FramesHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, public_id: str) -> None:
        self.answer_json(await self.run(images.frames, self.files, public_id))


class FrameChildrenHandler(OrthancHandler):
    async def get(self, public_id: str, frame: str) -> None:
        self.answer_json(_FRAME_CHILDREN)


class ExtractedHandler(_ImageHandler):
    """``preview``, ``image-uint8``, ``image-uint16``, ``image-int16`` of a frame."""

    files: InstanceFiles

    async def get(self, public_id: str, *rest: str) -> None:
        frame_text, mode = (None, rest[0]) if len(rest) == 1 else rest
        frame = self.frame_number(frame_text)
        await self.answer_image(images.extracted, self.files, public_id, frame, render.Mode(mode), self.output)


class RenderedHandler(_ImageHandler):
    files: InstanceFiles

    async def get(self, public_id: str, frame_text: str | None = None) -> None:
        frame = self.frame_number(frame_text)
        await self.answer_image(images.rendered, self.files, public_id, frame, self.arguments, self.output)

    def arguments(self) -> render.RenderArguments:
        return render.RenderArguments(
            window_center=self._double("window-center"), window_width=self._double("window-width"),
            width=self._size("width"), height=self._size("height"), smooth=self.flag("smooth"))

    def _double(self, name: str) -> float | None:
        value = self.get_argument(name, None)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Bad value for argument: {name}") from None

    def _size(self, name: str) -> int:
        value = self.get_argument(name, None)
        if value is None:
            return 0
        try:
            number = int(value)
        except ValueError:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Bad value for argument: {name}") from None
        if number < 0:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument cannot be negative: {name}")
        return number


class MatlabHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, public_id: str, frame_text: str | None = None) -> None:
        frame = _ImageHandler.frame_number(frame_text)
        self.answer_bytes(await self.run(images.matlab, self.files, public_id, frame), "text/plain")


class RawFrameHandler(OrthancHandler):
    files: InstanceFiles

    async def get(self, public_id: str, frame_text: str, gz: str | None = None) -> None:
        frame = _ImageHandler.frame_number(frame_text)
        encoded = await self.run(images.raw, self.files, public_id, frame, gz is not None)
        self.answer_bytes(encoded.body, encoded.mime)


class _NumpyHandler(OrthancHandler):
    def options_of_query(self) -> tuple[bool, bool]:
        """(rescale, compress): Orthanc's boolean arguments, rescale by default."""
        return self._boolean("rescale", True), self._boolean("compress", False)

    def _boolean(self, name: str, default: bool) -> bool:
        if name not in self.request.arguments:
            return default
        value = self.get_argument(name, "").lower()
        if value in ("", "true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Expected a Boolean for argument \"{name}\": {value}")


class NumpyInstanceHandler(_NumpyHandler):
    files: InstanceFiles

    async def get(self, public_id: str, frame_text: str | None = None) -> None:
        frame = None
        if frame_text is not None:
            if not frame_text.isdigit():
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                                   'Expected an unsigned integer for the "frame" argument')
            frame = int(frame_text)
        rescale, compress = self.options_of_query()
        body = await self.run(images.numpy_instance, self.files, public_id, frame, rescale, compress)
        self.answer_bytes(body, "application/octet-stream")


class NumpySeriesHandler(_NumpyHandler):
    files: InstanceFiles

    async def get(self, public_id: str) -> None:
        rescale, compress = self.options_of_query()
        body = await self.run(images.numpy_series, self.files, public_id, rescale, compress)
        self.answer_bytes(body, "application/octet-stream")


def paths() -> list[tuple[str, type]]:
    frame = rf"/instances/{ID}/frames/([^/]+)"
    return [
        (rf"/instances/{ID}/frames", FramesHandler),
        (frame, FrameChildrenHandler),
        (rf"{frame}/({_MODES})", ExtractedHandler),
        (rf"/instances/{ID}/({_MODES})", ExtractedHandler),
        (rf"{frame}/rendered", RenderedHandler),
        (rf"/instances/{ID}/rendered", RenderedHandler),
        (rf"{frame}/matlab", MatlabHandler),
        (rf"/instances/{ID}/matlab", MatlabHandler),
        (rf"{frame}/raw(\.gz)?", RawFrameHandler),
        (rf"{frame}/numpy", NumpyInstanceHandler),
        (rf"/instances/{ID}/numpy", NumpyInstanceHandler),
        (rf"/series/{ID}/numpy", NumpySeriesHandler),
    ]


def routes(*, files: InstanceFiles) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), files=files)
