"""A golden corpus of mail arriving in the Navigator's mailbox, built by code.

Each case is a whole message as IMAP hands it over (CRLF line ends), written the way the
client or server it is named after writes it: read receipts from Outlook/Exchange,
Thunderbird and Gmail, free-text receipts, RFC 3464 reports from Postfix, Exchange Online and
Gmail, non-standard bounces from Exim, qmail and old Exchange, automatic replies, replies
(plain, PGP/MIME, Outlook-mangled and inline-armored) and unrelated mail. Every case says
what `inbound.classify` must make of it. All people, schools and addresses are invented.

The identifiers are the gateway's own (`outbox.message_id_for`, `return_path_for`,
`notifications.reference_code`), so a case breaks if their format changes under it.
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import textwrap
from dataclasses import dataclass

from gateway.inbound import Kind
from gateway.notifications import reference_code
from gateway.outbox import message_id_for, return_path_for, token_from_return_path
from gateway.pgpmime import encrypted_part
from gateway.render import subject_for
from gateway.replies import Encryption

DOMAIN = "mash.example.org"
BOUNCE_LOCAL_PART = "bounces"
LOOP_HEADER = "X-Encompass-Loop"
NAVIGATOR = "navigator@mash.example.org"

DSL = "dsl@fenland-primary.example.org"
DEPUTY = "deputy.dsl@fenland-primary.example.org"
UNHYPHENATED_DSL = "dsl@stives.example.org"
REFERENCE = reference_code("CC/20260301/0412", 110231)
OTHER_REFERENCE = reference_code("CC/20260301/0977", 136602)
SUBJECT = subject_for(REFERENCE)
MESSAGE_ID = message_id_for(REFERENCE, DSL, DOMAIN)
DEPUTY_MESSAGE_ID = message_id_for(REFERENCE, DEPUTY, DOMAIN)
OTHER_MESSAGE_ID = message_id_for(OTHER_REFERENCE, DSL, DOMAIN)
RETURN_PATH = return_path_for(MESSAGE_ID, BOUNCE_LOCAL_PART, DOMAIN)
_token = token_from_return_path(RETURN_PATH, BOUNCE_LOCAL_PART, DOMAIN)
assert _token is not None
TOKEN: str = _token

# A message the Navigator sent herself, not through the gateway.
PERSONAL_MESSAGE_ID = "<CAF3x+Pj0fq6=nR@mail.gmail.com>"


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    kind: Kind
    message_ids: tuple[str, ...] = ()
    token: str | None = None
    references: tuple[str, ...] = ()
    final_recipient: str | None = None
    status: str | None = None
    encryption: Encryption = Encryption.NONE


def crlf(text: str) -> bytes:
    """`text` (written with \\n, indented in the source) as message bytes with CRLF ends."""
    body = textwrap.dedent(text).lstrip("\n")
    return body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def armored(seed: str, size: int = 600) -> str:
    """An armored PGP MESSAGE block of deterministic bytes: the shape, not real ciphertext
    (the corpus is about recognising, the repair tests use real GnuPG)."""
    data = b"".join(
        hashlib.sha256(f"{seed}{counter}".encode()).digest() for counter in range(size // 32)
    )
    text = base64.b64encode(data).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    checksum = base64.b64encode(hashlib.sha256(data).digest()[:3]).decode("ascii")
    return "\n".join(
        ["-----BEGIN PGP MESSAGE-----", "", *lines, f"={checksum}", "-----END PGP MESSAGE-----"]
    )


VERSION_PART = "Version: 1\n"


def b64_lines(text: str) -> str:
    encoded = base64.b64encode(text.replace("\n", "\r\n").encode("ascii")).decode("ascii")
    return "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


# The headers of a notification as the gateway sends it (pgpmime.seal), as bounces return them.
ORIGINAL_HEADERS = f"""\
Return-Path: <{RETURN_PATH}>
Received: from gateway.mash.example.org (gateway.mash.example.org [192.0.2.10])
\tby mail.mash.example.org (Postfix) with ESMTPS id 4R7kQm2Zb1z9sV
\tfor <{DSL}>; Mon,  2 Mar 2026 09:00:02 +0000 (GMT)
From: Education Navigator <{NAVIGATOR}>
To: {DSL}
Subject: {SUBJECT}
Date: Mon, 02 Mar 2026 09:00:00 +0000
Message-ID: {MESSAGE_ID}
Disposition-Notification-To: {NAVIGATOR}
MIME-Version: 1.0
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
 boundary="encompass.pgpmime_boundary"
"""

ORIGINAL_MESSAGE = (
    ORIGINAL_HEADERS
    + f"""
This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
--encompass.pgpmime_boundary
Content-Type: application/pgp-encrypted
Content-Description: PGP/MIME version identification

Version: 1

--encompass.pgpmime_boundary
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Description: OpenPGP encrypted message
Content-Disposition: inline; filename="encrypted.asc"

{armored("notification")}

--encompass.pgpmime_boundary--
"""
)


def _indented(text: str, prefix: str = "            ") -> str:
    """`text` indented to sit inside the dedented templates below."""
    return textwrap.indent(text, prefix).lstrip()


# ======================================================================================
# Read receipts: RFC 8098 reports


def outlook_mdn(disposition: str, subject_prefix: str, said: str) -> bytes:
    """Exchange Online's MDN for an external sender: the human text, then the report; no
    returned headers."""
    return crlf(f"""
        Received: from EUR03-AM7-obe.outbound.protection.outlook.com
        \t(mail-am7eur03on2100.outbound.protection.outlook.com [40.107.105.100])
        \tby mail.mash.example.org (Postfix) with ESMTPS id 4R7nB21Hk8z9sW
        \tfor <{NAVIGATOR}>; Mon,  2 Mar 2026 09:14:07 +0000 (GMT)
        From: Jane Doe <{DSL}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: {subject_prefix}: {SUBJECT}
        Thread-Topic: {SUBJECT}
        Thread-Index: AQHbjG2yQ4Zx0K1cR0S0m5c2n1cZ8w==
        Date: Mon, 2 Mar 2026 09:14:05 +0000
        Message-ID:
         <AM0PR01MB5345D1C0E8F0A2B9C7F1E3D4A1B2@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        Content-Language: en-GB
        X-MS-Has-Attach:
        X-MS-TNEF-Correlator:
        X-Auto-Response-Suppress: All
        Content-Type: multipart/report; report-type=disposition-notification;
        \tboundary="_002_AM0PR01MB5345D1C0E8F0A2B9C7F1E3D4A1B2_"
        MIME-Version: 1.0

        --_002_AM0PR01MB5345D1C0E8F0A2B9C7F1E3D4A1B2_
        Content-Type: text/plain; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        Your message

        To: Jane Doe
        Subject: {SUBJECT}
        Sent: Monday, March 2, 2026 9:00:00 AM (UTC+00:00) Dublin, Edinburgh, Lisbon, Lo=
        ndon

        {said} on Monday, March 2, 2026 9:14:05 AM (UTC+00:00) Dublin, Edinburgh, Lisbon=
        , London.

        --_002_AM0PR01MB5345D1C0E8F0A2B9C7F1E3D4A1B2_
        Content-Type: message/disposition-notification

        Final-Recipient: RFC822; {DSL}
        Original-Message-ID: {MESSAGE_ID}
        Disposition: automatic-action/MDN-sent-automatically; {disposition}

        --_002_AM0PR01MB5345D1C0E8F0A2B9C7F1E3D4A1B2_--
        """)


def thunderbird_mdn() -> bytes:
    """Thunderbird's "Return Receipt (displayed)", with the original's headers returned."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: {NAVIGATOR}
        Subject: Return Receipt (displayed) - {SUBJECT}
        Message-ID: <9b1f6a0e-2c4d-4e3f-8a5b-1c7d9e0f2a3b@fenland-primary.example.org>
        Date: Mon, 2 Mar 2026 09:20:31 +0000
        MIME-Version: 1.0
        User-Agent: Mozilla Thunderbird
        Content-Type: multipart/report; report-type=disposition-notification;
         boundary="------------Pq2nTcS0fCmDN1ZVdzqzVm3y"

        This is a multi-part message in MIME format.
        --------------Pq2nTcS0fCmDN1ZVdzqzVm3y
        Content-Type: text/plain; charset=UTF-8; format=flowed
        Content-Transfer-Encoding: 7bit

        This is a Return Receipt for the mail that you sent to {DSL}.

        Note: This Return Receipt only acknowledges that the message was displayed
        on the recipient's computer. There is no guarantee that the recipient has
        read or understood the message contents.

        --------------Pq2nTcS0fCmDN1ZVdzqzVm3y
        Content-Type: message/disposition-notification; name="MDNPart2.txt"
        Content-Disposition: inline
        Content-Transfer-Encoding: 7bit

        Reporting-UA: fenland-primary.example.org; Mozilla Thunderbird
        Final-Recipient: rfc822;{DSL}
        Original-Message-ID: {MESSAGE_ID}
        Disposition: manual-action/MDN-sent-manually; displayed

        --------------Pq2nTcS0fCmDN1ZVdzqzVm3y
        Content-Type: text/rfc822-headers; name="MDNPart3.txt"
        Content-Transfer-Encoding: 7bit
        Content-Disposition: inline

        {_indented(ORIGINAL_HEADERS, "        ")}
        --------------Pq2nTcS0fCmDN1ZVdzqzVm3y--
        """)


def gmail_mdn() -> bytes:
    """Google Workspace's read receipt: report-type in the first line, no returned headers,
    the original's id only in Original-Message-ID."""
    return crlf(f"""
        MIME-Version: 1.0
        Date: Mon, 2 Mar 2026 10:02:44 +0000
        From: Jane Doe <{DSL}>
        To: {NAVIGATOR}
        Subject: Read: {SUBJECT}
        Message-ID: <CAB7nN=0Jm1gQ0cX2pY3r4s5t6u7v8w9x0yZ@mail.gmail.com>
        Content-Type: multipart/report; report-type=disposition-notification;
         boundary="000000000000a1b2c3d4e5f60718"

        --000000000000a1b2c3d4e5f60718
        Content-Type: text/plain; charset="UTF-8"

        Your message

        To: {DSL}
        Subject: {SUBJECT}
        Sent: 2 Mar 2026 09:00:00 +0000

        was read on 2 Mar 2026 10:02:44 +0000
        --000000000000a1b2c3d4e5f60718
        Content-Type: message/disposition-notification

        Reporting-UA: Gmail; Gmail
        Final-Recipient: rfc822;{DSL}
        Original-Message-ID: {MESSAGE_ID}
        Disposition: manual-action/MDN-sent-manually; displayed

        --000000000000a1b2c3d4e5f60718--
        """)


def mdn_without_original_message_id() -> bytes:
    """An MDN that leaves Original-Message-ID out (optional in RFC 8098 §3.2.5) but returns
    the original's headers as message/rfc822."""
    return crlf(f"""
        From: {DEPUTY}
        To: {NAVIGATOR}
        Subject: Read: {SUBJECT}
        Date: Mon, 2 Mar 2026 09:31:10 +0000
        Message-ID: <0f1e2d3c4b5a@fenland-primary.example.org>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=disposition-notification; boundary="mdn-b"

        --mdn-b
        Content-Type: text/plain

        The message was displayed.
        --mdn-b
        Content-Type: message/disposition-notification

        Reporting-UA: fenland-primary.example.org; Mail 16.0
        Final-Recipient: rfc822; {DEPUTY}
        Disposition: manual-action/MDN-sent-manually; displayed
        --mdn-b
        Content-Type: message/rfc822

        From: Education Navigator <{NAVIGATOR}>
        To: {DEPUTY}
        Subject: {SUBJECT}
        Message-ID: {DEPUTY_MESSAGE_ID}
        Content-Type: text/plain

        (body not returned)
        --mdn-b--
        """)


def mdn_threaded_only() -> bytes:
    """An MDN with neither Original-Message-ID nor returned headers, whose only pointer is
    In-Reply-To, and whose report-type parameter is missing."""
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: Receipt
        In-Reply-To: {MESSAGE_ID}
        Date: Mon, 2 Mar 2026 09:44:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; boundary="r"

        --r
        Content-Type: text/plain

        Displayed.
        --r
        Content-Type: message/disposition-notification

        Final-Recipient: rfc822; {DSL}
        Disposition: manual-action/MDN-sent-manually; displayed
        --r--
        """)


def mdn_dispatched() -> bytes:
    """A mail system that forwards the message on and reports "dispatched": not a read."""
    return crlf(f"""
        From: postmaster@fenland-primary.example.org
        To: {NAVIGATOR}
        Subject: Disposition notification
        Date: Mon, 2 Mar 2026 09:05:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=disposition-notification; boundary="d"

        --d
        Content-Type: text/plain

        The message was forwarded without being displayed.
        --d
        Content-Type: message/disposition-notification

        Reporting-UA: fenland-primary.example.org; Sieve
        Final-Recipient: rfc822; {DSL}
        Original-Message-ID: {MESSAGE_ID}
        Disposition: automatic-action/MDN-sent-automatically; dispatched
        --d--
        """)


def mdn_transfer_encoded() -> bytes:
    """An MDN whose report part is base64-encoded, which RFC 6522 forbids and some
    gateways do anyway."""
    report = (
        f"Reporting-UA: fenland-primary.example.org; Outlook\n"
        f"Final-Recipient: rfc822;{DSL}\n"
        f"Original-Message-ID: {MESSAGE_ID}\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n"
    )
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: Read: {SUBJECT}
        Date: Mon, 2 Mar 2026 09:50:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=disposition-notification; boundary="e"

        --e
        Content-Type: text/plain

        Read.
        --e
        Content-Type: message/disposition-notification
        Content-Transfer-Encoding: base64

        {_indented(b64_lines(report), "        ")}
        --e--
        """)


def mdn_for_personal_mail() -> bytes:
    """A receipt for a message the Navigator sent from her own mail client."""
    return crlf(f"""
        From: Sam Rivers <sam.rivers@council.example.org>
        To: {NAVIGATOR}
        Subject: Read: Team rota for March
        Date: Mon, 2 Mar 2026 11:00:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=disposition-notification; boundary="p"

        --p
        Content-Type: text/plain

        Your message was read.
        --p
        Content-Type: message/disposition-notification

        Final-Recipient: rfc822; sam.rivers@council.example.org
        Original-Message-ID: {PERSONAL_MESSAGE_ID}
        Disposition: manual-action/MDN-sent-manually; displayed
        --p--
        """)


# ======================================================================================
# Read receipts: free text


def outlook_free_text_receipt(prefix: str, said: str, *, threaded: bool) -> bytes:
    """Outlook's receipt as a plain message (older Outlook, or a server that rewrites the
    report), matched by the reference in its subject or by In-Reply-To."""
    in_reply_to = f"In-Reply-To: {MESSAGE_ID}\n        " if threaded else ""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: {prefix}: {SUBJECT}
        {in_reply_to}Date: Mon, 2 Mar 2026 09:14:05 +0000
        Message-ID: <000a01dc8b5e$5f1c2e30$1d548a90$@fenland-primary.example.org>
        MIME-Version: 1.0
        Content-Type: text/plain; charset="iso-8859-1"
        Content-Transfer-Encoding: 7bit
        X-Mailer: Microsoft Outlook 16.0

        Your message

          To:      Jane Doe
          Subject: {SUBJECT}
          Sent:    02/03/2026 09:00

        {said} on 02/03/2026 09:14.
        """)


def html_free_text_receipt() -> bytes:
    """A webmail receipt sent as HTML only."""
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: Read receipt: {SUBJECT}
        In-Reply-To: {MESSAGE_ID}
        Date: Mon, 2 Mar 2026 09:33:00 +0000
        MIME-Version: 1.0
        Content-Type: text/html; charset="utf-8"
        Content-Transfer-Encoding: quoted-printable

        <html><body><p>Your message to {DSL} with the subject &quot;{SUBJECT}&quot;=
        </p><p>was&nbsp;read on Monday 2 March 2026 at 09:33.</p></body></html>
        """)


def person_titling_reply_read() -> bytes:
    """A person's reply whose subject happens to start "Read:": it has no receipt wording,
    so it is a reply and reaches the Navigator."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: {NAVIGATOR}
        Subject: Read: {SUBJECT} - question
        In-Reply-To: {MESSAGE_ID}
        References: {MESSAGE_ID}
        Date: Mon, 2 Mar 2026 10:10:00 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset="utf-8"

        Could you ring me about this one? We have a new family liaison officer.
        """)


# ======================================================================================
# Bounces: RFC 3464 reports


def postfix_dsn(action: str, status: str, diagnostic: str, *, subject: str) -> bytes:
    """Postfix's bounce (or delay warning), delivered to the per-message return path."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        X-Original-To: {RETURN_PATH}
        Received: by mail.mash.example.org (Postfix)
        \tid 4R7nC56jYhz9sX; Mon,  2 Mar 2026 09:00:04 +0000 (GMT)
        Date: Mon,  2 Mar 2026 09:00:04 +0000 (GMT)
        From: MAILER-DAEMON@mail.mash.example.org (Mail Delivery System)
        Subject: {subject}
        To: {RETURN_PATH}
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="4R7nC56jYhz9sX.1772442004/mail.mash.example.org"
        Content-Transfer-Encoding: 8bit
        Message-Id: <20260302090004.4R7nC56jYhz9sX@mail.mash.example.org>

        This is a MIME-encapsulated message.

        --4R7nC56jYhz9sX.1772442004/mail.mash.example.org
        Content-Description: Notification
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit

        This is the mail system at host mail.mash.example.org.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        For further assistance, please send mail to postmaster.

                           The mail system

        <{DSL}>: host mx.fenland-primary.example.org[198.51.100.25] said:
            {diagnostic} (in reply to RCPT TO command)

        --4R7nC56jYhz9sX.1772442004/mail.mash.example.org
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mail.mash.example.org
        X-Postfix-Queue-ID: 4R7kQm2Zb1z9sV
        X-Postfix-Sender: rfc822; {RETURN_PATH}
        Arrival-Date: Mon,  2 Mar 2026 09:00:02 +0000 (GMT)

        Final-Recipient: rfc822; {DSL}
        Original-Recipient: rfc822;{DSL}
        Action: {action}
        Status: {status}
        Remote-MTA: dns; mx.fenland-primary.example.org
        Diagnostic-Code: smtp; {diagnostic}

        --4R7nC56jYhz9sX.1772442004/mail.mash.example.org
        Content-Description: Undelivered Message Headers
        Content-Type: text/rfc822-headers
        Content-Transfer-Encoding: 8bit

        {_indented(ORIGINAL_HEADERS, "        ")}
        --4R7nC56jYhz9sX.1772442004/mail.mash.example.org--
        """)


def exchange_online_ndr() -> bytes:
    """Exchange Online's NDR: HTML and text, the report, and the whole original returned
    (our sealed notification, armored block and all: it is not an encrypted reply)."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        From: Microsoft Outlook <postmaster@fenlandprimary.onmicrosoft.com>
        To: <{RETURN_PATH}>
        Date: Mon, 2 Mar 2026 09:00:09 +0000
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="48c3a8e1-7b3b-4b0c-9a55-6f7f3c2e9d10"
        X-MS-Exchange-Message-Is-Ndr:
        Content-Language: en-GB
        Message-ID:
         <5e4c0b1a-2d3e-4f5a-8b9c-0d1e2f3a4b5c@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        In-Reply-To: {MESSAGE_ID}
        References: {MESSAGE_ID}
        Thread-Index: AQHbjG3A1k2e8mQ0nUKk1q2b3c4d5e6f7g==
        Subject: Undeliverable: {SUBJECT}
        Auto-Submitted: auto-replied
        X-Auto-Response-Suppress: All
        MIME-Version: 1.0

        --48c3a8e1-7b3b-4b0c-9a55-6f7f3c2e9d10
        Content-Type: multipart/alternative;
        \tdifferences=Content-Type;
        \tboundary="c6a5f1d2-9e8b-4c7a-b6d5-e4f3a2b1c0d9"

        --c6a5f1d2-9e8b-4c7a-b6d5-e4f3a2b1c0d9
        Content-Type: text/plain; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        Your message to {DSL} couldn't be delivered.
        {DSL.split("@")[0]} wasn't found at fenland-primary.example.org.

        Diagnostic information for administrators:
        Generating server: AM0PR01MB5345.eurprd01.prod.exchangelabs.com
        {DSL}
        Remote server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient n=
        ot found by SMTP address lookup'

        --c6a5f1d2-9e8b-4c7a-b6d5-e4f3a2b1c0d9
        Content-Type: text/html; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        <html><body><p>Your message to {DSL} couldn't be delivered.</p></body></html>

        --c6a5f1d2-9e8b-4c7a-b6d5-e4f3a2b1c0d9--

        --48c3a8e1-7b3b-4b0c-9a55-6f7f3c2e9d10
        Content-Type: message/delivery-status

        Reporting-MTA: dns;AM0PR01MB5345.eurprd01.prod.exchangelabs.com
        Received-From-MTA: dns;mail.mash.example.org
        Arrival-Date: Mon, 2 Mar 2026 09:00:05 +0000

        Final-Recipient: rfc822;{DSL}
        Action: failed
        Status: 5.1.10
        Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not
         found by SMTP address lookup

        --48c3a8e1-7b3b-4b0c-9a55-6f7f3c2e9d10
        Content-Type: message/rfc822

        {_indented(ORIGINAL_MESSAGE, "        ")}
        --48c3a8e1-7b3b-4b0c-9a55-6f7f3c2e9d10--
        """)


def gmail_dsn(action: str, status: str, diagnostic: str, kind: str) -> bytes:
    """Gmail's "Delivery Status Notification (Failure/Delay)", returning the headers only."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        X-Original-To: {RETURN_PATH}
        From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
        To: {RETURN_PATH}
        Auto-Submitted: auto-replied
        Subject: Delivery Status Notification ({kind})
        Message-ID: <65e2f0a4.050a0220.3c6b1.0a1bSMTPIN_ADDED_MISSING@mx.google.com>
        Date: Mon, 02 Mar 2026 01:00:06 -0800 (PST)
        MIME-Version: 1.0
        Content-Type: multipart/report; boundary="00000000000091c5e70613b1d8a2";
         report-type=delivery-status

        --00000000000091c5e70613b1d8a2
        Content-Type: text/plain; charset="UTF-8"

        ** Address not found **

        Your message wasn't delivered to {DSL} because the address couldn't be found,
        or is unable to receive mail.

        --00000000000091c5e70613b1d8a2
        Content-Type: message/delivery-status

        Reporting-MTA: dns; googlemail.com
        Arrival-Date: Mon, 02 Mar 2026 01:00:05 -0800 (PST)
        X-Original-Message-ID: {MESSAGE_ID}

        Final-Recipient: rfc822; {DSL}
        Action: {action}
        Status: {status}
        Remote-MTA: dns; mx.fenland-primary.example.org. (198.51.100.25, the server for the
         domain fenland-primary.example.org.)
        Diagnostic-Code: smtp; {diagnostic}
        Last-Attempt-Date: Mon, 02 Mar 2026 01:00:06 -0800 (PST)

        --00000000000091c5e70613b1d8a2
        Content-Type: text/rfc822-headers

        {_indented(ORIGINAL_HEADERS, "        ")}
        --00000000000091c5e70613b1d8a2--
        """)


def exchange_relayed_notice() -> bytes:
    """Exchange's "Relayed:" notice: the receiving server does not offer DSN, so Exchange
    says it passed the message on. A success notice, nothing to act on."""
    return crlf(f"""
        From: postmaster@fenland-primary.example.org
        To: {RETURN_PATH}
        Subject: Relayed: {SUBJECT}
        Date: Mon, 2 Mar 2026 09:00:07 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="rel"

        --rel
        Content-Type: text/plain

        Delivery to these recipients or groups is complete, but no delivery notification was
        sent by the destination server.
        --rel
        Content-Type: message/delivery-status

        Reporting-MTA: dns;exchange.fenland-primary.example.org

        Final-Recipient: rfc822;{DSL}
        Action: relayed
        Status: 2.0.0
        --rel
        Content-Type: text/rfc822-headers

        {_indented(ORIGINAL_HEADERS, "        ")}
        --rel--
        """)


def dsn_without_action() -> bytes:
    """A report whose per-recipient block has a Status but no Action field."""
    return crlf(f"""
        From: MAILER-DAEMON@relay.example.net
        To: {RETURN_PATH}
        Subject: Returned mail
        Date: Mon, 2 Mar 2026 09:00:08 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="na"

        --na
        Content-Type: text/plain

        Delivery failed.
        --na
        Content-Type: message/delivery-status

        Reporting-MTA: dns; relay.example.net

        Final-Recipient: rfc822; {DSL}
        Status: 5.2.2
        Diagnostic-Code: smtp; 552 5.2.2 Mailbox full
        --na--
        """)


def dsn_forwarded_to_navigator() -> bytes:
    """A Postfix-style report that a mailbox rule sent on to the Navigator's own address:
    only the returned headers' Return-Path still names the message."""
    return crlf(f"""
        From: MAILER-DAEMON@mail.mash.example.org (Mail Delivery System)
        To: {NAVIGATOR}
        Subject: Undelivered Mail Returned to Sender
        Date: Mon, 2 Mar 2026 09:00:04 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="fw"

        --fw
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mail.mash.example.org

        Final-Recipient: rfc822; {DSL}
        Action: failed
        Status: 5.7.1
        Diagnostic-Code: smtp; 550 5.7.1 Message rejected by policy
        --fw
        Content-Type: text/rfc822-headers

        Return-Path: <{RETURN_PATH}>
        From: Education Navigator <{NAVIGATOR}>
        To: {DSL}
        Date: Mon, 02 Mar 2026 09:00:00 +0000
        --fw--
        """)


