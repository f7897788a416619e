"""Carrying out the Navigator's commands (gateway/commands.py) on the state database.

`execute` is shared by the signed-mail channel and `encompass-gateway resolve`: each command
either acts — its effect, the resolution row (with what the person wrote, which may be
personal data) and its `command.<verb>` audit entry commit together — or is refused with the
reason and changes nothing but the audit entry that says it was refused. The audit names the
item, the signer's fingerprint and the outcome, never the text a person wrote.

Routing by hand goes through the checks automatic routing makes (the school is in GIAS, open,
in the area, not an early-years setting that is telephoned, and has a contact whose pinned key
is usable) and then the same planning, sealing and dispatch as any notification.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gateway import audit, notification_store
from gateway.approval import approve
from gateway.commands import RESOLVING, Command, Item, ItemKind, Verb
from gateway.config import LoadedConfig
from gateway.directory import SqliteDirectory
from gateway.dispatch import one_dispatcher
from gateway.errors import GatewayError, StateError
from gateway.exception_detail import exception_detail
from gateway.keyring import open_keyring
from gateway.model import Establishment, Notification, Outcome
from gateway.notification_store import NotificationState, notification_from_json
from gateway.notifications import reference_code
from gateway.operations import make_sealer, seal_now
from gateway.outbox import MessageKind, MessageState, get_message
from gateway.recipients import choose_recipients
from gateway.render import uk_datetime
from gateway.resend import resend_to_stand_ins
from gateway.revision_store import (
    Planned,
    WithdrawalRefused,
    plan_notification,
    plan_withdrawal,
)
from gateway.ruleset import Rules, load_rules
from gateway.sealing import key_verdict, seal_for_more
from gateway.store import transaction


class Refused(GatewayError):
    """A well-formed command that cannot be carried out: the item does not exist or is of the
    wrong kind, the school fails a routing check, the notification has already gone…
    Nothing was changed; the message says why, for the Navigator."""


@dataclass(frozen=True)
class CommandResult:
    """What one command did (`done`), or why it was refused, in a line for the Navigator.
    `send_now`: messages were queued due at once, so a dispatch should run now."""

    command: Command
    done: bool
    detail: str
    send_now: bool = False

    @property
    def line(self) -> str:
        return f"{'DONE' if self.done else 'REFUSED'} {self.command}: {self.detail}"


@dataclass(frozen=True)
class _Run:
    conn: sqlite3.Connection
    command: Command
    config: LoadedConfig
    now: datetime
    actor: str
    signer: str | None

    @property
    def code(self) -> str:
        return self.command.item.code

    def record(
        self,
        *,
        outcome: str = "done",
        decision_id: int | None = None,
        reference: str | None = None,
        intake_id: int | None = None,
        **refs: audit.AuditValue,
    ) -> None:
        """The resolution row and its audit entry, inside the caller's transaction."""
        verb = self.command.verb
        text = self.command.argument if verb in _WRITTEN else ""
        self.conn.execute(
            "INSERT INTO resolution (item, verb, decision_id, reference, intake_id, at, actor,"
            " signer, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, seal(?))",
            (
                self.code,
                verb.value,
                decision_id,
                reference,
                intake_id,
                self.now.astimezone(UTC).isoformat(),
                self.actor,
                self.signer,
                text,
            ),
        )
        _audit(self, outcome, **refs)


# The verbs whose argument is free text a person wrote (personal data: the resolution table
# only, never the audit).
_WRITTEN = (Verb.WITHHOLD, Verb.CALLED, Verb.NOTE)


def execute(
    conn: sqlite3.Connection,
    command: Command,
    *,
    config: LoadedConfig,
    now: datetime,
    actor: str,
    signer: str | None,
) -> CommandResult:
    """Carry out `command` at `now` for `actor` (signer: the fingerprint of the key that
    signed the mail it came in; None from the CLI)."""
    run = _Run(conn, command, config, now, actor, signer)
    try:
        detail, send_now = _VERBS[command.verb](run)
    except Refused as refusal:
        with transaction(conn):
            _audit(run, "refused")
        return CommandResult(command, False, str(refusal))
    return CommandResult(command, True, detail, send_now)


def _audit(run: _Run, outcome: str, **refs: audit.AuditValue) -> None:
    audit.append(
        run.conn,
        f"command.{run.command.verb.value.lower()}",
        actor=run.actor,
        at=run.now,
        item=run.code,
        signer=run.signer,
        outcome=outcome,
        **refs,
    )


