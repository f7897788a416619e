"""The spreadsheets taken from an authenticated police mail, and the files refused."""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from pgp_keys import KeyFactory, PgpKey
from police_mail_corpus import (
    POLICE,
    content,
    encrypted_file,
    entity_bytes,
    settings,
    signed_and_encrypted,
    workbook,
)

from gateway.keyring import Keyring
from gateway.police_mail import MIB, AttachmentScan, attachments
from gateway.sender_auth import authenticate

WORKBOOK = workbook()
Scan = Callable[..., AttachmentScan]


@pytest.fixture
def scan(gateway: Keyring, police_key: PgpKey, mash_key: PgpKey) -> Scan:
    """attachments() of a payload authenticated by `method`, with the police key pinned."""

    def run(
        payload: EmailMessage, method: str = "pgp", max_bytes: int = 10 * MIB
    ) -> AttachmentScan:
        police = settings(
            fingerprints=(police_key.fingerprint,), mash_fingerprint=mash_key.fingerprint
        )
        return attachments(
            payload,
            method=method,  # type: ignore[arg-type]
            keyring=gateway,
            passphrase=None,
            police=police,
            max_bytes=max_bytes,
        )

    return run


def parsed(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def encrypted_workbook(
    police: Keyring, mash_key: PgpKey, signer: PgpKey | None, data: bytes = WORKBOOK
) -> bytes:
    return encrypted_file(
        data,
        keyring=police,
        recipient=mash_key.fingerprint,
        signer=signer.fingerprint if signer else None,
    )


def test_an_xlsx_attachment_is_taken(scan: Scan) -> None:
    result = scan(content(("daily.xlsx", WORKBOOK)))
    (sheet,) = result.spreadsheets
    assert (sheet.filename, sheet.data, sheet.encrypted) == ("daily.xlsx", WORKBOOK, False)
    assert result.refused == ()
    assert result.summary == "taken: daily.xlsx"


def test_the_extension_is_read_whatever_its_case(scan: Scan) -> None:
    (sheet,) = scan(content(("DAILY.XLSX", WORKBOOK))).spreadsheets
    assert sheet.filename == "DAILY.XLSX"


def test_an_rfc_2231_encoded_file_name_is_read(scan: Scan) -> None:
    message = content(("Incidents légère 02-03.xlsx", WORKBOOK))
    assert b"filename*=utf-8''Incidents%20l%C3%A9g%C3%A8re" in entity_bytes(message)
    (sheet,) = scan(message).spreadsheets
    assert sheet.filename == "Incidents légère 02-03.xlsx"


def test_an_rfc_2231_file_name_in_continuations_is_read(scan: Scan) -> None:
    # RFC 2231 §3 and §4: a long name split over numbered, partly encoded, parameters.
    message = content(("placeholder.xlsx", WORKBOOK))
    (part,) = message.iter_attachments()
    del part["Content-Disposition"]
    part["Content-Disposition"] = (
        "attachment; filename*0*=UTF-8''Encompass%20retour%20; filename*1=\"du jour.xlsx\""
    )
    (sheet,) = scan(parsed(entity_bytes(message))).spreadsheets
    assert sheet.filename == "Encompass retour du jour.xlsx"


def test_a_name_given_only_in_content_type_is_read(scan: Scan) -> None:
    message = content(("daily.xlsx", WORKBOOK))
    (part,) = message.iter_attachments()
    del part["Content-Disposition"]
    part.set_param("name", "daily.xlsx")
    (sheet,) = scan(parsed(entity_bytes(message))).spreadsheets
    assert sheet.filename == "daily.xlsx"


def test_a_folder_in_a_file_name_is_dropped(scan: Scan) -> None:
    (sheet,) = scan(content(("..\\..\\daily.xlsx", WORKBOOK))).spreadsheets
    assert sheet.filename == "daily.xlsx"


@pytest.mark.parametrize("name", ["daily.xlsx.gpg", "daily.XLSX.PGP"])
def test_an_encrypted_spreadsheet_is_decrypted_with_the_mash_key(
    name: str, police: Keyring, police_key: PgpKey, mash_key: PgpKey, scan: Scan
) -> None:
    result = scan(content((name, encrypted_workbook(police, mash_key, police_key))))
    (sheet,) = result.spreadsheets
    assert (sheet.filename, sheet.data, sheet.encrypted) == (name, WORKBOOK, True)
    assert sheet.signer == police_key.fingerprint


def test_in_a_signed_mail_an_unsigned_encrypted_spreadsheet_is_taken(
    police: Keyring, mash_key: PgpKey, scan: Scan
) -> None:
    # The mail's own pinned signature covers the file's bytes.
    result = scan(content(("daily.xlsx.gpg", encrypted_workbook(police, mash_key, None))), "pgp")
    (sheet,) = result.spreadsheets
    assert (sheet.data, sheet.signer) == (WORKBOOK, None)


@pytest.mark.parametrize("signed_by", ["nobody", "impostor"])
def test_under_dkim_alone_an_encrypted_spreadsheet_needs_a_pinned_signature(
    signed_by: str,
    key_factory: KeyFactory,
    police: Keyring,
    mash_key: PgpKey,
    gateway: Keyring,
    scan: Scan,
) -> None:
    impostor = key_factory.make(POLICE, name="Police DA desk", serial=1)
    impostor.install_secret(police)
    impostor.install_public(gateway)
    signer = impostor if signed_by == "impostor" else None
    result = scan(content(("daily.xlsx.gpg", encrypted_workbook(police, mash_key, signer))), "dkim")
    assert result.spreadsheets == ()
    (refused,) = result.refused
    assert "authenticated by DKIM alone needs an encrypted spreadsheet signed" in refused.reason


def test_under_dkim_alone_an_encrypted_spreadsheet_signed_by_the_pinned_key_is_taken(
    police: Keyring, police_key: PgpKey, mash_key: PgpKey, scan: Scan
) -> None:
    encrypted = encrypted_workbook(police, mash_key, police_key)
    (sheet,) = scan(content(("daily.xlsx.gpg", encrypted)), "dkim").spreadsheets
    assert (sheet.data, sheet.signer) == (WORKBOOK, police_key.fingerprint)


def test_a_file_encrypted_to_a_key_the_gateway_lacks_is_refused(
    key_factory: KeyFactory, police: Keyring, scan: Scan
) -> None:
    elsewhere = key_factory.make("someone@elsewhere.example")
    elsewhere.install_public(police)
    encrypted = encrypted_workbook(police, elsewhere, None)
    (refused,) = scan(content(("daily.xlsx.gpg", encrypted))).refused
    assert refused.reason == "it cannot be decrypted with the MASH key (no secret key for it)"


def test_a_file_encrypted_to_the_navigator_key_is_refused(
    navigator_key: PgpKey, police: Keyring, scan: Scan
) -> None:
    # The gateway holds the Navigator's secret key too, but police files go to the MASH key.
    navigator_key.install_public(police)
    encrypted = encrypted_workbook(police, navigator_key, None)
    (refused,) = scan(content(("daily.xlsx.gpg", encrypted))).refused
    assert "not the MASH key" in refused.reason


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("daily.xlsm", "macro-enabled workbook"),
        ("daily.xlsm.gpg", "macro-enabled workbook"),
        ("daily.xls", "old Excel format"),
        ("daily.csv", "not a spreadsheet"),
        ("daily.pdf", "not a spreadsheet"),
        ("daily.xlsx.asc", "not a spreadsheet"),
        ("daily.xlsx.zip", "not a spreadsheet"),
    ],
)
def test_other_files_are_refused_with_a_reason(name: str, why: str, scan: Scan) -> None:
    result = scan(content((name, WORKBOOK)))
    assert result.spreadsheets == ()
    (refused,) = result.refused
    assert refused.filename == name
    assert why in refused.reason


