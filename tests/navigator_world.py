"""A morning's state for the Navigator's commands: a directory with real pinned keys, one
police spreadsheet taken in at 07:00 on Monday 2 March 2026 through the gateway's own intake
(`operations.take_in`: decisions, exception details, notifications sealed), and an SMTP sink.

Shared by tests/test_commands.py, tests/test_approval.py and tests/test_resolve_cli.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from mail_world import imap_block
from pgp_keys import KeyFactory, PgpKey
from smtp_sink import SmtpSink

from gateway.clock import LONDON
from gateway.commands import parse_command
from gateway.config import (
    ApprovalSection,
    Config,
    GnupgSection,
    ImapSection,
    LoadedConfig,
    Mailboxes,
    ManagerSection,
    NavigatorSection,
    SmtpSection,
    StateSection,
)
from gateway.keyring import Keyring, open_keyring
from gateway.model import (
    Candidate,
    ChildRecord,
    CrimeStatus,
    Decision,
    ExceptionKind,
    Incident,
    Outcome,
    Risk,
    SourceRow,
    SpreadsheetIntake,
)
from gateway.notifications import reference_code
from gateway.operations import dispatch_now, take_in
from gateway.plan import Plan
from gateway.resolutions import CommandResult, execute
from gateway.ruleset import load_rules
from gateway.store import open_state

ARRIVAL = datetime(2026, 3, 2, 7, 0, tzinfo=LONDON)  # Monday, a school day
BEFORE_NINE = datetime(2026, 3, 2, 8, 0, tzinfo=LONDON)
NINE = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
AFTER_NINE = datetime(2026, 3, 2, 9, 40, tzinfo=LONDON)

ELM, OAK, ACORN, FARAWAY, SHUT, KEYLESS = 110001, 110002, 110003, 110004, 110005, 110006
# urn: (name, LA, phase, open)
SCHOOLS = {
    ELM: ("Elm Primary", 873, "Primary", True),
    OAK: ("Oak Academy", 874, "Secondary", True),
    ACORN: ("Acorn Nursery", 873, "Nursery", True),
    FARAWAY: ("Faraway School", 926, "Primary", True),
    SHUT: ("Shut Primary", 873, "Primary", False),
    KEYLESS: ("Keyless Primary", 874, "Primary", True),
}
ELM_DSL = "dsl@elm.example.org"
ELM_DEPUTY = "deputy@elm.example.org"
OAK_DSL = "dsl@oak.example.org"


def _child(forename: str, surname: str, row: int, dob: date = date(2016, 5, 4)) -> ChildRecord:
    return ChildRecord(
        forename,
        surname,
        dob,
        SourceRow("police.xlsx", "Daily", row),
        involvement="Present",
        relationship="Mother and partner",
    )


AVA = _child("Ava", "Ashdown", 5)  # ambiguous: an exception for the Navigator
CAL = _child("Cal", "Carver", 6, date(2022, 1, 9))  # early years: a telephone task
FINN = _child("Finn", "Fairley", 7)  # notified to Elm Primary
INCIDENTS = (
    Incident(
        "CC-1001",
        datetime(2026, 2, 28, 22, 15, tzinfo=LONDON),
        Risk.MEDIUM,
        CrimeStatus.CRIME,
        (AVA,),
        circumstances="Raised voices reported by a neighbour",
    ),
    Incident("CC-1002", None, Risk.STANDARD, CrimeStatus.NON_CRIME, (CAL,), time_known=False),
    Incident(
        "CC-1005",
        datetime(2026, 3, 1, 19, 5, tzinfo=LONDON),
        Risk.STANDARD,
        CrimeStatus.NON_CRIME,
        (FINN,),
        circumstances="Argument between adults",
    ),
)
DECISIONS = (
    Decision(
        "CC-1001",
        AVA,
        Outcome.EXCEPTION,
        "More than one pupil could be this child.",
        exception_kind=ExceptionKind.AMBIGUOUS,
        candidates=(Candidate(ELM, "Elm Primary", "A123", 90, ("dob",)),),
    ),
    Decision(
        "CC-1002",
        CAL,
        Outcome.TELEPHONE,
        "Acorn Nursery is an early-years setting: telephone its DSL",
        ACORN,
        "Acorn Nursery",
        NINE,
        telephone="01632 960003",
    ),
    Decision("CC-1005", FINN, Outcome.NOTIFY, "Notify Elm Primary", ELM, "Elm Primary", NINE),
)
FINN_NOTIFICATION = reference_code("CC-1005", ELM)
AVA_AT_ELM = reference_code("CC-1001", ELM)


@dataclass
class World:
    conn: sqlite3.Connection
    config: LoadedConfig
    keyring: Keyring
    keys: dict[str, PgpKey]
    sink: SmtpSink
    intake_id: int

    def decision_id(self, incident_ref: str) -> int:
        row = self.conn.execute(
            "SELECT id FROM decision WHERE incident_ref = ?", (incident_ref,)
        ).fetchone()
        return int(row["id"])

    def run(
        self, line: str, *, now: datetime = BEFORE_NINE, signer: str | None = None
    ) -> CommandResult:
        return execute(
            self.conn,
            parse_command(line),
            config=self.config,
            now=now,
            actor="test",
            signer=signer,
        )

    def dispatch(self, now: datetime) -> int:
        _, report = dispatch_now(self.conn, config=self.config, now=now, actor="test")
        return len(report.sent)


def make_world(
    tmp_path: Path,
    *,
    key_factory: KeyFactory,
    navigator_key: PgpKey,
    gnupg_home: Callable[[], Path],
    sink: SmtpSink,
    approval: bool = False,
    manager: PgpKey | None = None,
    command_signers: Sequence[PgpKey] = (),
    mailbox: ImapSection | None = None,
) -> World:
    """The morning's state. `command_signers` are pinned for signed commands (their public
    keys in the gateway's keyring); `mailbox` is the Navigator's mailbox to poll."""
    home = gnupg_home()
    keyring = open_keyring(home)
    navigator_key.install_secret(keyring)
    for signer in command_signers:
        if signer.fingerprint != navigator_key.fingerprint:
            signer.install_public(keyring)
    signers = tuple(signer.fingerprint for signer in command_signers)
    config = LoadedConfig(
        tmp_path / "gateway.toml",
        Config(
            state=StateSection(database=tmp_path / "state.sqlite3"),
            gnupg=GnupgSection(home=home),
            navigator=NavigatorSection(
                email=navigator_key.email,
                fingerprint=navigator_key.fingerprint,
                command_signers=signers,
            ),
            manager=ManagerSection(email=manager.email, fingerprint=manager.fingerprint)
            if manager is not None
            else None,
            smtp=SmtpSection(host="127.0.0.1", port=sink.port, tls="none"),
            approval=ApprovalSection(required=approval),
            mailboxes=Mailboxes(navigator=mailbox) if mailbox is not None else None,
        ),
    )
    # The same settings as a file, for the command line.
    manager_section = (
        f'[manager]\nemail = "{manager.email}"\nfingerprint = "{manager.fingerprint}"\n'
        if manager is not None
        else ""
    )
    assert config.source is not None
    config.source.write_text(
        f'[state]\ndatabase = "{config.database}"\n'
        f'[gnupg]\nhome = "{home}"\n'
        f'[navigator]\nemail = "{navigator_key.email}"\n'
        f'fingerprint = "{navigator_key.fingerprint}"\n'
        f"command_signers = {json.dumps(list(signers))}\n"
        f"{manager_section}"
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
        f"[approval]\nrequired = {str(approval).lower()}\n"
        f"{imap_block('navigator', mailbox) if mailbox is not None else ''}",
        encoding="utf-8",
    )
    conn = open_state(config.database)
    for urn, (name, la, phase, is_open) in SCHOOLS.items():
        conn.execute(
            "INSERT INTO establishment (urn, name, la_code, la_name, type_name, phase_name,"
            " status_name, is_open, postcode, telephone) VALUES (?, ?, ?, '', '', ?, ?, ?, '',"
            " '01632 960000')",
            (urn, name, la, phase, "Open" if is_open else "Closed", int(is_open)),
        )
    keys: dict[str, PgpKey] = {}
    contacts = [
        (ELM, "dsl", ELM_DSL),
        (ELM, "deputy_dsl", ELM_DEPUTY),
        (OAK, "dsl", OAK_DSL),
        (FARAWAY, "dsl", "dsl@faraway.example.org"),
        (SHUT, "dsl", "dsl@shut.example.org"),
        (ACORN, "dsl", "dsl@acorn.example.org"),
    ]
    for urn, role, email in contacts:
        keys[email] = key_factory.make(email)
        keys[email].install_public(keyring)
        conn.execute(
            "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
            " VALUES (?, ?, 'A Contact', ?, '07700 900001', ?)",
            (urn, role, email, keys[email].fingerprint),
        )
    conn.execute(
        "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
        " VALUES (?, 'dsl', 'No Key', 'dsl@keyless.example.org', '', '')",
        (KEYLESS,),
    )
    rules = load_rules(config.rules_dir)
    intake = SpreadsheetIntake("police.xlsx", "ab" * 32, INCIDENTS)
    plan = Plan("police.xlsx", "ab" * 32, ARRIVAL, DECISIONS)
    taken = take_in(conn, intake, plan, config=config, rules=rules, actor="test")
    return World(conn, config, keyring, keys, sink, taken.recorded.intake_id)