# --------------------------------------------------------------------------------------
# The items


@dataclass(frozen=True)
class _Decision:
    id: int
    intake_id: int
    incident_ref: str
    outcome: Outcome
    urn: int | None


def _decision(run: _Run) -> _Decision:
    item = run.command.item
    row = run.conn.execute(
        "SELECT id, intake_id, incident_ref, outcome, urn FROM decision WHERE id = ?",
        (item.number,),
    ).fetchone()
    if row is None:
        raise Refused(f"{item.code} is not a child's decision on record")
    return _Decision(
        row["id"], row["intake_id"], row["incident_ref"], Outcome(row["outcome"]), row["urn"]
    )


def _unresolved(run: _Run, decision: _Decision) -> None:
    row = run.conn.execute(
        "SELECT verb, at FROM resolution WHERE decision_id = ? AND verb IN (?, ?, ?)"
        " ORDER BY id LIMIT 1",
        (decision.id, *(verb.value for verb in RESOLVING)),
    ).fetchone()
    if row is not None:
        when = uk_datetime(datetime.fromisoformat(row["at"]))
        raise Refused(f"{run.code} was already resolved ({row['verb']} on {when})")


@dataclass(frozen=True)
class _Notification:
    reference: str
    intake_id: int
    urn: int
    state: str
    due: datetime


def _notification(run: _Run) -> _Notification:
    row = run.conn.execute(
        "SELECT reference, intake_id, urn, state, due FROM notification WHERE reference = ?",
        (run.code,),
    ).fetchone()
    if row is None:
        raise Refused(f"{run.code} is not a notification on record")
    return _Notification(
        row["reference"],
        row["intake_id"],
        row["urn"],
        row["state"],
        datetime.fromisoformat(row["due"]),
    )