def test_a_mail_with_no_attachment_is_reported(scan: Scan) -> None:
    result = scan(content())
    assert (result.spreadsheets, result.refused) == ((), ())
    assert result.summary == "the mail has no attached file: the spreadsheet was not attached"


def test_a_mail_with_only_refused_files_is_reported(scan: Scan) -> None:
    result = scan(content(("daily.xlsm", WORKBOOK), ("notes.pdf", b"%PDF-1.7")))
    assert result.spreadsheets == ()
    assert result.summary.startswith("no spreadsheet could be taken from the mail: daily.xlsm: ")
    assert "notes.pdf: not a spreadsheet" in result.summary


def test_refused_files_beside_a_spreadsheet_are_listed_too(scan: Scan) -> None:
    result = scan(content(("daily.xlsx", WORKBOOK), ("notes.pdf", b"%PDF-1.7")))
    assert [s.filename for s in result.spreadsheets] == ["daily.xlsx"]
    assert [f.filename for f in result.refused] == ["notes.pdf"]


def test_a_file_over_the_size_limit_is_refused(scan: Scan) -> None:
    (refused,) = scan(content(("daily.xlsx", WORKBOOK)), max_bytes=1000).refused
    assert refused.reason == f"the file is {len(WORKBOOK)} bytes, over the 1000 bytes limit"


def test_an_encrypted_file_that_decrypts_beyond_the_limit_is_refused(
    police: Keyring, police_key: PgpKey, mash_key: PgpKey, scan: Scan
) -> None:
    # OpenPGP compresses: 8 MB of zeros travel in a few kilobytes.
    bomb = encrypted_workbook(police, mash_key, police_key, data=bytes(8 * MIB))
    assert len(bomb) < MIB
    (refused,) = scan(content(("daily.xlsx.gpg", bomb)), max_bytes=MIB).refused
    assert "went past the 1.0 MB limit" in refused.reason


def test_a_forwarded_message_is_not_read(scan: Scan) -> None:
    forwarded = content(("daily.xlsx", WORKBOOK))
    outer = content()
    outer.add_attachment(forwarded)
    result = scan(outer)
    assert result.spreadsheets == ()
    (refused,) = result.refused
    assert "forwarded message is not read" in refused.reason


def test_damaged_base64_is_refused(scan: Scan) -> None:
    message = content(("daily.xlsx", WORKBOOK))
    raw = entity_bytes(message)
    encoded_start = raw.index(b"UEsDB")  # every zip starts "PK\x03\x04"
    damaged = raw[:encoded_start] + b"UEs*!" + raw[encoded_start + 5 :]
    (refused,) = scan(parsed(damaged)).refused
    assert refused.reason == "the attachment's base64 encoding is damaged"


def test_the_spreadsheet_of_a_signed_and_encrypted_mail_is_taken_from_the_verdict(
    police: Keyring, police_key: PgpKey, mash_key: PgpKey, gateway: Keyring
) -> None:
    police_settings = settings(
        fingerprints=(police_key.fingerprint,), mash_fingerprint=mash_key.fingerprint
    )
    raw = signed_and_encrypted(
        content(("daily.xlsx", WORKBOOK)),
        keyring=police,
        signer=police_key.fingerprint,
        recipient=mash_key.fingerprint,
    )
    verdict = authenticate(raw, police=police_settings, keyring=gateway, passphrase=None)
    assert verdict.ok and verdict.payload is not None and verdict.method is not None
    result = attachments(
        verdict.payload,
        method=verdict.method,
        keyring=gateway,
        passphrase=None,
        police=police_settings,
        max_bytes=10 * MIB,
    )
    assert [s.data for s in result.spreadsheets] == [WORKBOOK]
