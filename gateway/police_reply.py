"""What goes back to the police sender: a receipt once an intake is recorded, and a reply
when nothing could be taken from their mail.

Both are automatic answers (RFC 3834): `Auto-Submitted: auto-replied`, the gateway's loop
header, In-Reply-To and References naming the police mail, and no read receipt asked. Both
are signed by the Navigator's key. They go only to the From address of a mail that
authenticated as an allow-listed police sender: answering a mail that did not would send
mail to whoever a forger named (backscatter) and tell a prober what the gateway accepts.
Nor is a mail answered that is itself automatic, or carries our loop header. A Reply-To is
ignored: nothing authenticates it, so it could point the answer anywhere.

A receipt carries counts only: files, incidents, children and outcomes, and the intake's
number. No name, date of birth, school or police reference — those are the police's own
data about a child, and a receipt is not the place to repeat them. So it may travel signed
only. It is encrypted as well, to the police key, when the key is clear: the pinned key that
signed the police mail, or else the one pinned key when exactly one is configured, and only
while that key can receive (unexpired, unrevoked, with an encryption subkey). A police desk
authenticated by DKIM, or with several keys pinned and none that signed, gets it signed only.
The reply names the police's own file names and why each was refused, and is encrypted by the
same rule.
"""

from __future__ import annotations

import email.policy
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr

from gateway import outbox
from gateway.clock import LONDON
from gateway.config import PoliceSection
from gateway.errors import ConfigError
from gateway.keyring import KeyStatus
from gateway.outbox import MessageKind
from gateway.own_mail import LOOP_HEADER, own_reference
from gateway.pgpmime import OuterHeaders, seal, sign
from gateway.police_mail import RefusedFile
from gateway.render import clean_line
from gateway.sealing import Sealer
from gateway.sender_auth import allow_listed

_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable, no '<' or '>' inside
_SUBJECT = {MessageKind.RECEIPT: "Receipt", MessageKind.REPLY: "Not processed"}


@dataclass(frozen=True)
class IntakeCounts:
    """One recorded intake, in numbers only (what a receipt may say)."""

    intake_id: int
    new: bool  # False: the same spreadsheet was recorded before; nothing new was written
    received_at: datetime
    incidents: int
    children: int
    notifications: int
    telephone: int
    withheld: int
    exceptions: int


def intake_counts(conn: sqlite3.Connection, intake_id: int, *, new: bool) -> IntakeCounts:
    """The counts of the recorded intake `intake_id`, from the state database."""
    intake = conn.execute(
        "SELECT received_at, incidents, children FROM intake WHERE id = ?", (intake_id,)
    ).fetchone()
    outcomes = dict(
        conn.execute(
            "SELECT outcome, COUNT(*) FROM decision WHERE intake_id = ? GROUP BY outcome",
            (intake_id,),
        ).fetchall()
    )
    notifications = conn.execute(
        "SELECT COUNT(*) FROM notification WHERE intake_id = ?", (intake_id,)
    ).fetchone()[0]
    return IntakeCounts(
        intake_id,
        new,
        datetime.fromisoformat(intake["received_at"]),
        int(intake["incidents"]),
        int(intake["children"]),
        int(notifications),
        int(outcomes.get("telephone", 0)),
        int(outcomes.get("withhold", 0)),
        int(outcomes.get("exception", 0)),
    )


def not_to_answer(raw: bytes) -> str | None:
    """Why the mail `raw` must not be answered (RFC 3834 §2: it is automatic, or it is our
    own mail come back), or None."""
    headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
    for value in headers.get_all("Auto-Submitted", []):
        token = str(value).split(";", 1)[0].split("(", 1)[0].strip().lower()
        if token != "no":
            return f"it is automatic mail (Auto-Submitted: {clean_line(str(value))})"
    if headers.get(LOOP_HEADER) is not None:
        return f"it carries the gateway's own loop header ({LOOP_HEADER})"
    return None


def original_message_id(raw: bytes) -> str | None:
    """The police mail's Message-ID, when it is one that can be quoted in a header."""
    headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
    values = [value for name, value in headers.raw_items() if name.lower() == "message-id"]
    if len(values) != 1:
        return None
    value = "".join(str(values[0]).split())
    return value if _MESSAGE_ID.fullmatch(value) and len(value) <= 900 else None


