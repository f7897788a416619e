"""What the demo prints: its day, step by step, in words a newcomer can follow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.clock import LONDON
from gateway.demo import AT_NINE, BEFORE_NINE, DEMO_MORNING, RECORD_AT, SETUP_AT, DemoRun
from gateway.model import Outcome
from gateway.plan import render_table

_RULE = "-" * 100


def render_summary(run: DemoRun) -> str:
    """The whole summary: each step of the day, then where every produced file is."""
    sections = [
        _introduction(run),
        _setup(run),
        _intake(run),
        _dispatch(run),
        _not_sent(run),
        _at_the_schools(run),
        _record(run),
        _where(run),
    ]
    return "\n\n".join(sections)


def _introduction(run: DemoRun) -> str:
    return "\n".join(
        [
            "Encompass Gateway demo: one morning, on a simulated clock, with synthetic data only",
            f"Workspace: {run.workspace}",
        ]
    )


def _setup(run: DemoRun) -> str:
    keys = run.cast.keys
    keyless = run.cast.keyless
    lines = [
        _heading(SETUP_AT, "the LA's administrator sets up the directory and the keys"),
        "Directory imported from the generated GIAS extract, contacts list and pupil roll:",
        _indent(run.directory.render(max_warnings=5)),
        "",
        "OpenPGP keys made just now with `gpg --quick-gen-key` (never committed anywhere):",
        f"  Navigator: {keys.navigator.user_id}  {keys.navigator.fingerprint}",
        "    secret key in the gateway's GnuPG home: it signs every notification",
        f"  Manager:   {keys.manager.user_id}  {keys.manager.fingerprint}",
        "    public key imported for the high-risk holiday alerts (the next issue); no alert"
        " is due today",
        f"  {len(keys.contacts)} contacts (DSL, deputy DSL, DA Lead) of the "
        f"{len(run.cast.keyed_schools)} schools this morning's spreadsheet notifies: secret "
        "keys in the schools' world, fingerprints pinned in contacts.csv",
        f"  Deliberately WITHOUT any key: {keyless.name} ({keyless.urn}); its notification "
        "must not leave, and must become a no_key exception",
        "",
        f"Public keys imported into the gateway's keyring from {run.workspace / 'keys'}, as "
        "`encompass-gateway keys import` does:",
        *(_indent(line.render()) for line in run.imported),
    ]
    return "\n".join(lines)


def _intake(run: DemoRun) -> str:
    sealing = run.sealing
    lines = [
        _heading(DEMO_MORNING, f"the police spreadsheet {run.sample.workbook.name} arrives"),
        "A decision for every child (recorded, with the audit log):",
        "",
        render_table(run.plan),
        "",
        f"Notifications (one per incident per school) sealed for their recipients: "
        f"{len(sealing.sealed)}; not sealed, for the Navigator: {len(sealing.exceptions)}",
    ]
    return "\n".join(lines)


def _dispatch(run: DemoRun) -> str:
    early = run.early
    lines = [
        _heading(BEFORE_NINE, "dispatch"),
        f"Sent: {len(early.sent)}. Nothing is due before 09:00: {run.waiting_before_nine} sealed "
        "messages wait in the outbox, and no connection was opened.",
        "",
        _heading(AT_NINE, "dispatch"),
        f"Sent: {len(run.at_nine.sent)}, to retry: {len(run.at_nine.retrying)}, "
        f"failed: {len(run.at_nine.exceptions)}, over one SMTP connection to the schools' "
        "mail servers (the demo's server on 127.0.0.1):",
        "",
        _table(
            ("reference", "school", "role", "address", "sent at"),
            [
                (m.reference, m.school, m.role, m.address, f"{m.sent_at.astimezone(LONDON):%H:%M}")
                for m in run.sent
            ],
        ),
    ]
    return "\n".join(lines)


def _not_sent(run: DemoRun) -> str:
    children = [d for d in run.plan.decisions if d.outcome is not Outcome.NOTIFY]
    lines = ["What did not go by email, and why", _RULE]
    lines.append(f"Children ({len(children)}), from the plan above:")
    for decision in children:
        kind = decision.exception_kind.value if decision.exception_kind else ""
        outcome = f"{decision.outcome.value}{': ' + kind if kind else ''}"
        name = decision.child.display_name or "(no name)"
        lines.append(f"  {decision.incident_ref or '-'}  {name}  [{outcome}]")
        lines.append(f"      {decision.reason}")
    lines.append("")
    lines.append(f"Notifications ({len(run.exceptions)}) that could not be sent safely:")
    for excepted in run.exceptions:
        lines.append(f"  {excepted.reference}  {excepted.school}  [exception: {excepted.kind}]")
        lines.append(f"      {excepted.reason}")
    if not run.exceptions:
        lines.append("  none")
    return "\n".join(lines)


def _at_the_schools(run: DemoRun) -> str:
    references = {m.message_id: m.reference for m in run.sent}
    lines = [
        "At the schools: each message opened with its recipient's own secret key",
        _RULE,
    ]
    for copy in run.read:
        signature = (
            "signed by the Navigator: yes"
            if copy.signed_by_navigator
            else "NOT validly signed by the Navigator"
        )
        lines.append(
            f"  {copy.eml.name}  {references.get(copy.message_id, '?')}  {copy.recipient}"
            f"  -> {copy.text.name}  {signature}"
        )
    opened = sum(copy.signed_by_navigator for copy in run.read)
    lines.append(
        f"{opened} of {len(run.sent)} messages sent were received, decrypted and verified."
    )
    return "\n".join(lines)


def _record(run: DemoRun) -> str:
    return "\n".join(
        [
            _heading(RECORD_AT, "the Navigator's record and the audit log"),
            f"Navigator's record: {run.record_rows} rows written to {run.record.name}",
            f"audit verify: {run.audit}",
        ]
    )


def _where(run: DemoRun) -> str:
    ws = run.workspace
    config = run.config
    places = [
        ("configuration", config),
        ("state database", ws / "state" / "gateway.sqlite3"),
        ("police spreadsheet", run.sample.workbook),
        ("messages as received", ws / "mail" / "NNN.eml (envelopes in index.csv)"),
        ("decrypted copies", ws / "decrypted" / "NNN.txt"),
        ("Navigator's record", run.record),
        ("public keys imported", ws / "keys"),
        ("Navigator's public key", ws / "navigator.asc"),
        ("gateway's GnuPG home", run.homes.gateway),
        ("schools' world (their secret keys)", run.homes.schools),
    ]
    width = max(len(label) for label, _ in places)
    lines = ["Where everything is", _RULE]
    lines.extend(f"  {label.ljust(width)}  {path}" for label, path in places)
    first = run.read[0].eml if run.read else ws / "mail" / "001.eml"
    lines += [
        "",
        "Try it yourself:",
        f"  encompass-gateway --config {config} audit verify",
        f"  encompass-gateway --config {config} keys list",
        f"  gpg --homedir {run.homes.schools} --decrypt {first}",
    ]
    return "\n".join(lines)


def _heading(at: datetime, what: str) -> str:
    return f"{at:%a %d %b %Y %H:%M}  {what}\n{_RULE}"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    if not rows:
        return "  (nothing)"
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )
