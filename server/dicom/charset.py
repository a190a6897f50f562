"""Text decoding as Orthanc 1.10.1 does it, quirks included.

Orthanc picks one encoding for the whole dataset from the first non-empty
term of SpecificCharacterSet (or ``DefaultEncoding`` without one), decodes
every string with it while skipping undecodable bytes, and, when the
attribute has several terms (ISO 2022 code extensions), strips the escape
sequences from the result instead of switching character sets.  An unknown
term makes it keep the plain ASCII characters only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.valuerep import CUSTOMIZABLE_CHARSET_VR, PersonName

import server

#: Orthanc's ``Encoding`` enumeration, the one table of this module: each name (as
#: ``DefaultEncoding`` and ``/tools/default-encoding`` spell it) with the Python codec that
#: converts as ICU does (None: Ascii, Utf8 and Thai have code of their own) and the
#: SpecificCharacterSet Orthanc writes for it (``GetDicomSpecificCharacterSet``).
#: Windows1251 is no DICOM character set: Orthanc writes no SpecificCharacterSet for it.
_ENCODINGS: dict[str, tuple[str | None, str | None]] = {
    "Ascii": (None, "ISO_IR 6"),
    "Utf8": (None, "ISO_IR 192"),
    "Latin1": ("latin-1", "ISO_IR 100"),
    "Latin2": ("iso8859-2", "ISO_IR 101"),
    "Latin3": ("iso8859-3", "ISO_IR 109"),
    "Latin4": ("iso8859-4", "ISO_IR 110"),
    "Latin5": ("iso8859-9", "ISO_IR 148"),
    "Cyrillic": ("iso8859-5", "ISO_IR 144"),
    "Windows1251": ("cp1251", None),
    "Arabic": ("iso8859-6", "ISO_IR 127"),
    "Greek": ("iso8859-7", "ISO_IR 126"),
    "Hebrew": ("iso8859-8", "ISO_IR 138"),
    "Thai": (None, "ISO_IR 166"),
    "Japanese": ("shift_jis", "ISO_IR 13"),
    "Chinese": ("gb18030", "GB18030"),
    "Korean": ("euc_kr", "ISO 2022 IR 149"),
    "JapaneseKanji": ("iso2022_jp", "ISO 2022 IR 87"),
    "SimplifiedChinese": ("gb2312", "ISO 2022 IR 58"),
}

_CODECS: dict[str, str] = {name: codec for name, (codec, _) in _ENCODINGS.items() if codec}

_BY_UPPER_NAME = {name.upper(): name for name in _ENCODINGS}

#: SpecificCharacterSet terms Orthanc reads (``GetDicomEncoding``): those it writes, the
#: ISO 2022 form of the single-byte ones (UTF-8 has none), and GBK.
_TERMS: dict[str, str] = {
    **{term: name for name, (_, term) in _ENCODINGS.items() if term},
    **{term.replace("ISO_IR", "ISO 2022 IR"): name for name, (_, term) in _ENCODINGS.items()
       if term and term.startswith("ISO_IR") and term != "ISO_IR 192"},
    "GBK": "Chinese",
}


def parse_encoding(text: str) -> str | None:
    """Orthanc's ``StringToEncoding``: an encoding name in any case, as Orthanc spells it."""
    return _BY_UPPER_NAME.get(text.upper())


#: Shifts, single-shift and escape sequences of ISO/IEC 2022, as Orthanc removes them.
_ISO2022_CONTROLS = re.compile(
    "[\x0e\x0f]|\x1b[\x6e\x6f\x4e\x4f\x7c\x7d\x7e]|\x8e\x1b\x4e|\x8f\x1b\x4f"
    "|\x1b[\x20-\x2f]+[\x30-\x7f]")

#: The ICU Shift-JIS table Orthanc uses reads 0x5C and 0x7E as JIS X 0201 Roman.
_JIS_X_0201_ROMAN = str.maketrans({"\\": "\u00a5", "~": "\u203e"})
#: Orthanc 1.12.9 (API 29): 0x5C stays the backslash that separates values, but in UT, ST, LT.
API_JAPANESE_SEPARATORS = 29
_JIS_X_0201_SEPARATED = str.maketrans({"~": "\u203e"})

#: ICU's TIS-620 table has no C1 controls: those bytes are skipped.
_C1_CONTROLS = bytes(range(0x80, 0xA0))

#: ASCII as Orthanc's ``ConvertToAscii`` keeps it: printable characters and newline.
_NOT_ASCII = re.compile(b"[^\x20-\x7e\n]")


class FollowsDefaultEncoding:
    """A services bundle whose ``encoding`` (a callable: ``PUT /tools/default-encoding``
    changes it at run time) gives the current ``DefaultEncoding``."""

    encoding: Callable[[], str]

    @property
    def default_encoding(self) -> str:
        return self.encoding()


