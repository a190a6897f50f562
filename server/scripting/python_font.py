"""The one font of ``GetFontsCount`` / ``GetFontName`` / ``GetFontSize`` and ``Image.DrawText``.

Orthanc embeds one bitmap font (Ubuntu Mono Bold, 16 pixels, the Latin-1
characters) and draws text the way :func:`draw` does: the UTF-8 text is converted
to Latin-1 (other characters dropped), each glyph's bitmap is an alpha mask laid
over the image at the pen position (``x``, ``y`` being the top left of the text),
``\\n`` starts a new line ``MaxHeight + 1`` pixels lower, and the blending is
Orthanc's ``Font::DrawCharacter`` (8-bit integer for Grayscale8 and RGB24, where
Grayscale8 takes the red value as its gray; "over" compositing for RGBA32 and
BGRA32; other formats are NotImplemented).

Isengard does not carry Ubuntu Mono: its glyphs are DejaVu Sans Mono Bold's (Debian's
``fonts-dejavu-core``, there wherever fontconfig is) at the same 16 pixels, else
those of the font embedded in Pillow (Aileron Regular, ASCII only; the characters
it lacks are not drawn).  So the same call draws the same text at the same place
in the same colours, with glyphs of another design.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageFont

SIZE = 16
#: The font used when installed (the nearest to Orthanc's Ubuntu Mono Bold).
SYSTEM_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf")
#: A character no font has: what a font draws for the characters it lacks.
_MISSING = "\ue000"
_GRAY8, _RGB24, _RGBA32, _BGRA32 = 1, 4, 5, 10  # orthanc.PixelFormat
_CHANNELS = {_GRAY8: 1, _RGB24: 3, _RGBA32: 4, _BGRA32: 4}


class UnsupportedFormat(ValueError):
    """Text is drawn on Grayscale8, RGB24, RGBA32 and BGRA32 images only."""


@dataclass(frozen=True)
class Glyph:
    left: int
    top: int
    advance: int
    alpha: np.ndarray  # (height, width) uint8


@dataclass(frozen=True)
class Font:
    name: str
    glyphs: dict[int, Glyph]
    max_height: int


@functools.cache
def font() -> Font:
    """The glyphs of the printable Latin-1 characters, their tops aligned as Orthanc's are (0: highest)."""
    source = ImageFont.truetype(SYSTEM_FONT, SIZE) if SYSTEM_FONT.is_file() else ImageFont.load_default(SIZE)
    assert isinstance(source, ImageFont.FreeTypeFont), "Pillow's wheels are built with FreeType"
    missing = bytes(source.getmask2(_MISSING, mode="L")[0])
    masks = {}
    for code in range(256):
        if unicodedata.category(chr(code))[0] == "C":
            continue
        mask, (left, top) = source.getmask2(chr(code), mode="L")
        if code != ord(" ") and bytes(mask) == missing:
            continue
        width, height = mask.size
        alpha = np.frombuffer(bytes(mask), np.uint8).reshape(height, width) if width and height else \
            np.zeros((0, 0), np.uint8)
        masks[code] = (left, top, round(source.getlength(chr(code))), alpha)
    highest = min(top for _, top, _, alpha in masks.values() if alpha.size)
    glyphs = {code: Glyph(left, top - highest if alpha.size else 0, advance, alpha)
              for code, (left, top, advance, alpha) in masks.items()}
    family, style = source.getname()
    return Font(f"{family}-{style}", glyphs, max(glyph.alpha.shape[0] for glyph in glyphs.values()))


def draw(pixels: bytearray, pixel_format: int, width: int, height: int, pitch: int, text: str, x: int, y: int,
         colour: tuple[int, int, int]) -> None:
    """Draw ``text`` into the image's ``pixels`` (changed in place)."""
    channels = _CHANNELS.get(pixel_format)
    if channels is None:
        raise UnsupportedFormat(pixel_format)
    rgb = colour[::-1] if pixel_format == _BGRA32 else colour
    image = np.ndarray((height, width, channels), np.uint8, buffer=pixels, strides=(pitch, channels, 1))
    loaded = font()
    pen = x
    for code in text.encode("latin-1", "ignore"):
        if code == ord("\n"):
            pen, y = x, y + loaded.max_height + 1
            continue
        glyph = loaded.glyphs.get(code)
        if glyph is not None:
            _blit(image, glyph, pen + glyph.left, y + glyph.top, np.array(rgb, np.uint16))
            pen += glyph.advance


def _blit(image: np.ndarray, glyph: Glyph, x: int, y: int, colour: np.ndarray) -> None:
    """One glyph over the image, clipped at its borders."""
    rows, columns = glyph.alpha.shape
    top, left = max(0, -y), max(0, -x)
    bottom, right = min(rows, image.shape[0] - y), min(columns, image.shape[1] - x)
    if top >= bottom or left >= right:
        return
    target = image[y + top:y + bottom, x + left:x + right]
    alpha = glyph.alpha[top:bottom, left:right]
    if image.shape[2] < 4:
        weight = alpha.astype(np.uint16)[:, :, None]
        blended = (weight * colour[:image.shape[2]] + (255 - weight) * target.astype(np.uint16)) >> 8
        target[...] = blended.astype(np.uint8)
        return
    a = (alpha.astype(np.float32) / np.float32(255))[:, :, None]
    b = (np.float32(1) - a) * target[:, :, 3:4].astype(np.float32) / np.float32(255)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        mixed = (a * colour.astype(np.float32) + b * target[:, :, :3].astype(np.float32)) * (np.float32(1) / total)
    target[:, :, :3] = np.where(total > 0, mixed, 0).astype(np.uint8)
    target[:, :, 3:4] = (np.float32(255) * total).astype(np.uint8)
