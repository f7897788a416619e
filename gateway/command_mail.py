"""Signed commands by mail: the Navigator's decisions, one per line (gateway/commands.py), in
a mail to the Navigator's mailbox (DESIGN.md invariant 4: they act only when signed by a
pinned Navigator key).

Which mail is taken as commands: mail whose From is the Navigator's own address (a reply to
the digest, or a mail written to the gateway), once `[navigator] command_signers` pins at
least one key, and that is not automatic (RFC 3834) nor the gateway's own mail come back.
The From decides only where the mail goes; what it may do is decided by its signature alone.

A command mail is acted on only when it is an RFC 3156 PGP/MIME signature by a pinned
command-signer key, checked over the original bytes of the signed part, or encrypted to the
Navigator's key and signed inside the encryption (gateway/signed_mail.py) — also when
Exchange has flattened it into attachments (put back first, as replies are). Inline PGP
(clearsigned text) is refused: it signs the text but not the MIME structure around it. Then
every line must be a command: one malformed line and the whole mail is refused, acting on
none of it. The same signed mail comes only once: a copy (a re-delivery, or a replay with
other outer headers) is refused, since the signature and what it covers are kept by digest.

Every command mail is answered once, as the gateway's own automatic mail: signed by the
Navigator's key, encrypted to the key that signed the commands — or, when none validly did,
to every pinned command-signer key; to the Navigator's own key when none of those can
receive; never to whatever a From names — sent to the Navigator's configured address
through the durable outbox. The answer lists what each line
did, or why nothing was done. The audit log has `command_mail.accepted` or
`command_mail.rejected` with the signer's fingerprint, the Message-ID's hash and a reason
code; each command's own entries come from `resolutions.execute`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr

from gateway import audit
from gateway.commands import ParsedLine, parse_commands
from gateway.config import LoadedConfig, NavigatorSection
from gateway.inbound import Classified, Kind
from gateway.keyring import Keyring, KeyStatus, normalise_fingerprint
from gateway.mail_ledger import Disposition, DispositionKind, LedgerKey, content_key
from gateway.outbox import MessageKind
from gateway.own_mail import alert_message, queue_sealed
from gateway.pgpmime import OpeningError
from gateway.police_reply import not_to_answer, original_message_id
from gateway.replies import Encryption, encryption_of, header_text, repair_outlook_pgp_mime
from gateway.resolutions import CommandResult, execute
from gateway.sealing import Sealer
from gateway.signed_mail import PinnedKeys, SignedContent, open_signed, parse
from gateway.store import transaction

ACCEPTED = "acted_on"  # the reason code of a command mail acted on


@dataclass(frozen=True)
class Refusal:
    """Why a command mail was not acted on: a code for the audit log and the lines of the
    answer that explain it."""

    code: str
    lines: tuple[str, ...]


def command_signers(navigator: NavigatorSection) -> PinnedKeys:
    """The pinned command-signer keys, as gateway/signed_mail.py judges signatures."""
    return PinnedKeys(
        navigator.command_signers, "command signer key", "[navigator] command_signers"
    )


def is_command_mail(raw: bytes, found: Classified, navigator: NavigatorSection) -> bool:
    """Whether the mail `raw` (classified as `found`) goes to the command channel."""
    if not navigator.command_signers or found.automatic or found.kind is Kind.OWN_LOOP:
        return False
    if not_to_answer(raw) is not None:
        return False
    sender = parseaddr(header_text(parse(raw), "From"))[1].strip()
    return sender.casefold() == navigator.email.casefold()


def take_command_mail(
    conn: sqlite3.Connection,
    raw: bytes,
    key: LedgerKey,
    *,
    config: LoadedConfig,
    sealer: Sealer,
    now: datetime,
    actor: str,
) -> Disposition:
    """Verify, act on (or refuse) and answer one command mail, in one transaction."""
    navigator = config.config.navigator
    pinned = command_signers(navigator)
    opened = open_signed(
        _unmangled(raw),
        pinned=pinned,
        keyring=sealer.keyring,
        passphrase=sealer.passphrase,
        decrypting_key="the Navigator's key",
    )
    message_hash = content_key(raw).message_id_sha256
    with transaction(conn):
        refusal = _refusal(
            conn, opened, now=now, max_age=timedelta(hours=navigator.command_max_age_hours)
        )
        parsed: list[ParsedLine] = []
        if refusal is None:
            parsed, refusal = _commands(opened)
        signer = opened.check.signer
        if refusal is not None:
            row = _record(conn, key, message_hash, opened, "rejected", refusal.code, now)
            audit.append(
                conn,
                "command_mail.rejected",
                actor=actor,
                at=now,
                command_mail=row,
                signer=signer,
                message_id_sha256=message_hash,
                reason=refusal.code,
            )
            answer = _answer_refused(refusal)
            to = _readable(pinned.fingerprints, sealer.keyring, now)
        else:
            assert signer is not None  # a passed check names its pinned key
            row = _record(conn, key, message_hash, opened, "accepted", ACCEPTED, now)
            audit.append(
                conn,
                "command_mail.accepted",
                actor=actor,
                at=now,
                command_mail=row,
                signer=signer,
                message_id_sha256=message_hash,
                reason=ACCEPTED,
                commands=len(parsed),
            )
            results = [
                (
                    line.number,
                    execute(conn, command, config=config, now=now, actor=actor, signer=signer),
                )
                for line in parsed
                if (command := line.command) is not None
            ]
            answer = _answer_done(results)
            to = _readable((signer,), sealer.keyring, now)
        answer_row = queue_sealed(
            conn,
            answer,
            kind=MessageKind.COMMAND_ANSWER,
            key=f"{key.mailbox}/{key.uidvalidity}/{key.uid}",
            to=(navigator.name, navigator.email),
            role="navigator",
            # No pinned key can receive: the Navigator's own key, which the gateway's every
            # alert is encrypted to, so the answer still reaches only the Navigator.
            fingerprint=to[0] if to else sealer.signer,
            also_to=to[1:],
            in_reply_to=original_message_id(raw),
            sealer=sealer,
            now=now,
            actor=actor,
        )
        conn.execute("UPDATE command_mail SET answer = ? WHERE id = ?", (answer_row, row))
    if refusal is not None:
        return Disposition(DispositionKind.QUARANTINED, reason=f"command mail: {refusal.code}")
    return Disposition(DispositionKind.COMMAND)


def _unmangled(raw: bytes) -> bytes:
    """`raw`, or its RFC 3156 form when Exchange flattened an encrypted mail into attachments
    (gateway/replies.py): the signature is inside the encryption, so putting the structure
    around it back cannot make a forgery pass. A mail that cannot be put back is judged as
    it is, and refused."""
    if encryption_of(parse(raw)) is not Encryption.OUTLOOK_MANGLED:
        return raw
    try:
        return repair_outlook_pgp_mime(raw)
    except OpeningError:
        return raw


def _refusal(
    conn: sqlite3.Connection, opened: SignedContent, *, now: datetime, max_age: timedelta
) -> Refusal | None:
    """Why the signature does not let the mail act, or None."""
    check = opened.check
    if not check.passed:
        code = check.problem.value if check.problem is not None else "unsigned"
        return Refusal(code, (f"Nothing was done: {check.reason}.",))
    signed_at = check.signed_at
    # Only age is judged: a signature dated ahead of our clock cannot have been replayed
    # from the past (a forger cannot sign), and a Navigator's clock may run ahead.
    if signed_at is None or signed_at < now - max_age:
        shown = signed_at.isoformat(timespec="minutes") if signed_at else "no time"
        return Refusal(
            "stale_signature",
            (
                f"Nothing was done: the signature is dated {shown} (UTC); commands are acted"
                f" on only when signed within the last {max_age.total_seconds() / 3600:g}"
                " hours. Send them again, newly signed, if they still stand.",
            ),
        )
    earlier = conn.execute(
        "SELECT received_at FROM command_mail WHERE signature_sha256 = ? AND outcome = 'accepted'",
        (opened.fingerprint,),
    ).fetchone()
    if earlier is not None:
        return Refusal(
            "replayed",
            (
                "Nothing was done: this signed mail was acted on before, at "
                f"{earlier['received_at']} (UTC); a copy of it is never acted on again.",
            ),
        )
    return None


def _commands(opened: SignedContent) -> tuple[list[ParsedLine], Refusal | None]:
    """The parsed command lines of a validly signed mail, or why they cannot be acted on."""
    assert opened.content is not None  # a passed check has content
    body = opened.content.get_body(preferencelist=("plain",))
    if not isinstance(body, EmailMessage):
        return [], Refusal(
            "no_text", ("Nothing was done: the signed mail has no plain-text part to read.",)
        )
    try:
        text = body.get_content()
    except (LookupError, ValueError):
        return [], Refusal("no_text", ("Nothing was done: the plain-text part cannot be decoded.",))
    if not isinstance(text, str):
        return [], Refusal("no_text", ("Nothing was done: the plain-text part is not text.",))
    if str(body.get_param("format", "")).lower() == "flowed":
        text = unflowed(text, delsp=str(body.get_param("delsp", "")).lower() == "yes")
    parsed = parse_commands(text)
    bad = [line for line in parsed if line.error is not None]
    if bad:
        return parsed, Refusal(
            "malformed_command",
            (
                f"Nothing was done: {len(bad)} of the {len(parsed)} command lines cannot be"
                " understood, and a mail is acted on whole or not at all:",
                *(f"- {line.error}" for line in bad),
                "Send the commands again with these lines put right.",
            ),
        )
    if not parsed:
        return parsed, Refusal(
            "no_commands", ("Nothing was done: the signed mail holds no command line.",)
        )
    return parsed, None


def unflowed(text: str, *, delsp: bool) -> str:
    """`text` of a `format=flowed` part (RFC 3676) with its soft line breaks undone: mail
    programs (Thunderbird by default) wrap a long line into several, each but the last ending
    in a space, and a wrapped NOTE would otherwise read as a command line and a malformed one.
    A soft break joins only lines of the same quote depth (§4.5); "-- " is never one (§4.3);
    space-stuffing is removed (§4.4); with DelSp=yes the space itself goes too (§4.2)."""
    joined: list[str] = []
    pending: tuple[int, str] | None = None  # quote depth and text of a line that continues
    for line in text.splitlines():
        depth = len(line) - len(line.lstrip(">"))
        quotes, rest = line[:depth], line[depth:]
        rest = rest.removeprefix(" ")
        if pending is not None and pending[0] != depth:
            joined.append(pending[1])
            pending = None
        whole = (pending[1] if pending else quotes) + rest
        if rest.endswith(" ") and rest != "-- ":
            pending = (depth, whole[:-1] if delsp else whole)
        else:
            joined.append(whole)
            pending = None
    if pending is not None:
        joined.append(pending[1])
    return "\n".join(joined)


def _record(
    conn: sqlite3.Connection,
    key: LedgerKey,
    message_hash: str,
    opened: SignedContent,
    outcome: str,
    reason: str,
    now: datetime,
) -> int:
    cursor = conn.execute(
        "INSERT INTO command_mail (received_at, mailbox, uidvalidity, uid, message_id_sha256,"
        " signature_sha256, signer, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now.astimezone(UTC).isoformat(),
            key.mailbox,
            key.uidvalidity,
            key.uid,
            message_hash,
            opened.fingerprint,
            opened.check.signer,
            outcome,
            reason,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _readable(fingerprints: tuple[str, ...], keyring: Keyring, now: datetime) -> list[str]:
    """Those of `fingerprints` whose key in the keyring can be encrypted to at `now`."""
    usable = []
    for fingerprint in fingerprints:
        found = keyring.key(fingerprint)
        if found is not None and found.status(now) is KeyStatus.OK:
            usable.append(normalise_fingerprint(fingerprint))
    return list(dict.fromkeys(usable))


def _answer_done(results: list[tuple[int, CommandResult]]) -> EmailMessage:
    done = sum(1 for _, result in results if result.done)
    lines = [f"Line {number}: {result.line}" for number, result in results]
    return alert_message(f"Your commands: {done} done, {len(results) - done} refused", [*lines, ""])


def _answer_refused(refusal: Refusal) -> EmailMessage:
    return alert_message("Your commands were not acted on", list(refusal.lines))