def dsn_for_personal_mail() -> bytes:
    """A Postfix bounce of a message the Navigator sent herself."""
    return crlf(f"""
        Return-Path: <>
        From: MAILER-DAEMON@mail.mash.example.org (Mail Delivery System)
        To: {NAVIGATOR}
        Subject: Undelivered Mail Returned to Sender
        Date: Mon, 2 Mar 2026 12:00:04 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="pm"

        --pm
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mail.mash.example.org

        Final-Recipient: rfc822; sam.rivers@council.example.org
        Action: failed
        Status: 5.1.1
        --pm
        Content-Type: text/rfc822-headers

        From: {NAVIGATOR}
        To: sam.rivers@council.example.org
        Subject: Team rota for March
        Message-ID: {PERSONAL_MESSAGE_ID}
        --pm--
        """)


# ======================================================================================
# Bounces: non-standard (flufl.bounce's detectors)


def exim_bounce() -> bytes:
    """Exim's bounce: plain text, the failed address in X-Failed-Recipients."""
    return crlf(f"""
        Return-path: <>
        Envelope-to: {RETURN_PATH}
        Delivery-date: Mon, 02 Mar 2026 09:00:05 +0000
        X-Failed-Recipients: {DSL}
        Auto-Submitted: auto-replied
        From: Mail Delivery System <Mailer-Daemon@mx.fenland-primary.example.org>
        To: {RETURN_PATH}
        Content-Type: text/plain; charset=us-ascii
        Subject: Mail delivery failed: returning message to sender
        Message-Id: <E1vQk2B-0004Xy-9s@mx.fenland-primary.example.org>
        Date: Mon, 02 Mar 2026 09:00:05 +0000

        This message was created automatically by mail delivery software.

        A message that you sent could not be delivered to one or more of its
        recipients. This is a permanent error. The following address(es) failed:

          {DSL}
            No such user here

        ------ This is a copy of the message, including all the headers. ------

        {_indented(ORIGINAL_MESSAGE, "        ")}
        """)


def qmail_bounce() -> bytes:
    """qmail's QSBMF bounce, "failure notice"."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        Date: 2 Mar 2026 09:00:06 -0000
        From: MAILER-DAEMON@mx.fenland-primary.example.org
        To: {RETURN_PATH}
        Subject: failure notice

        Hi. This is the qmail-send program at mx.fenland-primary.example.org.
        I'm afraid I wasn't able to deliver your message to the following addresses.
        This is a permanent error; I've given up. Sorry it didn't work out.

        <{DSL}>:
        Sorry, no mailbox here by that name. (#5.1.1)

        --- Below this line is a copy of the message.

        {_indented(ORIGINAL_HEADERS, "        ")}
        """)


def old_exchange_ndr() -> bytes:
    """Exchange 5.5's text NDR, forwarded to the Navigator: linked by the quoted
    Message-ID and the reference in the subject, not by a return path."""
    return crlf(f"""
        From: System Administrator <postmaster@fenland-primary.example.org>
        To: {NAVIGATOR}
        Subject: Undeliverable: {SUBJECT}
        Date: Mon, 2 Mar 2026 09:00:10 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset="iso-8859-1"

        Your message

          To:      {DSL}
          Subject: {SUBJECT}
          Sent:    Mon, 2 Mar 2026 09:00:00 +0000
          Message-ID: {MESSAGE_ID}

        did not reach the following recipient(s):

        {DSL} on Mon, 2 Mar 2026 09:00:10 +0000
            The recipient name is not recognized
            The MTS-ID of the original message is: c=GB;a= ;p=Fenland;l=EXCH0103020900
            MSEXCH:IMS:Fenland:Primary:EXCH01 0 (000C05A6) Unknown Recipient
        """)


def google_delay_warning(recipient: str) -> bytes:
    """Gmail's older plain-text delay warning: a temporary failure."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
        To: {RETURN_PATH}
        Subject: Delivery Status Notification (Delay)
        Date: Mon, 2 Mar 2026 13:00:00 +0000
        Content-Type: text/plain; charset=ISO-8859-1

        This is an automatically generated Delivery Status Notification

        THIS IS A WARNING MESSAGE ONLY.

        YOU DO NOT NEED TO RESEND YOUR MESSAGE.

        Delivery to the following recipient has been delayed:

             {recipient}

        Message will be retried for 2 more day(s)

        Technical details of temporary failure:
        The recipient server did not accept our requests to connect. [4.4.1]
        """)


def unreadable_bounce() -> bytes:
    """A bounce in a form nobody has a detector for: it goes to the Navigator, with the
    reference its subject carries."""
    return crlf(f"""
        From: Mail Delivery System <mailer-daemon@gateway.fenland-primary.example.org>
        To: {NAVIGATOR}
        Subject: Undeliverable: {SUBJECT}
        Date: Mon, 2 Mar 2026 09:00:12 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset="utf-8"

        Sorry, we were unable to pass your message on at this time.
        Reason: the destination mailbox is unavailable.
        """)


# ======================================================================================
# Automatic replies


def sieve_vacation() -> bytes:
    """RFC 5230 Sieve vacation: RFC 3834 headers, sent to the envelope sender (our return
    path) from the null return path, threaded to our message."""
    return crlf(f"""
        Return-Path: <>
        Delivered-To: {RETURN_PATH}
        From: {DSL}
        To: {RETURN_PATH}
        Subject: Auto: {SUBJECT}
        In-Reply-To: {MESSAGE_ID}
        References: {MESSAGE_ID}
        Auto-Submitted: auto-replied (vacation)
        Precedence: bulk
        Date: Mon, 2 Mar 2026 09:00:20 +0000
        Message-ID: <dovecot-sieve-1772442020-3401-0@mx.fenland-primary.example.org>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit

        I am away until Monday 9 March. For safeguarding matters please contact the
        school office.
        """)


