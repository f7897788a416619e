"""The police return sheet: the police's own workbook sent back with each child's outcome,
built from real .xlsx files (tests/police_workbooks.py) and, once every notification has
gone, sealed to the police key that signed the mail."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import pytest
from invariants import assert_sealed
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from pgp_keys import KeyFactory, PgpKey
from police_workbooks import HEADERS, LONG_HEADER, RULES_DIR, long_sheet, read, xlsx
from smtp_sink import SmtpSink

from gateway import notification_store, outbox
from gateway.clock import LONDON
from gateway.config import (
    Config,
    DispatchSection,
    GnupgSection,
    LoadedConfig,
    NavigatorSection,
    PoliceSection,
    SmtpSection,
    StateSection,
)
from gateway.keyring import Keyring
from gateway.model import Decision, Outcome, SourceRow
from gateway.notification_store import NotificationState
from gateway.operations import dispatch_now, make_sealer, take_in
from gateway.outbox import MessageKind
from gateway.own_mail import own_reference
from gateway.plan import Plan
from gateway.return_sheet import (
    OUTCOMES_SHEET,
    MailSource,
    ReturnReport,
    ReturnRow,
    build_return_sheet,
    has_pending_returns,
    queue_return_sheets,
)
from gateway.ruleset import load_rules
from gateway.store import open_state, transaction

SENT = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)  # 09:00 in London (GMT)
SUMMER_SENT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # 09:00 in London (BST)
WIDE_HEADER = ["Incident Ref", "Date", "Child 1 Name", "Child 1 DOB", "Child 2 Name", "Child 2 DOB"]


def notified(source: SourceRow, *, at: datetime = SENT, ref: str = "CC-1") -> ReturnRow:
    return ReturnRow(
        source=source,
        incident_ref=ref,
        school="Elm Primary",
        urn=100001,
        notified="DSL: dsl@elm.example.org\nDA Lead: da@elm.example.org",
        sent_at=at,
        outcome="Notified",
        reason="Notify Elm Primary by 09:00",
    )


def withheld(source: SourceRow, *, ref: str = "CC-2", reason: str = "Out of area") -> ReturnRow:
    return ReturnRow(source, ref, "Faraway School", 100004, "", None, "Not sent", reason)


def opened(data: bytes) -> dict[str, Worksheet]:
    book = load_workbook(BytesIO(data))
    return {sheet.title: sheet for sheet in book.worksheets if isinstance(sheet, Worksheet)}


def row_values(sheet: Worksheet, row: int) -> list[object]:
    return [cell.value for cell in sheet[row]]


def built(data: bytes, rows: Sequence[ReturnRow]) -> dict[str, Worksheet]:
    return opened(build_return_sheet(data, rows, headers=HEADERS))


def test_each_child_row_gains_school_notified_time_and_outcome_at_the_right() -> None:
    data = long_sheet(
        ["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "04/05/2016"],
        ["CC-2", "01/03/2026", "23:00", "Low", "Crime", "Dee Sample", "09/01/2015"],
    )
    sources = [child.source for incident in read(data).incidents for child in incident.children]
    sheets = built(data, [notified(sources[0]), withheld(sources[1])])

    sheet = sheets["Incidents"]
    assert row_values(sheet, 1) == [
        *LONG_HEADER,
        "School",
        "URN",
        "DSL/DA Lead notified",
        "Time sent",
        "Outcome",
    ]
    assert row_values(sheet, 2)[len(LONG_HEADER) :] == [
        "Elm Primary",
        100001,
        "DSL: dsl@elm.example.org\nDA Lead: da@elm.example.org",
        datetime(2026, 3, 2, 9, 0, 5),
        "Notified",
    ]
    assert row_values(sheet, 3)[len(LONG_HEADER) :] == [
        "Faraway School",
        100004,
        None,
        None,
        "Not sent",
    ]
    # The police's own cells are as they sent them.
    assert row_values(sheet, 2)[: len(LONG_HEADER)] == row_values(opened(data)["Incidents"], 2)


def test_times_are_london_wall_clock_in_summer_too() -> None:
    data = long_sheet(["CC-1", "01/06/2026", "22:15", "Medium", "Crime", "Ava Example", "4/5/16"])
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source, at=SUMMER_SENT)])["Incidents"]

    assert sheet.cell(row=2, column=len(LONG_HEADER) + 4).value == datetime(2026, 6, 1, 9, 0)
    assert sheet.cell(row=2, column=len(LONG_HEADER) + 4).number_format == "dd/mm/yyyy hh:mm"


def test_header_row_below_title_rows_is_the_one_given_columns() -> None:
    data = xlsx(
        (
            "Daily",
            [
                ["Operation Encompass daily return"],
                [],
                LONG_HEADER,
                ["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "04/05/2016"],
            ],
        )
    )
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source)])["Daily"]

    assert sheet.cell(row=3, column=len(LONG_HEADER) + 1).value == "School"
    assert sheet.cell(row=1, column=len(LONG_HEADER) + 1).value is None
    assert sheet.cell(row=4, column=len(LONG_HEADER) + 5).value == "Notified"


def test_child_n_layout_gains_child_n_columns_on_the_incident_row() -> None:
    data = xlsx(
        (
            "Incidents",
            [WIDE_HEADER, ["CC-1", "01/03/2026", "Ava Example", "04/05/2016", "Dee Example", ""]],
        )
    )
    (incident,) = read(data).incidents
    first, second = (child.source for child in incident.children)
    assert (first.group, second.group) == (1, 2)
    sheet = built(data, [notified(first), withheld(second, ref="CC-1")])["Incidents"]

    added = row_values(sheet, 1)[len(WIDE_HEADER) :]
    assert added == [
        "Child 1 School",
        "Child 1 URN",
        "Child 1 DSL/DA Lead notified",
        "Child 1 Time sent",
        "Child 1 Outcome",
        "Child 2 School",
        "Child 2 URN",
        "Child 2 DSL/DA Lead notified",
        "Child 2 Time sent",
        "Child 2 Outcome",
    ]
    outcomes = row_values(sheet, 2)[len(WIDE_HEADER) :]
    assert outcomes[0] == "Elm Primary" and outcomes[4] == "Notified"
    assert outcomes[5] == "Faraway School" and outcomes[9] == "Not sent"


def test_every_child_is_also_on_a_sheet_of_its_own_with_the_reason() -> None:
    data = xlsx(
        (
            "Incidents",
            [WIDE_HEADER, ["CC-1", "01/03/2026", "Ava Example", "04/05/2016", "Dee Example", ""]],
        )
    )
    (incident,) = read(data).incidents
    first, second = (child.source for child in incident.children)
    sheets = built(data, [notified(first), withheld(second, ref="CC-1")])

    outcomes = sheets[OUTCOMES_SHEET]
    assert row_values(outcomes, 1) == [
        "Sheet",
        "Row",
        "Incident ref",
        "Child group",
        "School",
        "URN",
        "DSL/DA Lead notified",
        "Time sent",
        "Outcome",
        "Reason",
    ]
    assert row_values(outcomes, 3) == [
        "Incidents",
        2,
        "CC-1",
        2,
        "Faraway School",
        100004,
        None,
        None,
        "Not sent",
        "Out of area",
    ]
    assert outcomes.max_row == 3


def test_text_that_reads_as_a_formula_is_written_as_text() -> None:
    data = long_sheet(["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "4/5/16"])
    (incident,) = read(data).incidents
    hostile = ReturnRow(
        incident.children[0].source,
        '=HYPERLINK("http://evil.example")',
        "+Elm Primary",
        100001,
        "@dsl",
        None,
        "-Not sent",
        "=1+1",
    )
    book = load_workbook(BytesIO(build_return_sheet(data, [hostile], headers=HEADERS)))

    written = [
        cell
        for sheet in book.worksheets
        for line in sheet.iter_rows()
        for cell in line
        if cell.value is not None
    ]
    assert not [cell.coordinate for cell in written if cell.data_type == "f"]
    outcomes = book[OUTCOMES_SHEET]
    assert outcomes["C2"].value == '\'=HYPERLINK("http://evil.example")'
    assert outcomes["E2"].value == "'+Elm Primary"
    assert outcomes["J2"].value == "'=1+1"


def test_a_sheet_without_a_header_the_rules_know_still_lists_its_children() -> None:
    data = xlsx(("Notes", [["free text"], ["more"]]))
    source = SourceRow("daily.xlsx", "Notes", 2)
    sheets = built(data, [withheld(source)])

    assert sheets["Notes"].max_column == 1
    assert row_values(sheets[OUTCOMES_SHEET], 2)[:3] == ["Notes", 2, "CC-2"]


def test_date_cells_of_the_police_survive_the_round_trip() -> None:
    data = long_sheet(["CC-1", date(2026, 3, 1), "22:15", "Medium", "Crime", "Ava", "4/5/16"])
    (incident,) = read(data).incidents
    sheet = built(data, [notified(incident.children[0].source)])["Incidents"]

    assert sheet["B2"].value == datetime(2026, 3, 1)


# ======================================================================================
# Sending it back: a spreadsheet taken in from the police's mail, its notification sent,
# and the return sheet queued to the police sender, sealed to the key that signed the mail.

POLICE = "desk@police.example.org"
DSL_ADDRESS = "dsl@elm.example.org"
DOMAIN = "gateway.example.org"
ARRIVAL = datetime(2026, 3, 2, 6, 10, tzinfo=LONDON)
DUE = datetime(2026, 3, 2, 9, 0, tzinfo=LONDON)
NOW = datetime(2026, 3, 2, 9, 5, tzinfo=LONDON)
ELM, FARAWAY = 100001, 100004
DISPATCH = DispatchSection(domain=DOMAIN)
AVA_DOB = date(2016, 5, 4)
DAILY = long_sheet(
    ["CC-1", "01/03/2026", "22:15", "Medium", "Crime", "Ava Example", "04/05/2016"],
    ["CC-2", "01/03/2026", "23:00", "Low", "Crime", "Dee Sample", "09/01/2015"],
)


@pytest.fixture
def police_key(key_factory: KeyFactory) -> PgpKey:
    return key_factory.make(POLICE, name="MASH desk")


@dataclass
class Mailed:
    """A state database holding one spreadsheet taken in from the police's mail."""

    conn: sqlite3.Connection
    config: LoadedConfig
    keyring: Keyring
    intake_id: int
    reference: str  # Ava's notification to Elm Primary

    def seal_by_hand(self) -> int:
        """What sealing does, without a school key: the notification's message is stored,
        for the DSL the directory lists (dispatch sends only to a contact still listed)."""
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO contact (urn, role, name, email, phone, fingerprint)"
                " SELECT ?, 'dsl', 'Elm DSL', ?, '', ? WHERE NOT EXISTS"
                " (SELECT 1 FROM contact WHERE email = ?)",
                (ELM, DSL_ADDRESS, "A" * 40, DSL_ADDRESS),
            )
            notification_store.mark(
                self.conn, self.reference, NotificationState.SEALED, at=ARRIVAL, actor="test"
            )
            message_id = outbox.message_id_for(self.reference, DSL_ADDRESS, DOMAIN)
            return outbox.store_sealed(
                self.conn,
                reference=self.reference,
                contact_role="dsl",
                recipient=DSL_ADDRESS,
                fingerprint="A" * 40,
                message_id=message_id,
                return_path=outbox.return_path_for(message_id, "bounces", DOMAIN),
                due=DUE,
                body=b"Subject: sealed elsewhere\r\n\r\nsealed\r\n",
                sealed_at=ARRIVAL,
                actor="test",
            )

    def send(self) -> None:
        row = self.seal_by_hand()
        outbox.mark_sending(self.conn, row, at=DUE, actor="test")
        outbox.mark_sent(self.conn, row, sent_at=DUE, actor="test")

    def queue(self) -> ReturnReport:
        rules = load_rules(RULES_DIR)
        return queue_return_sheets(
            self.conn,
            police=self.config.config.police,
            sealer=make_sealer(self.config, self.keyring, template=rules.routing.template),
            headers=rules.headers,
            now=NOW,
            actor="test",
        )

    def return_messages(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM message WHERE kind = ?", (MessageKind.RETURN_SHEET.value,)
        ).fetchall()

    def audit(self, event: str) -> list[dict[str, object]]:
        rows = self.conn.execute("SELECT data FROM audit WHERE event = ?", (event,)).fetchall()
        return [json.loads(row["data"]) for row in rows]