def receipt_message(
    reference: str,
    counts: Sequence[IntakeCounts],
    *,
    files: int,
    refused: int,
    at: datetime,
) -> EmailMessage:
    """The receipt's text: the intakes of one police mail, counted."""
    local = at.astimezone(LONDON)
    lines = [
        f"Receipt {reference}",
        "",
        f"Encompass Gateway received your mail at {local:%H:%M} on {local:%d/%m/%Y} (UK time).",
        f"Files received: {files}; spreadsheets taken in: {len(counts)}; not taken: {refused}.",
    ]
    if refused:
        lines.append("The Education Navigator has been told which files were not taken and why.")
    for intake in counts:
        lines += ["", f"Intake {intake.intake_id}"]
        if not intake.new:
            recorded = intake.received_at.astimezone(LONDON)
            lines += [
                f"  Already recorded at {recorded:%H:%M} on {recorded:%d/%m/%Y}:",
                "  nothing new was recorded from it (the counts are the first time's).",
            ]
        lines += [
            f"  Incidents: {intake.incidents}",
            f"  Children: {intake.children}",
            f"  School notifications planned: {intake.notifications}",
            f"  Telephone tasks (early years): {intake.telephone}",
            f"  Withheld (listed for the Education Navigator): {intake.withheld}",
            f"  Exceptions for the Education Navigator: {intake.exceptions}",
        ]
    lines += [
        "",
        "Counts only. The Education Navigator resolves the exceptions.",
    ]
    return _text(f"Receipt {reference}", lines)


def refusal_message(reference: str, refused: Sequence[RefusedFile]) -> EmailMessage:
    """The reply to a police mail from which no spreadsheet could be taken."""
    lines = [
        f"Not processed {reference}",
        "",
        "Encompass Gateway could not take a spreadsheet from your mail, so nothing in it has",
        "been processed and no school has been notified from it.",
        "",
    ]
    if refused:
        lines.append("Files not taken:")
        lines += [f"- {clean_line(f.filename)}: {clean_line(f.reason)}" for f in refused]
    else:
        lines.append("The mail had no file attached.")
    lines += [
        "",
        "Please send the spreadsheet again as an .xlsx attachment (or .xlsx.gpg encrypted to",
        "the MASH key). The Education Navigator has been told.",
    ]
    return _text(f"Not processed {reference}", lines)


def _text(subject: str, lines: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    # Quoted-printable: a signed entity must be 7-bit (RFC 3156 §5.1), and a police file
    # name need not be ASCII.
    message.set_content(
        "\n".join([*lines, "", "-- Encompass Gateway"]) + "\n", cte="quoted-printable"
    )
    del message["MIME-Version"]  # an inner entity: the outer message has its own
    return message


def police_key(
    police: PoliceSection, sealer: Sealer, *, signer: str | None, at: datetime
) -> str | None:
    """The police key to encrypt an answer to (see the module's docstring), or None."""
    candidates = [signer] if signer is not None else list(police.fingerprints)
    if len(candidates) != 1:
        return None
    key = sealer.keyring.key(candidates[0])
    return key.fingerprint if key is not None and key.status(at) is KeyStatus.OK else None


def queue_to_police(
    conn: sqlite3.Connection,
    inner: EmailMessage,
    *,
    kind: MessageKind,
    key: str,
    sender: str,
    in_reply_to: str | None,
    police: PoliceSection,
    signer: str | None,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> int:
    """Sign (and, by the rule above, encrypt) `inner` and queue it to `sender`, due now;
    returns the row id. `key` names the police mail, so it is answered once.

    The outbox row's fingerprint is the police key when encrypted, else the Navigator's
    signing key (nothing is encrypted to anyone).
    """
    if not allow_listed(sender, police.senders):
        raise ConfigError(f"{sender} is not on the police allow-list: it is never answered")
    reference = own_reference(kind, key)
    settings = sealer.dispatch
    message_id = outbox.message_id_for(reference, sender, settings.domain)
    threading = (("In-Reply-To", in_reply_to), ("References", in_reply_to)) if in_reply_to else ()
    headers = OuterHeaders(
        from_addr=formataddr((sealer.navigator.name, sealer.navigator.email)),
        to_addr=sender,
        subject=f"{_SUBJECT[kind]} {reference}",
        date=now,
        message_id=message_id,
        extra=(("Auto-Submitted", "auto-replied"), (LOOP_HEADER, settings.domain), *threading),
    )
    recipient_key = police_key(police, sealer, signer=signer, at=now)
    if recipient_key is None:
        fingerprint = sealer.signer
        body = sign(
            sealer.keyring,
            inner,
            signer=sealer.signer,
            passphrase=sealer.passphrase,
            headers=headers,
        )
    else:
        fingerprint = recipient_key
        body = seal(
            sealer.keyring,
            inner,
            recipient=recipient_key,
            signer=sealer.signer,
            passphrase=sealer.passphrase,
            headers=headers,
        )
    return outbox.store_sealed(
        conn,
        kind=kind,
        reference=reference,
        contact_role="police",
        recipient=sender,
        fingerprint=fingerprint,
        message_id=message_id,
        return_path=outbox.return_path_for(message_id, settings.bounce_local_part, settings.domain),
        due=now,
        body=body,
        sealed_at=now,
        actor=actor,
    )