def _first_sent(run: _Run, reference: str) -> datetime | None:
    row = run.conn.execute(
        "SELECT min(sent_at) FROM message WHERE reference = ? AND kind = ? AND sent_at IS NOT NULL",
        (reference, MessageKind.NOTIFICATION.value),
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row[0] else None


def _when(due: datetime, now: datetime) -> str:
    return "at once" if due <= now else uk_datetime(due)


# --------------------------------------------------------------------------------------
# The verbs: each returns what it did, and whether something is due to be sent now


def _route(run: _Run) -> tuple[str, bool]:
    decision = _decision(run)
    if decision.outcome is not Outcome.EXCEPTION:
        raise Refused(f"{run.code} is not an exception (its outcome is {decision.outcome.value})")
    _unresolved(run, decision)
    urn = int(run.command.argument)
    rules = load_rules(run.config.rules_dir)
    directory = SqliteDirectory(run.conn)
    school = _routable_school(directory.establishment(urn), urn, rules, run.code)
    detail = exception_detail(run.conn, decision.id)
    if detail is None:
        raise Refused(
            f"{run.code}: the police's details of this child were not kept (a row without an"
            " incident, or recorded before this version): notify the school by hand, then"
            f" WITHHOLD {run.code} with a note of it"
        )
    with open_keyring(run.config.config.gnupg.home) as keyring:
        choice = choose_recipients(
            directory.contacts(urn), lambda contact: key_verdict(keyring, contact, run.now)
        )
    if choice.exception is not None:
        raise Refused(f"school {urn} ({school.name}) cannot be sent it: {choice.reason}")
    due = _due(run, decision, school, rules)
    incident_ref = detail.incident.ref
    candidate = Notification(
        reference_code(incident_ref, urn),
        replace(detail.incident, children=()),
        urn,
        school.name,
        (detail.child,),
        due,
    )
    with transaction(run.conn):
        # As for a corrected spreadsheet: a school already told about the incident is sent a
        # follow-up naming this child (OE-…-2), not a second first notification.
        planned = plan_notification(
            run.conn,
            candidate,
            intake_id=decision.intake_id,
            template=rules.routing.template,
            at=run.now,
            actor=run.actor,
        )
        if planned is Planned.UNCHANGED:
            raise Refused(
                f"{school.name} was already told about this child in incident {incident_ref}"
                f" ({candidate.reference})"
            )
        if planned is Planned.WITHHELD:
            raise Refused(
                f"{candidate.reference} about incident {incident_ref} to {school.name} is"
                " withheld: nothing more is sent to that school about the incident"
            )
        reference = notification_store.chain(run.conn, incident_ref, urn)[-1].notification.reference
        run.record(decision_id=decision.id, reference=reference, urn=urn)
    said = f"{run.code} routed to {school.name} (URN {urn}): notification {reference}"
    if run.config.config.navigator.fingerprint is None:
        return (
            f"{said} planned, to be sealed by the next dispatch, due {_when(due, run.now)}",
            False,
        )
    sealing = seal_now(
        run.conn,
        config=run.config,
        template=rules.routing.template,
        now=run.now,
        actor=run.actor,
    )
    for excepted in sealing.exceptions:
        if excepted.reference == reference:
            return f"{said} planned, but could not be sealed: {excepted.reason}", False
    return f"{said} sealed, to be sent {_when(due, run.now)}", due <= run.now


def _routable_school(
    school: Establishment | None, urn: int, rules: Rules, code: str
) -> Establishment:
    # The checks of gateway/routing.py `decide`, in its order, for a school named by a person.
    if school is None:
        raise Refused(f"school {urn} is not in the GIAS establishment list")
    named = f"school {urn} ({school.name})"
    if not school.is_open:
        raise Refused(f"{named} is closed ({school.status_name or 'closed'} in GIAS)")
    policy = rules.routing
    if school.la_code not in policy.area_la_codes:
        area = ", ".join(str(code) for code in policy.area_la_codes)
        raise Refused(f"{named} is out of area: LA {school.la_code}, not one of {area}")
    if school.la_code in policy.telephone_early_years_la_codes and policy.early_years.includes(
        school
    ):
        number = f" on {school.telephone}" if school.telephone else ""
        raise Refused(
            f"{named} is an early-years setting, telephoned rather than sent mail: telephone its"
            f" DSL{number}, then record it with CALLED {code} <note>"
        )
    return school


def _due(run: _Run, decision: _Decision, school: Establishment, rules: Rules) -> datetime:
    # Due as if routed when the spreadsheet arrived (the protocol's 09:00 is counted from the
    # police's report), and at once when that is already past.
    row = run.conn.execute(
        "SELECT received_at FROM intake WHERE id = ?", (decision.intake_id,)
    ).fetchone()
    arrival = datetime.fromisoformat(row["received_at"])
    due = rules.calendar.due_for(arrival, urn=school.urn, la_code=school.la_code)
    if due.at is not None:
        return max(due.at, run.now)
    assert due.reopens is not None  # a closed Due always says when the school reopens
    if rules.routing.closed_school == "withhold" and due.reopens > run.now:
        raise Refused(
            f"school {school.urn} ({school.name}) is closed ({due.closed_for}) until"
            f" {uk_datetime(due.reopens)}, and the protocol withholds notifications while a"
            " school is closed"
        )
    return max(due.reopens, run.now)


def _withhold(run: _Run) -> tuple[str, bool]:
    if run.command.item.kind is ItemKind.CHILD:
        decision = _decision(run)
        if decision.outcome is Outcome.NOTIFY:
            raise Refused(
                f"{run.code} is to be notified: withhold its notification"
                f" {reference_code(decision.incident_ref, decision.urn or 0)} instead"
            )
        if decision.outcome is Outcome.WITHHOLD:
            raise Refused(f"{run.code} is already withheld by the rules")
        _unresolved(run, decision)
        with transaction(run.conn):
            run.record(decision_id=decision.id)
        return f"{run.code} withheld: nothing will be sent about this child", False
    notification = _notification(run)
    if notification.state == NotificationState.WITHHELD:
        raise Refused(f"{run.code} is already withheld")
    sent = _first_sent(run, notification.reference)
    if sent is not None:
        raise Refused(f"{run.code} was already sent at {uk_datetime(sent)}: it cannot be unsent")
    if notification.state == NotificationState.SENDING:
        raise Refused(f"{run.code} is being sent now: try again in a minute")
    # Its follow-ups not yet sent go with it: an amendment or a child added would tell the
    # school about the incident the Navigator withheld.
    follow_ups = [
        row[0]
        for row in run.conn.execute(
            "SELECT reference FROM notification WHERE follows = ? AND state NOT IN (?, ?, ?)"
            " ORDER BY rowid",
            (
                notification.reference,
                NotificationState.SENT,
                NotificationState.SENDING,
                NotificationState.WITHHELD,
            ),
        )
    ]
    try:
        with one_dispatcher(run.conn), transaction(run.conn):
            cancelled = 0
            for reference in (notification.reference, *follow_ups):
                cancelled += _cancel_messages(run, reference)
                notification_store.mark(
                    run.conn, reference, NotificationState.WITHHELD, at=run.now, actor=run.actor
                )
            run.record(reference=notification.reference, messages=cancelled)
    except StateError as busy:
        raise Refused(f"{run.code}: {busy}") from None
    with_them = f", with its follow-ups {', '.join(follow_ups)}" if follow_ups else ""
    return (
        f"{run.code} withheld{with_them}: its {cancelled} queued messages will not be sent",
        False,
    )


def _cancel_messages(run: _Run, reference: str) -> int:
    rows = run.conn.execute(
        "SELECT id FROM message WHERE reference = ? AND kind = ? AND state IN (?, ?)",
        (
            reference,
            MessageKind.NOTIFICATION.value,
            MessageState.SEALED.value,
            MessageState.FAILED.value,
        ),
    ).fetchall()
    for row in rows:
        message = get_message(run.conn, row["id"])
        run.conn.execute(
            "UPDATE message SET state = ?, next_attempt = NULL WHERE id = ?",
            (MessageState.CANCELLED.value, message.id),
        )
        audit.append(
            run.conn,
            "message.cancelled",
            actor=run.actor,
            at=run.now,
            reference=reference,
            message_id=message.message_id,
            contact_role=message.contact_role,
        )
    return len(rows)


def _called(run: _Run) -> tuple[str, bool]:
    decision = _decision(run)
    if decision.outcome not in (Outcome.TELEPHONE, Outcome.EXCEPTION):
        raise Refused(
            f"{run.code} is not a telephone task or an exception (its outcome is"
            f" {decision.outcome.value})"
        )
    _unresolved(run, decision)
    with transaction(run.conn):
        run.record(decision_id=decision.id)
    return f"{run.code}: the call is recorded", False


def _resend(run: _Run) -> tuple[str, bool]:
    notification = _notification(run)
    state = notification.state
    if state in (NotificationState.PLANNED, NotificationState.SEALED):
        raise Refused(
            f"{run.code} has not been sent yet: it is due {_when(notification.due, run.now)}"
        )
    if state == NotificationState.WITHHELD:
        raise Refused(f"{run.code} was withheld")
    if state in (NotificationState.SENDING, NotificationState.FAILED):
        raise Refused(f"{run.code} is being sent (or waiting for a retry): try again later")
    content = json.loads(
        run.conn.execute(
            "SELECT unseal(content) AS content FROM notification WHERE reference = ?",
            (notification.reference,),
        ).fetchone()["content"]
    )
    if content.get("purged"):
        # Only the skeleton is left (gateway/retention.py): sealed again it would be blank.
        raise Refused(
            f"{run.code}: its details were purged under the retention policy, so it cannot be"
            " sent again; ask the police for the incident's details"
        )
    settings = run.config.config
    template = load_rules(run.config.rules_dir).routing.template
    rows = run.conn.execute(
        "SELECT id, recipient FROM message WHERE reference = ? AND kind = ? ORDER BY id",
        (notification.reference, MessageKind.NOTIFICATION.value),
    ).fetchall()
    directory = SqliteDirectory(run.conn)
    with open_keyring(settings.gnupg.home) as keyring:
        sealer = make_sealer(run.config, keyring, template=template)
        stored = notification_from_json(content)
        with transaction(run.conn):
            if run.command.argument:
                if not rows:
                    raise Refused(
                        f"{run.code} was never sealed for anyone: RESEND {run.code} seals it"
                        " for the school's contacts whose keys can now be used"
                    )
                resent = resend_to_stand_ins(
                    run.conn,
                    get_message(run.conn, rows[-1]["id"]),
                    cause="navigator",
                    directory=directory,
                    sealer=sealer,
                    now=run.now,
                    actor=run.actor,
                )
                if not resent.roles:
                    raise Refused(f"{run.code} has nobody else to go to: {resent.reason}")
                said = f"to the {', '.join(resent.roles)}"
            else:
                sent_to = {row["recipient"].strip().lower() for row in rows}
                contacts = [
                    contact
                    for contact in directory.contacts(notification.urn)
                    if not rows or contact.email.strip().lower() in sent_to
                ]
                choice = choose_recipients(
                    contacts, lambda contact: key_verdict(keyring, contact, run.now)
                )
                if choice.exception is not None:
                    raise Refused(f"{run.code} cannot be sent again: {choice.reason}")
                seal_for_more(
                    run.conn,
                    stored,
                    choice,
                    sealer=sealer,
                    now=run.now,
                    actor=run.actor,
                    copy=len(rows),
                )
                said = f"to the {', '.join(c.role.value for c in choice.recipients)}"
            if state == NotificationState.EXCEPTION:
                # The Navigator has resolved it: from now on its messages decide its state.
                notification_store.mark(
                    run.conn,
                    notification.reference,
                    NotificationState.SENDING,
                    at=run.now,
                    actor=run.actor,
                )
            run.record(reference=notification.reference, deputy=bool(run.command.argument))
    return f"{run.code} sealed again {said}, to be sent at once", True


def _note(run: _Run) -> tuple[str, bool]:
    item = run.command.item
    decision_id = reference = intake_id = None
    if item.kind is ItemKind.CHILD:
        decision_id = _decision(run).id
    elif item.kind is ItemKind.NOTIFICATION:
        reference = _notification(run).reference
    else:
        intake_id = _batch(run, item)
    with transaction(run.conn):
        run.record(decision_id=decision_id, reference=reference, intake_id=intake_id)
    return f"noted on {run.code}", False


def _batch(run: _Run, item: Item) -> int:
    row = run.conn.execute("SELECT id FROM intake WHERE id = ?", (item.number,)).fetchone()
    if row is None:
        raise Refused(f"{item.code} is not a spreadsheet on record")
    return int(row["id"])


def _approve(run: _Run) -> tuple[str, bool]:
    item = run.command.item
    if item.kind is ItemKind.BATCH:
        _batch(run, item)
    elif item.kind is ItemKind.NOTIFICATION:
        _notification(run)
    with transaction(run.conn):
        approved = approve(run.conn, item, now=run.now, actor=run.actor, signer=run.signer)
        if not approved:
            raise Refused(f"nothing in {run.code} is waiting for approval")
        run.record(
            reference=item.code if item.kind is ItemKind.NOTIFICATION else None,
            intake_id=item.number if item.kind is ItemKind.BATCH else None,
            approved=len(approved),
        )
    due = run.conn.execute(
        "SELECT min(due) FROM notification WHERE reference IN"
        f" ({', '.join('?' for _ in approved)})",
        approved,
    ).fetchone()[0]
    send_now = datetime.fromisoformat(due) <= run.now
    when = "at once" if send_now else "when due"
    # A follow-up goes only after the notification it follows (outbox.HELD): say which wait.
    behind = [
        f"{reference} waits for {follows}, not approved yet"
        for reference, follows in run.conn.execute(
            "SELECT n.reference, n.follows FROM notification n JOIN approval a"
            " ON a.reference = n.follows AND a.approved_at IS NULL"
            " JOIN notification w ON w.reference = n.follows AND w.state IN (?, ?)"
            f" WHERE n.reference IN ({', '.join('?' for _ in approved)}) ORDER BY n.reference",
            (NotificationState.PLANNED, NotificationState.SEALED, *approved),
        )
    ]
    waits = f" ({'; '.join(behind)})" if behind else ""
    return f"{len(approved)} notifications approved, to be sent {when}{waits}", send_now


def _withdraw(run: _Run) -> tuple[str, bool]:
    # The notice and the Navigator's resolution commit together; sealing follows, as for any
    # notification (a crash between leaves it planned, and the next dispatch seals it).
    with transaction(run.conn):
        try:
            notice = plan_withdrawal(run.conn, run.code, now=run.now, actor=run.actor)
        except WithdrawalRefused as refusal:
            raise Refused(str(refusal)) from None
        run.record(reference=run.code, withdrawal=notice.reference)
    template = load_rules(run.config.rules_dir).routing.template
    sealing = seal_now(run.conn, config=run.config, template=template, now=run.now, actor=run.actor)
    named = f"{len(notice.children)} {'child' if len(notice.children) == 1 else 'children'}"
    for excepted in sealing.exceptions:
        if excepted.reference == notice.reference:
            return (
                f"withdrawal notice {notice.reference} ({named}) could not be sealed for the"
                f" school: {excepted.reason}; it is listed with the notifications not sent",
                False,
            )
    send_now = notice.due <= run.now
    when = "at once" if send_now else f"{uk_datetime(notice.due)}, after what it withdraws"
    return f"withdrawal notice {notice.reference} ({named}) sealed, to be sent {when}", send_now


_VERBS: dict[Verb, Callable[[_Run], tuple[str, bool]]] = {
    Verb.ROUTE: _route,
    Verb.WITHHOLD: _withhold,
    Verb.CALLED: _called,
    Verb.RESEND: _resend,
    Verb.NOTE: _note,
    Verb.APPROVE: _approve,
    Verb.WITHDRAW: _withdraw,
}