def mail_day(
    tmp_path: Path,
    keyring: Keyring,
    navigator_key: PgpKey,
    police_key: PgpKey,
    *,
    signer: str | None = "police",
    source: bool = True,
    smtp: SmtpSink | None = None,
) -> Mailed:
    police_key.install_public(keyring)
    database = tmp_path / "state.sqlite3"
    settings = Config(
        state=StateSection(database=database),
        gnupg=GnupgSection(home=keyring.home),
        navigator=NavigatorSection(
            email="navigator@mash.example.org", fingerprint=navigator_key.fingerprint
        ),
        police=PoliceSection(senders=(POLICE,), fingerprints=(police_key.fingerprint,)),
        smtp=smtp.smtp_section() if smtp else SmtpSection(),
        dispatch=DISPATCH,
    )
    conn = open_state(database)
    intake = read(DAILY)
    ava, dee = (child for incident in intake.incidents for child in incident.children)
    decisions = (
        Decision(
            "CC-1", ava, Outcome.NOTIFY, "Notify Elm Primary by 09:00", ELM, "Elm Primary", DUE
        ),
        Decision("CC-2", dee, Outcome.WITHHOLD, "Out of area", FARAWAY, "Faraway School"),
    )
    plan = Plan(intake.file, intake.sha256, ARRIVAL, decisions)
    # Taken in before any school key is in place: sealing is left to the test.
    unsealed = settings.model_copy(update={"navigator": NavigatorSection()})
    fingerprint = police_key.fingerprint if signer == "police" else signer
    taken = take_in(
        conn,
        intake,
        plan,
        config=LoadedConfig(None, unsealed),
        rules=load_rules(RULES_DIR),
        actor="test",
        source=MailSource(DAILY, POLICE, fingerprint) if source else None,
    )
    (reference,) = [row["reference"] for row in conn.execute("SELECT reference FROM notification")]
    return Mailed(conn, LoadedConfig(None, settings), keyring, taken.recorded.intake_id, reference)