def exchange_automatic_reply() -> bytes:
    """Exchange's out-of-office: "Automatic reply:", X-Auto-Response-Suppress, and
    auto-generated (not auto-replied); no threading headers, only the subject."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: Automatic reply: {SUBJECT}
        Thread-Topic: {SUBJECT}
        Thread-Index: AQHbjG2yQ4Zx0K1cR0S0m5c2n1cZ8wAAAAB=
        Date: Mon, 2 Mar 2026 09:00:15 +0000
        Message-ID: <b1c2d3e4f5a6@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        Content-Language: en-GB
        X-MS-Has-Attach:
        X-MS-Exchange-Organization-SCL: -1
        X-MS-TNEF-Correlator:
        X-Auto-Response-Suppress: All
        Auto-Submitted: auto-generated
        Content-Type: multipart/alternative;
        \tboundary="_000_b1c2d3e4f5a6AM0PR01MB5345_"
        MIME-Version: 1.0

        --_000_b1c2d3e4f5a6AM0PR01MB5345_
        Content-Type: text/plain; charset="us-ascii"

        I am out of the office until 9 March with no access to email.

        --_000_b1c2d3e4f5a6AM0PR01MB5345_
        Content-Type: text/html; charset="us-ascii"

        <html><body><p>I am out of the office until 9 March with no access to email.</p>
        </body></html>

        --_000_b1c2d3e4f5a6AM0PR01MB5345_--
        """)


