"""Classifying the Navigator's mail: the golden corpus (tests/mail_corpus.py), and hostile
input that must never stop the service."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_corpus import (
    BOUNCE_LOCAL_PART,
    CASES,
    DOMAIN,
    DSL,
    LOOP_HEADER,
    MESSAGE_ID,
    OTHER_REFERENCE,
    REFERENCE,
    SUBJECT,
    Case,
    crlf,
)

from gateway.inbound import HEURISTICS_LIMIT, UNREADABLE, Classified, Kind, classify
from gateway.replies import Encryption


def classified(raw: bytes) -> Classified:
    return classify(
        raw, own_domain=DOMAIN, bounce_local_part=BOUNCE_LOCAL_PART, loop_header=LOOP_HEADER
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_message_is_classified_as_expected(case: Case) -> None:
    result = classified(case.raw)
    assert (
        result.kind,
        result.message_ids,
        result.token,
        result.references,
        result.final_recipient,
        result.status,
        result.encryption,
    ) == (
        case.kind,
        case.message_ids,
        case.token,
        case.references,
        case.final_recipient,
        case.status,
        case.encryption,
    ), result.summary


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_summary_names_no_address_and_no_subject(case: Case) -> None:
    summary = classified(case.raw).summary
    assert "@" not in summary
    assert SUBJECT not in summary
    assert not summary.startswith(UNREADABLE)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_verdict_to_act_on_always_names_a_message_of_ours(case: Case) -> None:
    result = classified(case.raw)
    if result.kind not in (Kind.UNMATCHED, Kind.OWN_LOOP):
        assert result.message_ids or result.token or result.references


def test_deleted_without_being_read_is_never_a_read() -> None:
    deleted = [case for case in CASES if case.kind is Kind.DELETED_UNREAD]
    assert deleted
    for case in deleted:
        assert classified(case.raw).kind is not Kind.READ_RECEIPT


def test_only_mail_a_person_wrote_may_be_answered() -> None:
    written_by_people = {"foreign_thread", "encrypted_unmatched"}  # UNMATCHED, yet not automatic
    for case in CASES:
        result = classified(case.raw)
        by_a_person = result.kind is Kind.REPLY or case.name in written_by_people
        assert result.automatic is not by_a_person, case.name


def test_the_summary_of_a_bounce_gives_its_status_and_how_it_was_matched() -> None:
    (case,) = [case for case in CASES if case.name == "postfix_dsn_user_unknown"]
    result = classified(case.raw)
    assert result.summary == (
        f"permanent delivery failure 5.1.1 (DSN): matched by Message-ID, return path,"
        f" reference {REFERENCE}"
    )
    assert "User unknown" in result.diagnostic


def test_the_reference_is_the_one_code_found_or_none_when_ambiguous() -> None:
    by_name = {case.name: classified(case.raw) for case in CASES}
    assert by_name["reply_by_subject_only"].reference == REFERENCE
    assert by_name["reply_naming_two_references"].references == (REFERENCE, OTHER_REFERENCE)
    assert by_name["reply_naming_two_references"].reference is None
    assert by_name["pgp_mime_reply"].reference is None


def test_our_own_mail_is_recognised_by_the_loop_header_the_caller_names() -> None:
    (digest,) = [case for case in CASES if case.name == "own_digest"]
    other = classify(
        digest.raw, own_domain=DOMAIN, bounce_local_part=BOUNCE_LOCAL_PART, loop_header="X-Other"
    )
    assert other.kind is not Kind.OWN_LOOP


def test_a_bounce_naming_two_different_return_paths_names_neither() -> None:
    (case,) = [case for case in CASES if case.name == "postfix_dsn_user_unknown"]
    forged = case.raw.replace(
        b"X-Original-To: ", b"X-Original-To: bounces+0123456789abcdef01234567@mash.example.org, ", 1
    )
    result = classified(forged)
    assert result.kind is Kind.BOUNCE_PERMANENT
    assert result.token is None
    assert result.message_ids == (MESSAGE_ID,)
    assert "conflict" in result.summary


# --------------------------------------------------------------------------------------
# Hostile and malformed input (DESIGN.md invariant 6)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_truncated_message_is_still_classified(case: Case) -> None:
    for cut in range(0, len(case.raw), max(1, len(case.raw) // 40)):
        result = classified(case.raw[:cut])
        assert not result.summary.startswith(UNREADABLE), (cut, result.summary)
        _assert_clean(result)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_are_unmatched_or_classified_never_raised(raw: bytes) -> None:
    result = classified(raw)
    assert not result.summary.startswith(UNREADABLE), result.summary
    _assert_clean(result)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(CASES),
    st.lists(st.tuples(st.integers(min_value=0), st.binary(min_size=1, max_size=8)), max_size=6),
)
def test_corrupted_corpus_messages_never_raise(case: Case, edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray(case.raw)
    for position, garbage in edits:
        at = position % (len(raw) + 1)
        raw[at : at + len(garbage)] = garbage
    result = classified(bytes(raw))
    assert not result.summary.startswith(UNREADABLE), result.summary
    _assert_clean(result)


def _assert_clean(result: Classified) -> None:
    # Everything returned can be stored and logged as UTF-8.
    for text in (
        result.summary,
        result.diagnostic,
        result.final_recipient or "",
        *result.message_ids,
        *result.references,
    ):
        text.encode("utf-8")
    assert result.token is None or re.fullmatch(r"[0-9a-f]{24}", result.token)


def test_an_empty_message_is_unmatched() -> None:
    assert classified(b"").kind is Kind.UNMATCHED


def test_a_message_with_a_broken_multipart_is_unmatched_and_says_so() -> None:
    raw = crlf("""
        From: someone@example.net
        Subject: hello
        Content-Type: multipart/mixed; boundary="never-used"

        no boundary ever appears
        """)
    result = classified(raw)
    assert result.kind is Kind.UNMATCHED
    assert "malformed MIME" in result.summary


def test_thousands_of_nested_parts_are_unmatched_not_a_crash() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level, level + 1)
        for level in range(3000)
    )
    result = classified(raw)
    assert result.kind is Kind.UNMATCHED
    assert "nested too deeply" in result.summary


def test_hundreds_of_nested_parts_within_the_parser_s_reach_are_read_safely() -> None:
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level, level + 1)
        for level in range(300)
    )
    raw = (
        f"From: {DSL}\r\nSubject: Re: {SUBJECT}\r\n".encode()
        + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
        + opening
        + b"--b300\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    )
    result = classified(raw)
    assert result.kind is Kind.REPLY
    assert result.references == (REFERENCE,)


def test_undecodable_header_bytes_come_back_as_clean_text() -> None:
    raw = (
        b"From: \xff\xfe <x@example.net>\r\n"
        b"Subject: =?utf-8?B?not base64!?= " + REFERENCE.encode() + b" \xe9\r\n"
        b"Content-Type: text/plain; charset=unknown-charset\r\n\r\n\xff\xfe body\r\n"
    )
    result = classified(raw)
    assert result.kind is Kind.REPLY
    assert result.references == (REFERENCE,)
    _assert_clean(result)


def test_a_report_part_of_garbage_is_not_a_receipt() -> None:
    raw = crlf(f"""
        From: {DSL}
        Subject: Read: {SUBJECT}
        Content-Type: multipart/report; report-type=disposition-notification; boundary="g"

        --g
        Content-Type: message/disposition-notification

        \x00\x01 garbage :: ;; <<>>
        --g--
        """)
    result = classified(raw)
    # It names our reference but says nothing readable: recorded as nothing read.
    assert result.kind is Kind.RECEIPT_OTHER
    assert "missing" in result.summary


def test_an_encrypted_reply_is_recognised_without_being_decrypted() -> None:
    by_name = {case.name: classified(case.raw) for case in CASES}
    assert by_name["pgp_mime_reply"].encryption is Encryption.PGP_MIME
    assert by_name["outlook_mangled_reply"].encryption is Encryption.OUTLOOK_MANGLED
    # A bounce returning our own sealed notification is not an encrypted message to open.
    assert by_name["exchange_online_ndr"].encryption is Encryption.NONE


def test_a_non_standard_bounce_too_large_for_the_heuristics_goes_to_the_navigator() -> None:
    (case,) = [case for case in CASES if case.name == "exim_bounce"]
    padded = case.raw + (b"x" * 80 + b"\r\n") * (HEURISTICS_LIMIT // 82 + 1)
    result = classified(padded)
    assert result.kind is Kind.UNMATCHED
    assert result.token == case.token
    assert "neither RFC 3464 nor the heuristics" in result.summary


def test_a_nul_in_a_charset_name_does_not_trip_the_classification() -> None:
    # Found by the corrupted-corpus property test: the email package's get_payload() decodes
    # a leaf with its declared charset, and "us-ascii\x00" made it raise ValueError.
    raw = (
        b"From: dsl@school.example.org\r\nSubject: Automatic reply: Secure notification\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b'--b\r\nContent-Type: text/plain; charset="us-\x00ascii"\r\n\r\nAway\x80.\r\n--b--\r\n'
    )
    result = classified(raw)
    assert not result.summary.startswith(UNREADABLE), result.summary


def test_a_non_ascii_charset_in_an_encoded_word_does_not_trip_the_classification() -> None:
    # Found by the corrupted-corpus property test: make_header() raised CharsetError.
    raw = (
        b"From: dsl@school.example.org\r\nTo: navigator@mash.example.org\r\n"
        b"Subject: =?\x80tf-8?Q?R=C3=A9ponse_automatique?=\r\n\r\nAbsente.\r\n"
    )
    result = classified(raw)
    assert not result.summary.startswith(UNREADABLE), result.summary