def attached_workbook(inner: EmailMessage) -> dict[str, Worksheet]:
    (attachment,) = list(inner.iter_attachments())
    assert attachment.get_content_type() == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert attachment.get_filename() == "daily - outcomes.xlsx"
    data = attachment.get_content()
    assert isinstance(data, bytes)
    return opened(data)


def test_police_get_their_sheet_back_sealed_to_their_key_once_every_notification_has_gone(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    police_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
    smtp_sink: SmtpSink,
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key, smtp=smtp_sink)
    day.seal_by_hand()

    _, report = dispatch_now(day.conn, config=day.config, now=NOW, actor="test")

    assert len(report.sent) == 2  # Ava's notification, then the return sheet it settled
    (returned,) = [r for r in smtp_sink.received if r.rcpt_tos == (POLICE,)]
    (message,) = day.return_messages()
    assert message["fingerprint"] == police_key.fingerprint
    assert message["state"] == "sent"
    inner = assert_sealed(
        returned.data,
        recipient_home_or_keyring=recipient_home(police_key),
        navigator_fingerprint=navigator_key.fingerprint,
        reference=own_reference(MessageKind.RETURN_SHEET, f"return-sheet/{day.intake_id}"),
        must_contain=[],
        must_not_contain=["Ava Example", "Dee Sample"],
        dates_of_birth=[AVA_DOB],
    )
    sheet = attached_workbook(inner)["Incidents"]
    assert row_values(sheet, 1)[len(LONG_HEADER) :] == [
        "School",
        "URN",
        "DSL/DA Lead notified",
        "Time sent",
        "Outcome",
    ]
    assert row_values(sheet, 2)[len(LONG_HEADER) :] == [
        "Elm Primary",
        ELM,
        f"DSL: {DSL_ADDRESS}",
        NOW.replace(tzinfo=None),  # sent by this dispatch, London time
        "Notified",
    ]
    assert row_values(sheet, 3)[len(LONG_HEADER) :] == [
        "Faraway School",
        FARAWAY,
        None,
        None,
        "Not sent",
    ]
    (queued,) = day.audit("return_sheet.queued")
    assert POLICE not in json.dumps(queued)


