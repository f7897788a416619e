"""Sender authentication of police mail (DESIGN.md invariant 3): an allow-listed From that
proves itself by a pinned OpenPGP signature or by the trusted server's DKIM/DMARC pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from pgp_keys import KeyFactory, PgpKey
from police_mail_corpus import (
    BODY_TEXT,
    COLLEAGUE,
    POLICE,
    POLICE_DOMAIN,
    SIGNED_BOUNDARY,
    STRANGER,
    TRUSTED,
    Header,
    add_signing_subkey,
    authentication_results,
    content,
    mail,
    police_keyring,
    received_by_mash,
    sent_by_police,
    settings,
    signed,
    signed_and_encrypted,
    with_trace,
    workbook,
)

from gateway.keyring import Keyring
from gateway.sender_auth import (
    AuthenticationResultsError,
    SenderVerdict,
    authenticate,
    parse_authentication_results,
)

WORKBOOK = workbook()
Judge = Callable[..., SenderVerdict]


@pytest.fixture
def judge(gateway: Keyring, police_key: PgpKey, mash_key: PgpKey) -> Judge:
    """authenticate() under a police section pinning `police_key`, in the given mode."""

    def run(raw: bytes, mode: str = "pgp", **changes: object) -> SenderVerdict:
        values: dict[str, object] = {
            "fingerprints": (police_key.fingerprint,),
            "mash_fingerprint": mash_key.fingerprint,
            **changes,
        }
        return authenticate(raw, police=settings(mode, **values), keyring=gateway, passphrase=None)

    return run


def signed_mail(
    police: Keyring,
    key: PgpKey,
    *,
    from_: str | None = POLICE,
    trace: Sequence[Header] = (),
    headers: Sequence[Header] = (),
) -> bytes:
    entity = signed(content(("daily.xlsx", WORKBOOK)), keyring=police, signer=key.fingerprint)
    return mail(entity, from_=from_, trace=trace, headers=headers)


def dkim_passed(**results: str) -> list[Header]:
    """The trace of a mail that reached the MASH server from the police's server."""
    return [*received_by_mash(authentication_results(**results)), *sent_by_police()]


def spreadsheet_of(verdict: SenderVerdict) -> bytes:
    assert verdict.payload is not None
    (attachment,) = verdict.payload.iter_attachments()
    data = attachment.get_content()
    assert isinstance(data, bytes)
    return data


# -- OpenPGP -------------------------------------------------------------------------------


def test_an_allow_listed_sender_with_a_pinned_signature_is_accepted(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    verdict = judge(signed_mail(police, police_key))
    assert verdict.ok, verdict.reason
    assert (verdict.method, verdict.sender, verdict.signer) == (
        "pgp",
        POLICE,
        police_key.fingerprint,
    )
    assert police_key.fingerprint in verdict.reason
    # The payload is the signed entity itself: the signature part is not part of it.
    assert verdict.payload is not None
    assert verdict.payload.get_content_type() == "multipart/mixed"
    assert spreadsheet_of(verdict) == WORKBOOK


def test_a_signed_mail_stored_with_bare_line_feeds_still_verifies(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    # The signature covers the CRLF form (RFC 3156 §5), whatever a mail store did to it.
    raw = signed_mail(police, police_key).replace(b"\r\n", b"\n")
    assert judge(raw).ok


def test_a_mail_with_no_signature_and_no_authentication_results_is_refused(judge: Judge) -> None:
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK))), "either")
    assert not verdict.ok
    assert verdict.reason == (
        "From da-desk@police.example.org is allow-listed but the mail has no OpenPGP "
        "signature and no Authentication-Results from mx.mash.example.org"
    )
    assert verdict.payload is None