def localised_automatic_reply() -> bytes:
    """A French Exchange out-of-office, its subject RFC 2047-encoded, no other mark."""
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: =?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_{SUBJECT.replace(" ", "_")}?=
        Date: Mon, 2 Mar 2026 09:00:16 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset="utf-8"

        Absente jusqu'au 9 mars.
        """)


def old_responder() -> bytes:
    """An old autoresponder: X-Autoreply and Precedence: auto_reply, its own subject,
    threaded to our message."""
    return crlf(f"""
        From: {DSL}
        To: {NAVIGATOR}
        Subject: Away from my desk
        In-Reply-To: {MESSAGE_ID}
        X-Autoreply: yes
        Precedence: auto_reply
        Date: Mon, 2 Mar 2026 09:00:17 +0000
        Content-Type: text/plain

        I am on a course today.
        """)


def helpdesk_acknowledgement() -> bytes:
    """A school's ticketing system acknowledging our notification: only auto-generated, but
    about our message, so nobody has read it yet."""
    return crlf(f"""
        From: IT Helpdesk <helpdesk@fenland-primary.example.org>
        To: {NAVIGATOR}
        Subject: [Ticket #4521] {SUBJECT}
        Auto-Submitted: auto-generated
        Date: Mon, 2 Mar 2026 09:00:18 +0000
        Content-Type: text/plain

        Your request has been logged as ticket #4521.
        """)


def automatic_reply_to_personal_mail() -> bytes:
    return crlf(f"""
        From: Sam Rivers <sam.rivers@council.example.org>
        To: {NAVIGATOR}
        Subject: Automatic reply: Team rota for March
        Auto-Submitted: auto-replied
        In-Reply-To: {PERSONAL_MESSAGE_ID}
        Date: Mon, 2 Mar 2026 12:00:00 +0000
        Content-Type: text/plain

        I am on leave.
        """)


def newsletter() -> bytes:
    return crlf(f"""
        From: Safeguarding Partnership <news@partnership.example.org>
        To: {NAVIGATOR}
        Subject: Training dates for the spring term
        Precedence: bulk
        List-Unsubscribe: <mailto:leave@partnership.example.org>
        Date: Mon, 2 Mar 2026 07:00:00 +0000
        Content-Type: text/plain

        New training dates are on the website.
        """)


# ======================================================================================
# Replies


def pgp_mime_reply() -> bytes:
    """Thunderbird's encrypted reply with protected headers: the outer subject is "...",
    the threading headers stay outside."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: {NAVIGATOR}
        Subject: ...
        Message-ID: <4f3e2d1c-0b9a-8f7e-6d5c-4b3a2f1e0d9c@fenland-primary.example.org>
        In-Reply-To: {MESSAGE_ID}
        References: {MESSAGE_ID}
        Date: Mon, 2 Mar 2026 10:30:00 +0000
        MIME-Version: 1.0
        User-Agent: Mozilla Thunderbird
        Content-Type: multipart/encrypted;
         protocol="application/pgp-encrypted";
         boundary="------------enc0Yx8sQw3ZrTn5bLm2Kp7"

        This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
        --------------enc0Yx8sQw3ZrTn5bLm2Kp7
        Content-Type: application/pgp-encrypted
        Content-Description: PGP/MIME version identification

        Version: 1

        --------------enc0Yx8sQw3ZrTn5bLm2Kp7
        Content-Type: application/octet-stream; name="encrypted.asc"
        Content-Description: OpenPGP encrypted message
        Content-Disposition: inline; filename="encrypted.asc"

        {_indented(armored("thunderbird reply"), "        ")}

        --------------enc0Yx8sQw3ZrTn5bLm2Kp7--
        """)


def outlook_mangled_reply() -> bytes:
    """An encrypted reply after Exchange has flattened it: multipart/mixed, an empty body,
    and the two PGP/MIME parts as base64 attachments. Outlook keeps only the subject."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: RE: {SUBJECT}
        Thread-Topic: {SUBJECT}
        Thread-Index: AQHbjG2yQ4Zx0K1cR0S0m5c2n1cZ8wAAAAC=
        Date: Mon, 2 Mar 2026 10:45:00 +0000
        Message-ID: <AM0PR01MB53459A8B7C6D5E4F3A2B1C0D@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        Content-Language: en-GB
        X-MS-Has-Attach: yes
        Content-Type: multipart/mixed;
        \tboundary="_003_AM0PR01MB53459A8B7C6D5E4F3A2B1C0D_"
        MIME-Version: 1.0

        --_003_AM0PR01MB53459A8B7C6D5E4F3A2B1C0D_
        Content-Type: text/plain; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable


        --_003_AM0PR01MB53459A8B7C6D5E4F3A2B1C0D_
        Content-Type: application/pgp-encrypted; name="PGPMIME version identification"
        Content-Description: PGP/MIME version identification
        Content-Disposition: attachment; filename="PGPMIME version identification"; size=12
        Content-Transfer-Encoding: base64

        {b64_lines(VERSION_PART)}

        --_003_AM0PR01MB53459A8B7C6D5E4F3A2B1C0D_
        Content-Type: application/octet-stream; name="encrypted.asc"
        Content-Description: OpenPGP encrypted message
        Content-Disposition: attachment; filename="encrypted.asc"; size=1093
        Content-Transfer-Encoding: base64

        {_indented(b64_lines(armored("outlook reply")), "        ")}

        --_003_AM0PR01MB53459A8B7C6D5E4F3A2B1C0D_--
        """)


def inline_armored_reply() -> bytes:
    """A reply whose client put the armored message in the body, quoted-printable, with the
    trailing spaces Outlook leaves on lines."""
    padded = armored("inline reply").replace("\n", "  \n")
    block = quopri.encodestring(padded.encode("ascii")).decode("ascii")
    return crlf(f"""
        From: {DEPUTY}
        To: {NAVIGATOR}
        Subject: Re: {SUBJECT}
        In-Reply-To: {DEPUTY_MESSAGE_ID}
        Date: Mon, 2 Mar 2026 11:00:00 +0000
        MIME-Version: 1.0
        Content-Type: text/plain; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        {_indented(block, "        ")}
        """)


def plain_reply() -> bytes:
    """Outlook's unencrypted reply, threaded to our message and to another one of ours."""
    return crlf(f"""
        From: Jane Doe <{DSL}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: RE: {SUBJECT}
        Thread-Topic: {SUBJECT}
        In-Reply-To: {MESSAGE_ID}
        References: {OTHER_MESSAGE_ID}
         {MESSAGE_ID}
        Auto-Submitted: no
        Date: Mon, 2 Mar 2026 10:05:00 +0000
        Message-ID:
         <AM0PR01MB5345F0E1D2C3B4A5968778695A4B@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        MIME-Version: 1.0
        Content-Type: text/plain; charset="utf-8"

        Thank you, we have this in hand.
        """)


def reply_by_subject_only(subject: str) -> bytes:
    """A DSL writing afresh, quoting the reference in the subject."""
    return crlf(f"""
        From: {DEPUTY}
        To: {NAVIGATOR}
        Subject: {subject}
        Date: Mon, 2 Mar 2026 14:00:00 +0000
        Message-ID: <7a6b5c4d@fenland-primary.example.org>
        Content-Type: text/plain; charset="utf-8"

        Please call me about this one.
        """)


def foreign_thread() -> bytes:
    """A reply in a thread that is not ours: a Message-ID of another domain only."""
    return crlf(f"""
        From: Sam Rivers <sam.rivers@council.example.org>
        To: {NAVIGATOR}
        Subject: Re: Team rota for March
        In-Reply-To: {PERSONAL_MESSAGE_ID}
        References: <OE-notours.123@elsewhere.example.net> {PERSONAL_MESSAGE_ID}
        Date: Mon, 2 Mar 2026 12:30:00 +0000
        Content-Type: text/plain

        Fine by me.
        """)


def encrypted_unmatched() -> bytes:
    """Encrypted mail to the Navigator that names nothing of ours outside the encryption."""
    return crlf(f"""
        From: Police DA Desk <da.desk@police.example.org>
        To: {NAVIGATOR}
        Subject: ...
        Date: Mon, 2 Mar 2026 15:00:00 +0000
        MIME-Version: 1.0
        Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="x"

        --x
        Content-Type: application/pgp-encrypted

        Version: 1

        --x
        Content-Type: application/octet-stream

        {_indented(armored("police"), "        ")}
        --x--
        """)


# ======================================================================================
# Our own mail


def own_digest() -> bytes:
    """The gateway's digest to the Navigator, arriving in the mailbox it watches."""
    return crlf(f"""
        From: Encompass Gateway <{NAVIGATOR}>
        To: Education Navigator <{NAVIGATOR}>
        Subject: Exceptions digest for Monday 2 March 2026 ({REFERENCE} and 3 more)
        Date: Mon, 2 Mar 2026 08:30:00 +0000
        Message-ID: <digest.20260302@{DOMAIN}>
        In-Reply-To: {MESSAGE_ID}
        Auto-Submitted: auto-generated
        {LOOP_HEADER}: {DOMAIN}
        MIME-Version: 1.0
        Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="d"

        --d
        Content-Type: application/pgp-encrypted

        Version: 1

        --d
        Content-Type: application/octet-stream

        {_indented(armored("digest"), "        ")}
        --d--
        """)


# ======================================================================================

CASES: tuple[Case, ...] = (
    # Read receipts
    Case(
        "outlook_mdn_displayed",
        outlook_mdn("displayed", "Read", "was read"),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "outlook_mdn_deleted_unread",
        outlook_mdn("deleted", "Not read", "was deleted without being read"),
        Kind.DELETED_UNREAD,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "thunderbird_mdn_displayed",
        thunderbird_mdn(),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "gmail_mdn_displayed",
        gmail_mdn(),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "mdn_without_original_message_id",
        mdn_without_original_message_id(),
        Kind.READ_RECEIPT,
        message_ids=(DEPUTY_MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "mdn_threaded_only",
        mdn_threaded_only(),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
    ),
    Case(
        "mdn_dispatched",
        mdn_dispatched(),
        Kind.RECEIPT_OTHER,
        message_ids=(MESSAGE_ID,),
    ),
    Case(
        "mdn_report_part_base64",
        mdn_transfer_encoded(),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case("mdn_for_personal_mail", mdn_for_personal_mail(), Kind.UNMATCHED),
    Case(
        "free_text_read_by_subject",
        outlook_free_text_receipt("Read", "was read", threaded=False),
        Kind.READ_RECEIPT,
        references=(REFERENCE,),
    ),
    Case(
        "free_text_not_read_threaded",
        outlook_free_text_receipt("Not read", "was deleted without being read", threaded=True),
        Kind.DELETED_UNREAD,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "free_text_read_html",
        html_free_text_receipt(),
        Kind.READ_RECEIPT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    Case(
        "person_titling_reply_read",
        person_titling_reply_read(),
        Kind.REPLY,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
    ),
    # Bounces: RFC 3464
    Case(
        "postfix_dsn_user_unknown",
        postfix_dsn(
            "failed",
            "5.1.1",
            f"550 5.1.1 <{DSL}>: Recipient address rejected: User unknown in virtual mailbox table",
            subject="Undelivered Mail Returned to Sender",
        ),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="5.1.1",
    ),
    Case(
        "postfix_dsn_delayed",
        postfix_dsn(
            "delayed",
            "4.4.1",
            "connect to mx.fenland-primary.example.org[198.51.100.25]:25: Connection timed out",
            subject="Delayed Mail (still being retried)",
        ),
        Kind.BOUNCE_DELAYED,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="4.4.1",
    ),
    Case(
        "exchange_online_ndr",
        exchange_online_ndr(),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="5.1.10",
    ),
    Case(
        "gmail_dsn_failure",
        gmail_dsn(
            "failed",
            "5.1.1",
            "550 5.1.1 The email account that you tried to reach does not exist.",
            "Failure",
        ),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="5.1.1",
    ),
    Case(
        "gmail_dsn_delay",
        gmail_dsn("delayed", "4.7.0", "421 4.7.0 Try again later, closing connection.", "Delay"),
        Kind.BOUNCE_DELAYED,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="4.7.0",
    ),
    Case(
        "exchange_relayed_notice",
        exchange_relayed_notice(),
        Kind.DELIVERED,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="2.0.0",
    ),
    Case(
        "dsn_without_action",
        dsn_without_action(),
        Kind.BOUNCE_PERMANENT,
        token=TOKEN,
        final_recipient=DSL,
        status="5.2.2",
    ),
    Case(
        "dsn_forwarded_to_navigator",
        dsn_forwarded_to_navigator(),
        Kind.BOUNCE_PERMANENT,
        token=TOKEN,
        final_recipient=DSL,
        status="5.7.1",
    ),
    Case("dsn_for_personal_mail", dsn_for_personal_mail(), Kind.UNMATCHED),
    # Bounces: non-standard
    Case(
        "exim_bounce",
        exim_bounce(),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
    ),
    Case(
        "qmail_bounce",
        qmail_bounce(),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
        final_recipient=DSL,
        status="5.1.1",
    ),
    Case(
        "old_exchange_ndr",
        old_exchange_ndr(),
        Kind.BOUNCE_PERMANENT,
        message_ids=(MESSAGE_ID,),
        references=(REFERENCE,),
        final_recipient=DSL,
    ),
    Case(
        "google_delay_warning",
        google_delay_warning(UNHYPHENATED_DSL),
        Kind.BOUNCE_DELAYED,
        token=TOKEN,
        final_recipient=UNHYPHENATED_DSL,
        status="4.4.1",
    ),
    # flufl.bounce's generic detectors keep only addresses whose domain has no hyphen
    # (simplematch.VALID), so this dialect is read for some schools only; the others reach
    # the Navigator as an unreadable bounce, never as something else.
    Case(
        "google_delay_warning_hyphenated_domain",
        google_delay_warning(DSL),
        Kind.UNMATCHED,
        token=TOKEN,
    ),
    Case(
        "unreadable_bounce",
        unreadable_bounce(),
        Kind.UNMATCHED,
        references=(REFERENCE,),
    ),
    # Automatic replies
    Case(
        "sieve_vacation",
        sieve_vacation(),
        Kind.OUT_OF_OFFICE,
        message_ids=(MESSAGE_ID,),
        token=TOKEN,
        references=(REFERENCE,),
    ),
    Case(
        "exchange_automatic_reply",
        exchange_automatic_reply(),
        Kind.OUT_OF_OFFICE,
        references=(REFERENCE,),
    ),
    Case(
        "localised_automatic_reply",
        localised_automatic_reply(),
        Kind.OUT_OF_OFFICE,
        references=(REFERENCE,),
    ),
    Case(
        "old_responder",
        old_responder(),
        Kind.OUT_OF_OFFICE,
        message_ids=(MESSAGE_ID,),
    ),
    Case(
        "helpdesk_acknowledgement",
        helpdesk_acknowledgement(),
        Kind.OUT_OF_OFFICE,
        references=(REFERENCE,),
    ),
    Case("automatic_reply_to_personal_mail", automatic_reply_to_personal_mail(), Kind.UNMATCHED),
    Case("newsletter", newsletter(), Kind.UNMATCHED),
    # Replies
    Case(
        "pgp_mime_reply",
        pgp_mime_reply(),
        Kind.REPLY,
        message_ids=(MESSAGE_ID,),
        encryption=Encryption.PGP_MIME,
    ),
    Case(
        "outlook_mangled_reply",
        outlook_mangled_reply(),
        Kind.REPLY,
        references=(REFERENCE,),
        encryption=Encryption.OUTLOOK_MANGLED,
    ),
    Case(
        "inline_armored_reply",
        inline_armored_reply(),
        Kind.REPLY,
        message_ids=(DEPUTY_MESSAGE_ID,),
        references=(REFERENCE,),
        encryption=Encryption.ARMORED,
    ),
    Case(
        "plain_reply",
        plain_reply(),
        Kind.REPLY,
        message_ids=(MESSAGE_ID, OTHER_MESSAGE_ID),
        references=(REFERENCE,),
    ),
    Case(
        "reply_by_subject_only",
        reply_by_subject_only(f"Query about {REFERENCE}"),
        Kind.REPLY,
        references=(REFERENCE,),
    ),
    Case(
        "reply_by_lower_case_subject",
        reply_by_subject_only(f"re: secure notification {REFERENCE.lower()}"),
        Kind.REPLY,
        references=(REFERENCE,),
    ),
    Case(
        "reply_naming_two_references",
        reply_by_subject_only(f"{REFERENCE} and {OTHER_REFERENCE}: same family"),
        Kind.REPLY,
        references=(REFERENCE, OTHER_REFERENCE),
    ),
    Case("foreign_thread", foreign_thread(), Kind.UNMATCHED),
    Case(
        "encrypted_unmatched",
        encrypted_unmatched(),
        Kind.UNMATCHED,
        encryption=Encryption.PGP_MIME,
    ),
    # Our own mail
    Case("own_digest", own_digest(), Kind.OWN_LOOP),
)


def outlook_flattened(sealed: bytes, *, sender: str = DSL) -> bytes:
    """What Exchange leaves of an RFC 3156 reply: multipart/mixed, the two parts as base64
    attachments, the armor re-wrapped with trailing blanks, and only the subject to go by
    (`sealed` as `gateway.pgpmime.seal` writes it, from `sender`)."""
    armor = encrypted_part(sealed).decode("ascii")
    rewrapped = "\r\n".join(line + "  " for line in armor.splitlines()) + "\r\n"
    encoded = base64.encodebytes(rewrapped.encode()).decode().replace("\n", "\n        ")
    return crlf(f"""
        From: {sender}
        To: {NAVIGATOR}
        Subject: RE: {SUBJECT}
        Date: Mon, 2 Mar 2026 10:45:00 +0000
        Message-ID: <AM0PR01MB53459A8B@AM0PR01MB5345.eurprd01.prod.exchangelabs.com>
        Content-Type: multipart/mixed; boundary="_003_mangled_"
        MIME-Version: 1.0

        --_003_mangled_
        Content-Type: text/plain; charset="us-ascii"

        --_003_mangled_
        Content-Type: application/pgp-encrypted; name="PGPMIME version identification"
        Content-Disposition: attachment; filename="PGPMIME version identification"
        Content-Transfer-Encoding: base64

        {base64.b64encode(b"Version: 1").decode()}

        --_003_mangled_
        Content-Type: application/octet-stream; name="encrypted.asc"
        Content-Disposition: attachment; filename="encrypted.asc"
        Content-Transfer-Encoding: base64

        {encoded}
        --_003_mangled_--
        """)
