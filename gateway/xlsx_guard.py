"""Refusing hostile or unreadable .xlsx files before openpyxl sees a byte of them.

An .xlsx is a zip of XML parts. Everything here uses the standard library: zipfile for
the archive, and a bare expat parser that stops at the first DTD for the XML parts. So a zip
bomb, an XML entity attack, a macro-enabled workbook or a sheet whose merged cells would
make openpyxl build billions of objects is refused with a message the Navigator can act on,
before openpyxl parses anything. openpyxl itself must still parse through defusedxml (belt
and braces: this check is the first line, defusedxml the second); `check_xlsx` refuses to
pass a file on if it does not.
"""

from __future__ import annotations

import itertools
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from xml.parsers import expat

import openpyxl.xml
from openpyxl.utils.cell import column_index_from_string

from gateway.errors import SpreadsheetRefused

MIB = 1024 * 1024

# Every OLE2 compound file (old .xls, and an OOXML file once a password encrypts it)
# starts with these eight bytes (MS-CFB 2.2).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# A password-protected .xlsx is an OLE file holding these streams (MS-OFFCRYPTO 2.3.4);
# directory entry names are stored in UTF-16LE.
_ENCRYPTED_STREAMS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))
_ZIP_MAGIC = b"PK\x03\x04"

# Small parts can compress far better than 100:1 without any malice (a run of identical
# empty rows), so the ratio is only judged once a part, or the whole, is this big.
_RATIO_APPLIES_FROM = MIB
_CHUNK = 64 * 1024

# The first bytes of a part that an XML parser would read as XML: optional UTF-8 BOM and
# white space then "<", or UTF-16 (with a byte-order mark, or "<" next to a zero byte).
_XML_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*<|\xff\xfe|\xfe\xff|<\x00|\x00<")
_RANGE = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d{1,7})(?::\$?([A-Za-z]{1,3})\$?(\d{1,7}))?")

_CONTENT_TYPES = "[Content_Types].xml"
_WORKBOOK = "xl/workbook.xml"
_MACRO_CONTENT_MARKERS = ("macroenabled", "vbaproject", "macrosheet")
# Elements whose cell range openpyxl fills with one object per cell when it loads a sheet.
_RANGE_ELEMENTS = {"mergeCell", "hyperlink"}


@dataclass(frozen=True)
class XlsxLimits:
    """How big a police spreadsheet may be, before and after decompression."""

    max_file_bytes: int = 10 * MIB
    max_entries: int = 1000
    max_uncompressed_bytes: int = 200 * MIB
    max_ratio: float = 100
    # Cells covered by merged ranges and hyperlink ranges, which openpyxl creates one by
    # one: a 40-byte <mergeCell ref="A1:XFD1048576"/> is 17 billion of them.
    max_range_cells: int = 100_000


class _Refusal(Exception):
    """Why the file is refused; `check_xlsx` adds the file name."""


def check_xlsx(data: bytes, file_name: str, limits: XlsxLimits) -> None:
    """Raise SpreadsheetRefused unless `data` is a plain, macro-free .xlsx within `limits`."""
    try:
        _check(data, limits)
    except _Refusal as refusal:
        raise SpreadsheetRefused(f"{file_name}: refused: {refusal}") from None


def _check(data: bytes, limits: XlsxLimits) -> None:
    if not openpyxl.xml.DEFUSEDXML:
        raise _Refusal(
            "openpyxl is not parsing through defusedxml (is defusedxml installed, and "
            "OPENPYXL_DEFUSEDXML unset?), so no spreadsheet is opened"
        )
    if len(data) > limits.max_file_bytes:
        raise _Refusal(
            f"the file is {len(data):,} bytes, over the limit of {limits.max_file_bytes:,}"
        )
    if not data:
        raise _Refusal("the file is empty")
    if not data.startswith(_ZIP_MAGIC):
        raise _Refusal(_not_a_zip(data))
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise _Refusal(f"the file is a damaged zip archive ({exc})") from None
    with archive:
        entries = archive.infolist()
        _check_entries(entries, limits)
        names = {entry.filename for entry in entries}
        if _CONTENT_TYPES not in names:
            raise _Refusal(f"it has no {_CONTENT_TYPES}, so it is not an Office Open XML file")
        if _WORKBOOK not in names:
            raise _Refusal(f"it has no {_WORKBOOK}, so it is not an Excel .xlsx workbook")
        for entry in entries:
            lowered = entry.filename.lower()
            if lowered.endswith("vbaproject.bin") or lowered.startswith("xl/macrosheets/"):
                raise _Refusal(
                    f"it contains macros ({entry.filename}); only a plain .xlsx is accepted"
                )
        _scan_parts(archive, entries, limits)


def _not_a_zip(data: bytes) -> str:
    if data.startswith(_OLE_MAGIC):
        if all(stream in data for stream in _ENCRYPTED_STREAMS):
            return (
                "the workbook is password-protected (encrypted); ask the sender for a copy "
                "without a password, sent by secure email"
            )
        return "it is an old-style Excel 97-2003 (.xls) or other OLE file, not an .xlsx"
    if _looks_like_text(data[:4096]):
        return "it is a text file (perhaps a CSV renamed to .xlsx), not an .xlsx workbook"
    return "it is not an .xlsx file (not a zip archive)"


def _looks_like_text(head: bytes) -> bool:
    # Undecodable bytes (a CSV in Windows-1252) become U+FFFD, which is printable; a binary
    # file gives itself away with control characters.
    encoding = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    text = head.decode(encoding, errors="replace").removeprefix("\ufeff")
    return all(char.isprintable() or char in "\r\n\t" for char in text)


def _check_entries(entries: list[zipfile.ZipInfo], limits: XlsxLimits) -> None:
    """Judge the archive by its central directory, before decompressing anything."""
    if len(entries) > limits.max_entries:
        raise _Refusal(
            f"possible zip bomb: {len(entries):,} parts, over the limit of {limits.max_entries:,}"
        )
    seen: set[str] = set()
    for entry in entries:
        if entry.filename in seen:
            # Two parts of one name: which one a reader takes is up to the reader.
            raise _Refusal(f"the part {entry.filename} appears twice")
        seen.add(entry.filename)
        if entry.flag_bits & 0x1:
            raise _Refusal(f"the part {entry.filename} is encrypted")
        if entry.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refusal(f"the part {entry.filename} uses an unsupported compression method")
    declared = sum(entry.file_size for entry in entries)
    if declared > limits.max_uncompressed_bytes:
        raise _Refusal(
            f"possible zip bomb: it would unpack to {declared:,} bytes, over the limit of "
            f"{limits.max_uncompressed_bytes:,}"
        )
    for entry in entries:
        _check_ratio(entry.filename, entry.file_size, entry.compress_size, limits)
    compressed = sum(entry.compress_size for entry in entries)
    _check_ratio("the archive as a whole", declared, compressed, limits)


def _check_ratio(what: str, unpacked: int, packed: int, limits: XlsxLimits) -> None:
    if unpacked >= _RATIO_APPLIES_FROM and unpacked > limits.max_ratio * max(packed, 1):
        raise _Refusal(
            f"possible zip bomb: {what} compresses {unpacked / max(packed, 1):,.0f} to 1, "
            f"over the limit of {limits.max_ratio:g} to 1"
        )


def _scan_parts(
    archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: XlsxLimits
) -> None:
    """Decompress every part once, reading each XML part with a bare expat parser.

    The central directory's sizes are the sender's claim. zipfile stops each part at its
    declared size and then checks the CRC, so a part that holds more than it declares is
    refused as damaged; the running total is capped here as well, so the limit holds
    whatever zipfile does with a lying directory.
    """
    total = 0
    xml = _XmlScan(limits)
    for entry in entries:
        try:
            chunks = _read_chunks(archive, entry)
            first = next(chunks, b"")
            is_xml = bool(_XML_START.match(first))
            if is_xml:
                xml.begin(entry.filename)
            for chunk in itertools.chain([first], chunks):
                total += len(chunk)
                if total > limits.max_uncompressed_bytes:
                    raise _Refusal(
                        f"possible zip bomb: it unpacks to more than "
                        f"{limits.max_uncompressed_bytes:,} bytes"
                    )
                if is_xml:
                    xml.feed(chunk)
            if is_xml:
                xml.end()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise _Refusal(f"the part {entry.filename} is damaged ({exc})") from None


class _XmlScan:
    """The workbook's XML parts through expat, one after another, before openpyxl.

    Refuses a DTD (the only way into entity expansion and external entities; no part Excel
    writes has one) as soon as expat meets the DOCTYPE, before its internal subset is read;
    a macro content type; and merged or linked ranges covering too many cells. Encodings
    are expat's business, so a part in UTF-16 hides nothing.
    """

    def __init__(self, limits: XlsxLimits) -> None:
        self.limits = limits
        self.range_cells = 0  # over the whole workbook
        self.part = ""
        self.parser = expat.ParserCreate()

    def begin(self, part: str) -> None:
        self.part = part
        self.parser = expat.ParserCreate()
        self.parser.StartDoctypeDeclHandler = self.refuse_dtd
        self.parser.EntityDeclHandler = self.refuse_dtd
        self.parser.StartElementHandler = self.start_element

    def feed(self, chunk: bytes) -> None:
        self.parse(chunk, final=False)

    def end(self) -> None:
        self.parse(b"", final=True)

    def parse(self, data: bytes, *, final: bool) -> None:
        try:
            self.parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise _Refusal(f"the part {self.part} is not well-formed XML ({exc})") from None

    def refuse_dtd(self, *_: object) -> None:
        raise _Refusal(f"the part {self.part} declares a DOCTYPE or ENTITY (an XML entity attack)")

    def start_element(self, tag: str, attributes: dict[str, str]) -> None:
        local = tag.rpartition(":")[2]
        if self.part == _CONTENT_TYPES and local in ("Default", "Override"):
            content_type = attributes.get("ContentType", "").lower()
            if any(marker in content_type for marker in _MACRO_CONTENT_MARKERS):
                raise _Refusal("it is a macro-enabled workbook (.xlsm); only .xlsx is accepted")
        if local in _RANGE_ELEMENTS and "ref" in attributes:
            self.range_cells += _cells_in(attributes["ref"], self.part)
            if self.range_cells > self.limits.max_range_cells:
                raise _Refusal(
                    f"its merged or linked cell ranges cover more than "
                    f"{self.limits.max_range_cells:,} cells (last: {attributes['ref']!r} in "
                    f"{self.part})"
                )


def _cells_in(ref: str, part: str) -> int:
    cells = 0
    for piece in ref.split():
        match = _RANGE.fullmatch(piece)
        if match is None:
            raise _Refusal(f"the cell range {piece!r} in {part} cannot be read")
        first_column, first_row = column_index_from_string(match[1]), int(match[2])
        last_column = column_index_from_string(match[3]) if match[3] else first_column
        last_row = int(match[4]) if match[4] else first_row
        cells += (abs(last_column - first_column) + 1) * (abs(last_row - first_row) + 1)
    return cells


def _read_chunks(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> Iterator[bytes]:
    with archive.open(entry) as part:
        while chunk := part.read(_CHUNK):
            yield chunk