def test_a_sender_not_on_the_allow_list_is_refused_however_well_signed(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    verdict = judge(signed_mail(police, police_key, from_=STRANGER, trace=dkim_passed()), "both")
    assert not verdict.ok
    assert verdict.reason == f"From {STRANGER} is not on the police allow-list ([police] senders)"
    assert verdict.payload is None


@pytest.mark.parametrize("in_keyring", [True, False], ids=["key-held", "key-unknown"])
def test_a_mail_signed_by_an_unpinned_key_is_refused(
    in_keyring: bool,
    key_factory: KeyFactory,
    gnupg_home: Callable[[], Path],
    mash_key: PgpKey,
    gateway: Keyring,
    judge: Judge,
) -> None:
    # An impostor's key with the desk's very name and address.
    impostor = key_factory.make(POLICE, name="Police DA desk", serial=1)
    if in_keyring:
        impostor.install_public(gateway)
    raw = signed_mail(police_keyring(gnupg_home(), impostor, mash_key), impostor)
    verdict = judge(raw)
    assert not verdict.ok
    assert impostor.fingerprint in verdict.reason
    assert "not a pinned police key" in verdict.reason
    assert verdict.payload is None


def test_a_body_altered_after_signing_is_refused(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    raw = signed_mail(police, police_key)
    altered = raw.replace(BODY_TEXT.encode(), BODY_TEXT.replace("Today's", "Todays ").encode())
    assert altered != raw
    verdict = judge(altered)
    assert not verdict.ok
    assert "altered after signing" in verdict.reason


def test_a_file_slipped_in_beside_the_signed_part_is_refused(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    raw = signed_mail(police, police_key)
    extra = (
        f"--{SIGNED_BOUNDARY}\r\n"
        'Content-Type: application/octet-stream; name="extra.xlsx"\r\n'
        'Content-Disposition: attachment; filename="extra.xlsx"\r\n\r\nUEsDBA==\r\n'
    ).encode()
    closing = f"--{SIGNED_BOUNDARY}--".encode()
    verdict = judge(raw.replace(closing, extra + closing))
    assert not verdict.ok
    assert "multipart/signed must have exactly 2 parts, not 3" in verdict.reason


def test_a_bare_carriage_return_in_a_signed_mail_is_refused(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    raw = signed_mail(police, police_key).replace(b"This is an OpenPGP", b"This\ris an OpenPGP")
    verdict = judge(raw)
    assert not verdict.ok
    assert "carriage return" in verdict.reason


@pytest.mark.parametrize("kept", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_a_truncated_signed_mail_is_refused_without_an_error(
    kept: float, police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    raw = signed_mail(police, police_key, trace=dkim_passed())
    verdict = judge(raw[: int(len(raw) * kept)])
    assert not verdict.ok
    assert verdict.payload is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage",
        f"From: {POLICE}\r\nContent-Type: multipart/signed\r\n\r\nbody".encode(),
        f"From: {POLICE}\r\nContent-Type: multipart/encrypted\r\n\r\nbody".encode(),
        f'From: {POLICE}\r\nContent-Type: multipart/signed; protocol="application/'
        f'pgp-signature"; boundary="\xc3\xa9"\r\n\r\n--\xc3\xa9\r\nx\r\n--\xc3\xa9--'.encode(
            "latin-1"
        ),
        f"From: \xc3\xa9{POLICE}\r\n\r\n".encode("latin-1"),
    ],
    ids=[
        "empty",
        "binary",
        "signed-no-boundary",
        "encrypted-empty",
        "non-ascii-boundary",
        "8bit-from",
    ],
)
def test_malformed_mail_is_refused_without_an_error(raw: bytes, judge: Judge) -> None:
    verdict = judge(raw, "either")
    assert not verdict.ok
    assert verdict.payload is None


def test_a_signature_by_the_police_keys_signing_subkey_counts_as_the_pinned_key(
    police: Keyring, police_key: PgpKey, gateway: Keyring, judge: Judge
) -> None:
    subkey, public = add_signing_subkey(police, police_key)
    gateway.gpg.import_keys(public)
    entity = signed(content(("daily.xlsx", WORKBOOK)), keyring=police, signer=subkey + "!")
    verdict = judge(mail(entity))
    assert verdict.ok, verdict.reason
    assert verdict.signer == police_key.fingerprint


def test_a_mail_signed_and_encrypted_to_the_mash_key_is_accepted_and_decrypted(
    police: Keyring, police_key: PgpKey, mash_key: PgpKey, judge: Judge
) -> None:
    raw = signed_and_encrypted(
        content(("daily.xlsx", WORKBOOK)),
        keyring=police,
        signer=police_key.fingerprint,
        recipient=mash_key.fingerprint,
    )
    verdict = judge(raw)
    assert verdict.ok, verdict.reason
    assert (verdict.method, verdict.signer) == ("pgp", police_key.fingerprint)
    assert spreadsheet_of(verdict) == WORKBOOK


def test_an_encrypted_mail_signed_by_an_unpinned_key_is_refused(
    key_factory: KeyFactory,
    gnupg_home: Callable[[], Path],
    mash_key: PgpKey,
    gateway: Keyring,
    judge: Judge,
) -> None:
    impostor = key_factory.make(POLICE, name="Police DA desk", serial=1)
    impostor.install_public(gateway)
    raw = signed_and_encrypted(
        content(("daily.xlsx", WORKBOOK)),
        keyring=police_keyring(gnupg_home(), impostor, mash_key),
        signer=impostor.fingerprint,
        recipient=mash_key.fingerprint,
    )
    verdict = judge(raw)
    assert not verdict.ok
    assert f"signed by key {impostor.fingerprint}, which is not a pinned police key" in (
        verdict.reason
    )


def test_an_encrypted_mail_that_cannot_be_opened_is_refused_even_with_a_dkim_pass(
    key_factory: KeyFactory, police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    # Encrypted to a key the gateway does not hold: nothing can be read, whatever DKIM says.
    elsewhere = key_factory.make("someone@elsewhere.example")
    elsewhere.install_public(police)
    raw = signed_and_encrypted(
        content(("daily.xlsx", WORKBOOK)),
        keyring=police,
        signer=police_key.fingerprint,
        recipient=elsewhere.fingerprint,
    )
    verdict = judge(with_trace(raw, dkim_passed()), "either")
    assert not verdict.ok
    assert "cannot be opened with the MASH key" in verdict.reason
    assert verdict.payload is None


def test_an_encrypted_mail_is_refused_when_no_mash_key_is_configured(
    police: Keyring, police_key: PgpKey, mash_key: PgpKey, judge: Judge
) -> None:
    raw = signed_and_encrypted(
        content(("daily.xlsx", WORKBOOK)),
        keyring=police,
        signer=police_key.fingerprint,
        recipient=mash_key.fingerprint,
    )
    verdict = judge(raw, mash_fingerprint=None)
    assert not verdict.ok
    assert "[police] mash_fingerprint" in verdict.reason


# -- From and Sender -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ('"da-desk@police.example.org" <evil@attacker.example>', "looks like an address"),
        (
            "=?utf-8?b?ZGEtZGVza0Bwb2xpY2UuZXhhbXBsZS5vcmc=?= <evil@attacker.example>",
            "looks like an address",
        ),
        ("da-desk@police.example.org, evil@attacker.example", "exactly one address"),
        ("Police: da-desk@police.example.org;", "exactly one address"),
        ("Police:;", "exactly one address"),
        ('"da-desk@police.example.org"@attacker.example', "not a plain mailbox address"),
        ("=?utf-8?q?da-desk?=@police.example.org", "malformed"),
        ("da-desk@[192.0.2.10]", "not a plain mailbox address"),
        ("<@attacker.example:da-desk@police.example.org>", "malformed"),
        ("da-desk@police.example.org <evil@attacker.example>", "malformed"),
        ("<da-desk@police.example.org>@attacker.example", "malformed"),
    ],
    ids=[
        "display-name-spoof",
        "encoded-display-name-spoof",
        "two-addresses",
        "group",
        "empty-group",
        "quoted-local-part",
        "encoded-local-part",
        "domain-literal",
        "source-route",
        "trailing-address",
        "trailing-domain",
    ],
)
def test_a_from_header_that_is_not_one_plain_address_is_refused(
    header: str, why: str, police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    # Signed by the pinned key and passing DKIM: only the From header is wrong.
    verdict = judge(signed_mail(police, police_key, from_=header, trace=dkim_passed()), "either")
    assert not verdict.ok
    assert why in verdict.reason
    assert verdict.payload is None


def test_the_address_as_its_own_display_name_is_accepted(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    # Exchange writes a bare external address this way.
    verdict = judge(signed_mail(police, police_key, from_=f'"{POLICE}" <{POLICE.upper()}>'))
    assert verdict.ok, verdict.reason


def test_two_from_headers_are_refused(police: Keyring, police_key: PgpKey, judge: Judge) -> None:
    verdict = judge(signed_mail(police, police_key, headers=[("From", POLICE)]))
    assert not verdict.ok
    assert verdict.reason == "the mail has 2 From headers"


def test_a_mail_without_from_is_refused(police: Keyring, police_key: PgpKey, judge: Judge) -> None:
    verdict = judge(signed_mail(police, police_key, from_=None))
    assert (verdict.ok, verdict.reason) == (False, "the mail has no From header")


def test_a_mail_sent_on_the_desks_behalf_by_a_stranger_is_refused(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    verdict = judge(signed_mail(police, police_key, headers=[("Sender", STRANGER)]))
    assert not verdict.ok
    assert f"sent on its behalf by {STRANGER}" in verdict.reason


def test_a_mail_sent_on_the_desks_behalf_by_an_allow_listed_colleague_is_accepted(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    raw = signed_mail(police, police_key, headers=[("Sender", COLLEAGUE)])
    verdict = judge(raw, senders=(POLICE, COLLEAGUE))
    assert verdict.ok, verdict.reason
    assert verdict.sender == POLICE


def test_a_whole_police_domain_can_be_allow_listed(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    verdict = judge(signed_mail(police, police_key), senders=("@Police.Example.org",))
    assert verdict.ok, verdict.reason


# -- DKIM and DMARC in Authentication-Results -----------------------------------------------


def test_dkim_and_dmarc_pass_from_the_trusted_server_is_accepted_in_dkim_mode(
    judge: Judge,
) -> None:
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=dkim_passed()), "dkim")
    assert verdict.ok, verdict.reason
    assert (verdict.method, verdict.signer) == ("dkim", None)
    assert verdict.reason == (
        f"From {POLICE}: DKIM and DMARC pass for {POLICE_DOMAIN} "
        f"in the Authentication-Results from {TRUSTED}"
    )
    assert spreadsheet_of(verdict) == WORKBOOK


def test_the_same_results_from_another_authserv_id_are_refused(judge: Judge) -> None:
    trace = dkim_passed(authserv_id="mx.elsewhere.example")
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert f"is from mx.elsewhere.example, not from {TRUSTED}" in verdict.reason


def test_forged_results_below_the_trusted_servers_own_are_ignored(judge: Judge) -> None:
    forged = ("Authentication-Results", authentication_results())
    trace = [
        *received_by_mash(authentication_results(dkim="none", dmarc="fail")),
        *sent_by_police(forged=[forged]),
    ]
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "no DKIM pass for police.example.org (dkim=none" in verdict.reason


def test_results_claiming_the_trusted_id_below_another_servers_are_ignored(
    judge: Judge,
) -> None:
    forged = ("Authentication-Results", authentication_results())
    trace = [
        *received_by_mash(authentication_results(authserv_id="filter.mash.example.org")),
        *sent_by_police(forged=[forged]),
    ]
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "topmost Authentication-Results is from filter.mash.example.org" in verdict.reason


def test_a_dkim_pass_for_another_domain_is_refused(judge: Judge) -> None:
    trace = dkim_passed(signing_domain="bulk-mailer.example")
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "no DKIM pass for police.example.org (dkim=pass header.d=bulk-mailer.example)" in (
        verdict.reason
    )


def test_a_dkim_pass_by_a_parent_domain_is_aligned(judge: Judge) -> None:
    force = "da-desk@cambs.police.example.org"
    trace = dkim_passed(signing_domain=POLICE_DOMAIN, header_from="cambs.police.example.org")
    raw = mail(content(("daily.xlsx", WORKBOOK)), from_=force, trace=trace)
    verdict = judge(raw, "dkim", senders=("@cambs.police.example.org",))
    assert verdict.ok, verdict.reason


def test_a_dkim_pass_reported_by_header_i_alone_is_read(judge: Judge) -> None:
    # Gmail's form: no header.d, the signing identity in header.i.
    results = (
        f"{TRUSTED}; dkim=pass header.i=@{POLICE_DOMAIN} header.s=sel header.b=R/ATP5Q2;"
        f" dmarc=pass (p=NONE sp=NONE dis=NONE) header.from={POLICE_DOMAIN}"
    )
    trace = [*received_by_mash(results), *sent_by_police()]
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert verdict.ok, verdict.reason


def test_dkim_and_dmarc_in_two_headers_are_refused_naming_the_missing_result(
    judge: Judge,
) -> None:
    # OpenDKIM and OpenDMARC each prepend their own header; only the topmost is read.
    trace = [
        ("Authentication-Results", f"{TRUSTED}; dmarc=pass header.from={POLICE_DOMAIN}"),
        *received_by_mash(f"{TRUSTED}; dkim=pass header.d={POLICE_DOMAIN}"),
        *sent_by_police(),
    ]
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "no DKIM pass for police.example.org (no dkim result)" in verdict.reason


def test_a_top_level_domain_never_aligns(judge: Judge) -> None:
    trace = dkim_passed(signing_domain="org")
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok


def test_dmarc_failure_is_refused_even_with_a_dkim_pass(judge: Judge) -> None:
    trace = dkim_passed(dmarc="fail")
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "no DMARC pass for police.example.org (dmarc=fail" in verdict.reason


def test_dmarc_for_another_from_domain_is_refused(judge: Judge) -> None:
    trace = dkim_passed(header_from="attacker.example")
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok


@pytest.mark.parametrize(("length", "ok"), [("l=120; ", False), ("", True)])
def test_a_dkim_signature_limited_to_part_of_the_body_does_not_count(
    length: str, ok: bool, judge: Judge
) -> None:
    signature = (
        f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={POLICE_DOMAIN}; s=sel2026;\r\n"
        f"\t{length}h=from:to:subject:date; bh=Zm9vYmFy; b=YmFyYmF6"
    )
    raw = mail(
        content(("daily.xlsx", WORKBOOK)),
        trace=dkim_passed(),
        headers=[("DKIM-Signature", signature)],
    )
    verdict = judge(raw, "dkim")
    assert verdict.ok is ok, verdict.reason
    if not ok:
        assert "covers only the first 120 bytes" in verdict.reason


# -- The authentication setting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "pgp", "dkim", "method"),
    [
        ("pgp", True, False, "pgp"),
        ("pgp", False, True, None),
        ("dkim", False, True, "dkim"),
        ("dkim", True, False, None),
        ("either", True, False, "pgp"),
        ("either", False, True, "dkim"),
        ("either", True, True, "pgp+dkim"),
        ("both", True, True, "pgp+dkim"),
        ("both", True, False, None),
        ("both", False, True, None),
    ],
)
def test_the_authentication_setting_decides_which_proof_is_needed(
    mode: str,
    pgp: bool,
    dkim: bool,
    method: str | None,
    police: Keyring,
    police_key: PgpKey,
    judge: Judge,
) -> None:
    files = content(("daily.xlsx", WORKBOOK))
    entity = signed(files, keyring=police, signer=police_key.fingerprint) if pgp else files
    verdict = judge(mail(entity, trace=dkim_passed() if dkim else ()), mode)
    assert verdict.method == method
    assert verdict.ok is (method is not None), verdict.reason
    if method is None:
        assert verdict.payload is None
        assert verdict.reason.startswith(f"From {POLICE} is allow-listed but ")
    else:
        assert spreadsheet_of(verdict) == WORKBOOK


def test_both_mode_names_the_missing_proof(
    police: Keyring, police_key: PgpKey, judge: Judge
) -> None:
    verdict = judge(signed_mail(police, police_key), "both")
    assert verdict.reason == (
        f"From {POLICE} is allow-listed but the mail has no Authentication-Results from {TRUSTED}"
    )


# -- Reading Authentication-Results (RFC 8601) ----------------------------------------------


def test_authentication_results_are_read_through_comments_quotes_and_folding() -> None:
    parsed = parse_authentication_results(authentication_results())
    assert parsed.authserv_id == TRUSTED
    assert [(r.method, r.result) for r in parsed.results] == [
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("spf", "pass"),
    ]
    dkim, dmarc, spf = parsed.results
    assert (dkim.get("header.d"), dkim.get("header.b")) == (POLICE_DOMAIN, "Zm9v/ba+")
    assert dmarc.get("header.from") == POLICE_DOMAIN
    assert spf.get("smtp.mailfrom") == POLICE


def test_authentication_results_with_a_version_reason_and_spaced_properties() -> None:
    parsed = parse_authentication_results(
        '"mx.mash.example.org" 1 (ours; trusted); DKIM/1 = Fail '
        'reason="bad (sig)" header.d = police.example.org;dmarc=pass header.from=Police.Example.org'
    )
    assert parsed.authserv_id == TRUSTED
    dkim, dmarc = parsed.results
    assert (dkim.method, dkim.result, dkim.properties) == (
        "dkim",
        "fail",
        (("header.d", POLICE_DOMAIN),),
    )
    assert dmarc.get("header.from") == "Police.Example.org"


def test_authentication_results_of_none() -> None:
    assert parse_authentication_results("mx.mash.example.org; none").results == ()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "mx.mash.example.org",
        "mx.mash.example.org 2; none",
        "mx.mash.example.org; dkim",
        "mx.mash.example.org; dkim=pass header.d",
        "mx.mash.example.org; dkim=pass header=police.example.org",
        "mx.mash.example.org (not closed; dkim=pass",
        'mx.mash.example.org; dkim=pass header.b="not closed',
        "mx.mash.example.org; none; dkim=pass",
    ],
)
def test_malformed_authentication_results_are_refused(value: str) -> None:
    with pytest.raises(AuthenticationResultsError):
        parse_authentication_results(value)


def test_an_unreadable_topmost_authentication_results_is_refused(judge: Judge) -> None:
    trace = [*received_by_mash(f"{TRUSTED}; dkim=pass header.d"), *sent_by_police()]
    verdict = judge(mail(content(("daily.xlsx", WORKBOOK)), trace=trace), "dkim")
    assert not verdict.ok
    assert "topmost Authentication-Results cannot be read" in verdict.reason
