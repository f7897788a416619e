"""Hostile and unreadable files are refused whole, with a reason, and the next file still reads.

Each hostile file is made by code from a good workbook: zip surgery, not fixtures on disk.
"""

from __future__ import annotations

import struct
import zipfile
from io import BytesIO

import openpyxl.xml
import pytest
from police_workbooks import FILE, long_sheet, part, read, rewrite_parts

from gateway.errors import SpreadsheetRefused
from gateway.xlsx_guard import MIB, XlsxLimits, check_xlsx

GOOD = long_sheet(["R1", "01/03/2025", "20:00", "High", "Crime", "Jo Bloggs", "01/02/2015"])
HOSTILE = "hostile.xlsx"
SHEET = "xl/worksheets/sheet1.xml"
CONTENT_TYPES = "[Content_Types].xml"


def assert_refused(data: bytes, *reason: str, limits: XlsxLimits | None = None) -> str:
    """Reading `data` is refused naming the file and every fragment of `reason`; a good
    file read straight after is unaffected."""
    with pytest.raises(SpreadsheetRefused) as refused:
        read(data, file_name=HOSTILE, limits=limits)
    message = str(refused.value)
    assert message.startswith(f"{HOSTILE}: refused: ")
    for fragment in reason:
        assert fragment in message
    assert [c.display_name for i in read(GOOD).incidents for c in i.children] == ["Jo Bloggs"]
    return message


def _with_sheet_xml(body: bytes) -> bytes:
    return rewrite_parts(GOOD, {SHEET: body})


def _zip(members: dict[str, bytes]) -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


# --------------------------------------------------------------------------------------
# Zip bombs


def test_part_that_compresses_hugely_is_refused_as_a_zip_bomb() -> None:
    bomb = rewrite_parts(GOOD, add={"xl/media/image1.png": bytes(20 * MIB)})
    assert len(bomb) < 100_000
    assert_refused(bomb, "possible zip bomb", "xl/media/image1.png", "to 1")


def test_archive_that_would_unpack_past_the_size_limit_is_refused() -> None:
    out = BytesIO(GOOD)
    with (
        zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open("xl/worksheets/sheet2.xml", "w", force_zip64=True) as member,
    ):
        for _ in range(201):
            member.write(bytes(MIB))
    assert_refused(out.getvalue(), "possible zip bomb", "would unpack to", "209,715,200")


def test_archive_with_too_many_parts_is_refused() -> None:
    parts = {f"xl/media/image{n}.png": b"x" for n in range(1001)}
    assert_refused(rewrite_parts(GOOD, add=parts), "possible zip bomb", "1,010 parts")


def test_part_holding_more_than_its_declared_size_is_refused() -> None:
    data = bytearray(rewrite_parts(GOOD, add={"xl/media/image1.png": bytes(5 * MIB)}))
    # Make the central directory claim 1,000 bytes: the declared ratio looks harmless.
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 24 : entry + 28] = struct.pack("<I", 1000)
    assert_refused(bytes(data), "xl/media/image1.png", "damaged")


def test_smaller_limits_are_honoured() -> None:
    limits = XlsxLimits(max_file_bytes=1000)
    assert_refused(GOOD, "over the limit of 1,000", limits=limits)


# --------------------------------------------------------------------------------------
# XML entity attacks

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">
<si><t>&lol3;</t></si></sst>"""


def test_billion_laughs_in_shared_strings_is_refused() -> None:
    rels = part(GOOD, "xl/_rels/workbook.xml.rels").replace(
        b"</Relationships>",
        b'<Relationship Id="rId99" Target="sharedStrings.xml" Type="http://schemas.'
        b'openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/></Relationships>',
    )
    types = part(GOOD, CONTENT_TYPES).replace(
        b"</Types>",
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxml'
        b'formats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    )
    data = rewrite_parts(
        GOOD,
        {"xl/_rels/workbook.xml.rels": rels, CONTENT_TYPES: types},
        add={"xl/sharedStrings.xml": BILLION_LAUGHS},
    )
    assert_refused(data, "xl/sharedStrings.xml", "DOCTYPE", "entity attack")


def test_external_entity_in_a_worksheet_is_refused() -> None:
    sheet = part(GOOD, SHEET).decode()
    xxe = sheet.replace(
        "<worksheet", '<!DOCTYPE w [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><worksheet', 1
    ).replace("Jo Bloggs", "&xxe;")
    assert_refused(_with_sheet_xml(xxe.encode()), SHEET, "DOCTYPE", "entity attack")


def test_doctype_in_a_utf16_part_is_refused() -> None:
    sheet = part(GOOD, SHEET).decode()
    hostile = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE w [<!ENTITY a "b">]>' + sheet
    assert_refused(_with_sheet_xml(hostile.encode("utf-16")), SHEET, "DOCTYPE")


def test_openpyxl_not_parsing_through_defusedxml_refuses_every_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openpyxl.xml, "DEFUSEDXML", False)
    with pytest.raises(SpreadsheetRefused, match=f"^{FILE}: refused: .*defusedxml"):
        read(GOOD)


# --------------------------------------------------------------------------------------
# Macros


def test_workbook_with_a_vba_project_is_refused() -> None:
    data = rewrite_parts(GOOD, add={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"})
    assert_refused(data, "macros", "xl/vbaProject.bin")


def test_macro_enabled_content_type_is_refused() -> None:
    types = part(GOOD, CONTENT_TYPES).replace(
        b"spreadsheetml.sheet.main+xml", b"ms-excel.sheet.macroEnabled.main+xml"
    )
    assert_refused(rewrite_parts(GOOD, {CONTENT_TYPES: types}), "macro-enabled", ".xlsm")


def test_excel4_macro_sheet_is_refused() -> None:
    data = rewrite_parts(GOOD, add={"xl/macrosheets/sheet1.xml": b"<xm:macrosheet/>"})
    assert_refused(data, "macros", "xl/macrosheets/sheet1.xml")


# --------------------------------------------------------------------------------------
# Not an .xlsx at all


def test_csv_renamed_to_xlsx_is_refused_as_text() -> None:
    csv = b"Incident Ref,Child Name,DOB\r\nR1,Jo Bloggs,01/02/2015\r\n"
    assert_refused(csv, "text file", "CSV")


def test_csv_with_a_bom_and_accented_letters_is_refused_as_text() -> None:
    csv = b"\xef\xbb\xbfRef,Name\r\nR1,Zo\xeb Bloggs\r\n"
    assert_refused(csv, "text file")


def test_oversized_file_is_refused_before_anything_else() -> None:
    assert_refused(GOOD + bytes(10 * MIB), "10,485,760")


def test_empty_file_is_refused() -> None:
    assert_refused(b"", "empty")


def _ole(*streams: str) -> bytes:
    """A compound-file header and a directory sector naming `streams` (MS-CFB 2.6)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    entries = b""
    for name in ("Root Entry", *streams):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        entries += encoded.ljust(64, b"\x00") + struct.pack("<H", len(encoded)) + bytes(62)
    return header + entries.ljust(512, b"\x00")