@dataclass(frozen=True, slots=True)
class TextDecoder:
    """How the strings of one dataset become Unicode."""

    encoding: str
    code_extensions: bool = False

    def decode(self, raw: bytes, vr: str | None = None) -> str:
        """The UTF-8 text Orthanc shows for the raw bytes of a string value (of ``vr``, when the
        caller knows it: Japanese values are then split at their backslashes, from API 29)."""
        if self.encoding == "Ascii":
            return ascii_only(raw)
        if self.encoding == "Utf8":
            text = utf8_skipping_invalid(raw)
        elif self.encoding == "Thai":
            text = raw.translate(None, _C1_CONTROLS).decode("tis-620", "ignore")
        else:
            text = raw.decode(_CODECS[self.encoding], "ignore")
        if self.encoding == "Japanese":
            separated = vr is not None and vr not in ("UT", "ST", "LT") \
                and server.ORTHANC_API_VERSION >= API_JAPANESE_SEPARATORS
            text = text.translate(_JIS_X_0201_SEPARATED if separated else _JIS_X_0201_ROMAN)
        if self.code_extensions:
            text = _ISO2022_CONTROLS.sub("", text)
        return text


def utf8_skipping_invalid(raw: bytes) -> str:
    """UTF-8 decoding as boost.locale's ``utf_to_utf`` with ``skip`` does it.

    An invalid sequence is dropped together with the byte that revealed it
    (a non-continuation byte is consumed, not re-read as a new lead byte).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    chars: list[str] = []
    position, end = 0, len(raw)
    while position < end:
        lead = raw[position]
        position += 1
        trail = _utf8_trail_length(lead)
        if trail <= 0:
            if trail == 0:
                chars.append(chr(lead))
            continue
        code = lead & ((1 << (6 - trail)) - 1)
        for _ in range(trail):
            if position == end:
                return "".join(chars)
            byte = raw[position]
            position += 1
            if byte & 0xC0 != 0x80:
                break
            code = code << 6 | byte & 0x3F
        else:
            if _is_valid_code_point(code, trail):
                chars.append(chr(code))
    return "".join(chars)


def _utf8_trail_length(lead: int) -> int:
    """Continuation bytes after a lead byte, -1 for a byte that cannot lead."""
    if lead < 0x80:
        return 0
    if lead < 0xC2:
        return -1
    if lead < 0xE0:
        return 1
    if lead < 0xF0:
        return 2
    return 3 if lead <= 0xF4 else -1


def _is_valid_code_point(code: int, trail: int) -> bool:
    """No surrogate, nothing past U+10FFFF, and the shortest encoding."""
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return False
    width = 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return width == trail + 1


def encoding_for_term(term: str) -> str | None:
    """Orthanc's ``GetDicomEncoding``: the encoding of one SpecificCharacterSet term, or None."""
    return _TERMS.get(term.strip().upper())


def specific_character_set(encoding: str) -> str | None:
    """The SpecificCharacterSet value Orthanc writes for ``encoding`` (None for Windows1251)."""
    return _ENCODINGS[encoding][1] if encoding in _ENCODINGS else None


def pydicom_value(text: str, encoding: str, vr: str) -> str | bytes | PersonName:
    """The value to give pydicom for it to write the bytes Orthanc writes for ``text`` in a
    dataset of ``encoding`` (characters the encoding lacks dropped, see :func:`encode_text`).

    The VRs with a character set get their bytes as they are (pydicom writes those
    unchanged, where its own codecs differ from Orthanc's, for Japanese say); the others
    are written as Latin-1, so they get the text that is those bytes in Latin-1.
    """
    raw = encode_text(text, encoding)
    if vr == "PN":
        return PersonName(raw)
    if vr in CUSTOMIZABLE_CHARSET_VR:
        return raw
    return raw.decode("latin-1")


def encode_text(text: str, encoding: str) -> bytes:
    """UTF-8 text as Orthanc writes it in a dataset of ``encoding`` (``ConvertFromUtf8``).

    Characters the encoding cannot represent are dropped, and ASCII keeps only
    what ``ConvertToAscii`` keeps; JIS X 0212 characters get their ISO 2022 escapes.
    """
    if encoding == "Utf8":
        return text.encode("utf-8")
    if encoding == "Ascii":
        return _NOT_ASCII.sub(b"", text.encode("ascii", "ignore"))
    return text.encode(_writing_codec(encoding), "ignore")


def _writing_codec(encoding: str) -> str:
    """The Python codec that writes ``encoding`` as Orthanc does."""
    special = {"Utf8": "utf-8", "Ascii": "ascii", "Thai": "tis-620", "JapaneseKanji": "iso2022_jp_2"}
    return special.get(encoding) or _CODECS[encoding]


def keep_encodable(text: str, encoding: str) -> str:
    """``text`` without the characters ``encoding`` cannot represent (Orthanc's conversions drop them)."""
    return encode_text(text, encoding).decode(_writing_codec(encoding))


def ascii_only(raw: bytes) -> str:
    """Orthanc's ``ConvertToAscii``: drop every byte but printable ASCII and newline."""
    return _NOT_ASCII.sub(b"", raw).decode("ascii")


def decoder_for(specific_character_set: bytes | None,
                default_encoding: str = "Latin1") -> TextDecoder:
    """The decoder for a dataset whose SpecificCharacterSet value is given (raw).

    ``None`` (attribute absent) and an empty value both mean ``default_encoding``.
    """
    if specific_character_set is None:
        return TextDecoder(default_encoding)
    terms = specific_character_set.decode("latin-1").split("\\")
    for term in terms:
        term = term.strip()
        if term:
            return TextDecoder(_TERMS.get(term.upper(), "Ascii"), len(terms) > 1)
    return TextDecoder(default_encoding)