def test_no_return_sheet_while_a_notification_is_still_sealed(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, police_key: PgpKey
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key)
    day.seal_by_hand()

    assert day.queue() == ReturnReport(waiting=(day.intake_id,))
    assert day.return_messages() == []
    assert has_pending_returns(day.conn)


def test_return_sheet_is_queued_once_only(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, police_key: PgpKey
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key)
    day.send()

    assert day.queue() == ReturnReport(queued=(day.intake_id,))
    assert day.queue() == ReturnReport()
    (message,) = day.return_messages()
    assert (message["recipient"], message["contact_role"]) == (POLICE, "police")
    assert message["due"] == NOW.astimezone(UTC).isoformat()
    assert not has_pending_returns(day.conn)
    kept = day.conn.execute("SELECT workbook, return_message FROM intake_source").fetchone()
    assert (kept["workbook"], kept["return_message"]) == (b"", message["id"])


def test_a_notification_that_became_an_exception_settles_its_child_as_not_sent(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    police_key: PgpKey,
    recipient_home: Callable[[PgpKey], Keyring],
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key)
    with transaction(day.conn):
        notification_store.mark(
            day.conn, day.reference, NotificationState.EXCEPTION, at=ARRIVAL, actor="test"
        )

    assert day.queue().queued == (day.intake_id,)
    (message,) = day.return_messages()
    inner = assert_sealed(
        message["body"],
        recipient_home_or_keyring=recipient_home(police_key),
        navigator_fingerprint=navigator_key.fingerprint,
        reference=message["reference"],
        must_contain=[],
        must_not_contain=[],
    )
    outcomes = attached_workbook(inner)[OUTCOMES_SHEET]
    assert row_values(outcomes, 2)[4:9] == [
        "Elm Primary",
        ELM,
        None,
        None,
        "Not sent: with the Education Navigator",
    ]


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        (None, "not signed with a police key"),
        ("B" * 40, "no longer pinned in police.fingerprints"),
    ],
)
def test_without_a_pinned_police_key_nothing_is_sent_and_the_navigator_has_it_on_record(
    tmp_path: Path,
    gateway_keyring: Keyring,
    navigator_key: PgpKey,
    police_key: PgpKey,
    signer: str | None,
    why: str,
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key, signer=signer)
    day.send()

    assert day.queue() == ReturnReport(not_sent=(day.intake_id,))
    assert day.queue() == ReturnReport()  # on record once, not at every pass
    assert day.return_messages() == []
    (entry,) = day.audit("return_sheet.not_sent")
    assert entry["intake"] == day.intake_id and why in str(entry["reason"])
    assert POLICE not in json.dumps(entry)


def test_a_police_key_that_has_been_revoked_is_not_used(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, key_factory: KeyFactory
) -> None:
    revoked = key_factory.make(POLICE, name="MASH desk", revoked=True)
    day = mail_day(tmp_path, gateway_keyring, navigator_key, revoked)
    day.send()

    assert day.queue() == ReturnReport(not_sent=(day.intake_id,))
    (entry,) = day.audit("return_sheet.not_sent")
    assert "revoked" in str(entry["reason"])


def test_a_spreadsheet_processed_by_hand_gets_no_return_sheet(
    tmp_path: Path, gateway_keyring: Keyring, navigator_key: PgpKey, police_key: PgpKey
) -> None:
    day = mail_day(tmp_path, gateway_keyring, navigator_key, police_key, source=False)
    day.send()

    assert not has_pending_returns(day.conn)
    assert day.queue() == ReturnReport()