def test_password_protected_workbook_is_refused_as_encrypted() -> None:
    assert_refused(_ole("EncryptionInfo", "EncryptedPackage"), "password-protected")


def test_old_xls_file_is_refused_as_not_xlsx() -> None:
    assert_refused(_ole("Workbook", "\x05SummaryInformation"), "97-2003 (.xls)")


def test_binary_file_is_refused_as_not_a_zip() -> None:
    assert_refused(b"\x89PNG\r\n\x1a\n" + bytes(100), "not a zip archive")


def test_truncated_zip_is_refused_as_damaged() -> None:
    assert_refused(GOOD[: len(GOOD) // 2], "damaged zip archive")


def test_zip_with_a_corrupted_part_is_refused_as_damaged() -> None:
    data = bytearray(GOOD)
    start = data.index(b"xl/worksheets/sheet1.xml") + len("xl/worksheets/sheet1.xml")
    data[start : start + 40] = bytes(40)  # the start of the part's compressed data
    assert_refused(bytes(data), "damaged")


def test_zip_without_a_workbook_is_refused() -> None:
    docx = _zip({CONTENT_TYPES: b"<Types/>", "word/document.xml": b"<document/>"})
    assert_refused(docx, "no xl/workbook.xml")


def test_zip_without_content_types_is_refused() -> None:
    assert_refused(_zip({"xl/workbook.xml": b"<workbook/>"}), "not an Office Open XML file")


def test_malformed_xml_part_is_refused() -> None:
    assert_refused(_with_sheet_xml(b"<worksheet><sheetData>"), SHEET, "not well-formed XML")


def test_workbook_openpyxl_cannot_open_is_refused_naming_the_file() -> None:
    workbook = part(GOOD, "xl/workbook.xml").replace(b'r:id="rId1"', b'r:id="rId404"')
    assert_refused(rewrite_parts(GOOD, {"xl/workbook.xml": workbook}), "cannot be opened")


def test_workbook_without_worksheets_is_refused() -> None:
    assert_refused(rewrite_parts(GOOD, {"xl/workbook.xml": b"<workbook/>"}), "no worksheets")


# --------------------------------------------------------------------------------------
# Cells openpyxl would create one by one


def test_merged_range_over_the_whole_sheet_is_refused() -> None:
    sheet = part(GOOD, SHEET).replace(
        b"</sheetData>",
        b'</sheetData><mergeCells count="1"><mergeCell ref="A1:XFD1048576"/></mergeCells>',
    )
    assert_refused(_with_sheet_xml(sheet), "merged or linked cell ranges", "A1:XFD1048576")


def test_hyperlink_over_a_huge_range_is_refused() -> None:
    sheet = part(GOOD, SHEET).replace(
        b"</sheetData>",
        b'</sheetData><hyperlinks><hyperlink ref="A1:Z100000" display="x"/></hyperlinks>',
    )
    assert_refused(_with_sheet_xml(sheet), "merged or linked cell ranges")


# --------------------------------------------------------------------------------------
# The guard on its own


def test_a_normal_workbook_passes_the_guard() -> None:
    check_xlsx(GOOD, FILE, XlsxLimits())


def test_small_parts_that_compress_well_are_not_zip_bombs() -> None:
    # 64 KiB of zeros compresses about 1000 to 1; only parts of 1 MiB or more are judged.
    check_xlsx(rewrite_parts(GOOD, add={"xl/media/pad.bin": bytes(64 * 1024)}), FILE, XlsxLimits())
