"""`encompass-gateway poll` against a real Dovecot: police mail in the MASH inbox taken in
(or quarantined), and what comes back to the Navigator's mailbox recorded."""

import json
import re
import sqlite3
from datetime import date

from mail_world import World, read_receipt
from pgp_keys import PgpKey
from police_mail_corpus import POLICE, content, mail

from gateway.inbound import Kind, classify
from gateway.keyring import open_keyring
from gateway.pgpmime import open_sealed

AT_NINE = "2026-03-02T09:00:00+00:00"
LATER = "2026-03-02T09:30:00+00:00"


def test_a_signed_police_mail_is_taken_in_sealed_and_moved(world: World) -> None:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    polled = world.run("poll")
    assert "mash: 1 handled" in polled.output
    with world.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0] == 1
        sealed = conn.execute("SELECT COUNT(*) FROM message WHERE state = 'sealed'").fetchone()
    assert sealed[0] > 0
    assert world.dovecot.messages(world.mash) == {}
    assert len(world.dovecot.messages(world.mash, "Processed")) == 1


def test_the_same_mail_polled_twice_is_taken_in_once(world: World) -> None:
    raw = world.police_mail(world.workbook.read_bytes())
    world.dovecot.deliver(world.mash, raw)
    world.run("poll")
    world.dovecot.deliver(world.mash, raw)
    again = world.run("poll")
    assert "1 seen before" in again.output
    with world.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0] == 1


def test_a_resent_mail_with_the_same_spreadsheet_records_nothing_new(world: World) -> None:
    for _ in range(2):  # signed afresh each time: other bytes, the same spreadsheet
        world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
        world.run("poll")
    with world.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM notification").fetchone()[0] > 0


def test_a_spoofed_police_mail_is_quarantined_and_not_a_row_is_read(world: World) -> None:
    unsigned = mail(content(("daily-return.xlsx", world.workbook.read_bytes())))
    world.dovecot.deliver(world.mash, unsigned)
    world.run("poll")
    with world.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM decision").fetchone()[0] == 0
        refused = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE event = 'police_mail.refused'"
        ).fetchone()
    assert refused[0] == 1
    assert len(world.dovecot.messages(world.mash, "Quarantine")) == 1


def test_a_quarantined_mail_alerts_the_navigator_encrypted_and_never_answered(
    world: World, navigator_key: PgpKey
) -> None:
    world.dovecot.deliver(world.mash, mail(content(("daily.xlsx", b"PK"))))
    world.run("poll")
    with world.state() as conn:
        alert = conn.execute("SELECT * FROM message WHERE kind = 'alert'").fetchone()
    assert alert["recipient"] == navigator_key.email
    raw = bytes(alert["body"])
    outer = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Auto-Submitted: auto-generated" in outer
    assert b"X-Encompass-Loop: mash.example.org" in outer
    assert b"Disposition-Notification-To" not in outer
    with open_keyring(world.gnupg_home) as keyring:
        opened = open_sealed(keyring, raw)
    assert opened.signature_valid
    assert "did not authenticate" in opened.inner.get_content()
    back = classify(raw, own_domain="mash.example.org", bounce_local_part="bounces")
    assert back.kind is Kind.OWN_LOOP


def test_a_read_receipt_is_recorded_against_its_message(world: World) -> None:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    world.run("poll")
    world.run("dispatch", now=AT_NINE)
    with world.state() as conn:
        row = conn.execute("SELECT id, message_id, reference FROM message LIMIT 1").fetchone()
    world.dovecot.deliver(world.navigator, read_receipt(row["message_id"]))
    polled = world.run("poll", now=LATER)
    assert "navigator: 1 handled" in polled.output
    with world.state() as conn:
        event = conn.execute("SELECT kind, message_row, reference FROM tracking_event").fetchone()
    assert tuple(event) == ("read_receipt", row["id"], row["reference"])


def test_a_reply_stays_in_the_navigators_inbox_flagged(world: World) -> None:
    reply = (
        b"From: dsl@school.example.org\r\nTo: navigator@mash.example.org\r\n"
        b"Subject: Re: Secure notification OE-ABCDE-FGHJK\r\n"
        b"Message-ID: <reply1@school.example.org>\r\n"
        b"Date: Mon, 2 Mar 2026 09:40:00 +0000\r\n\r\nThank you, noted on the chronology.\r\n"
    )
    world.dovecot.deliver(world.navigator, reply)
    world.run("poll", now=LATER)
    (stored,) = world.dovecot.messages(world.navigator).values()
    assert "$EncompassNeedsAPerson" in stored.flags


# --------------------------------------------------------------------------------------
# What goes back to the police sender (gateway/police_reply.py)

RECEIPT_SUBJECT = re.compile(rb"^Subject: Receipt GW-[0-9A-F]{10}\r$", re.MULTILINE)


def _answers(world: World) -> list[sqlite3.Row]:
    with world.state() as conn:
        return conn.execute(
            "SELECT * FROM message WHERE kind IN ('receipt', 'reply') ORDER BY id"
        ).fetchall()


def _sent_to_police(world: World) -> bytes:
    (received,) = [r for r in world.sink.received if r.rcpt_tos == (POLICE,)]
    return received.data


def test_a_police_mail_taken_in_gets_a_signed_receipt_with_counts_only(
    world: World, navigator_key: PgpKey
) -> None:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    world.run("poll")
    world.run("dispatch")  # the receipt is due at once; the notifications wait for 09:00
    raw = _sent_to_police(world)
    (row,) = _answers(world)
    assert row["kind"] == "receipt" and row["recipient"] == POLICE and row["body"] == raw
    outer = raw.split(b"\r\n\r\n", 1)[0]
    assert RECEIPT_SUBJECT.search(outer)
    assert b"\r\nAuto-Submitted: auto-replied\r\n" in outer
    assert b"\r\nX-Encompass-Loop: mash.example.org\r\n" in outer
    assert b"\r\nIn-Reply-To: <daily.20260302@police.example.org>\r\n" in outer
    assert b"\r\nReferences: <daily.20260302@police.example.org>\r\n" in outer
    assert b"Disposition-Notification-To" not in outer
    # The mail was signed by the one pinned police key, so the receipt is encrypted to it.
    opened = open_sealed(world.desk, raw)
    assert opened.signature_valid and opened.signer_fingerprint == navigator_key.fingerprint
    text = opened.inner.get_content()
    with world.state() as conn:
        intake = conn.execute("SELECT id, incidents, children FROM intake").fetchone()
        decisions = conn.execute(
            "SELECT incident_ref, unseal(record) AS record FROM decision"
        ).fetchall()
        planned = conn.execute("SELECT COUNT(*) FROM notification").fetchone()[0]
    assert f"Intake {intake['id']}" in text
    assert f"Incidents: {intake['incidents']}" in text
    assert f"Children: {intake['children']}" in text
    assert f"School notifications planned: {planned}" in text
    records = [json.loads(d["record"]) for d in decisions]
    dates = [date.fromisoformat(r["dob"]) for r in records if r["dob"]]
    personal = (
        {d["incident_ref"] for d in decisions}
        | {r["child"] for r in records}
        | {r["school"] for r in records}
        | {f"{d:%d/%m/%Y}" for d in dates}
        | {d.isoformat() for d in dates}
    ) - {None, ""}
    whole = raw + opened.inner.as_bytes()
    assert personal and not [p for p in personal if p.encode() in whole]
    assert classify(raw, own_domain="mash.example.org", bounce_local_part="bounces").kind is (
        Kind.OWN_LOOP
    )


def test_a_police_mail_without_a_spreadsheet_gets_a_reply_and_the_navigator_an_alert(
    world: World, navigator_key: PgpKey
) -> None:
    world.dovecot.deliver(world.mash, world.police_mail_without_files())
    world.run("poll")
    world.run("dispatch")
    with world.state() as conn:
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM message ORDER BY id")]
    assert sorted(kinds) == ["alert", "reply"]
    raw = _sent_to_police(world)
    outer = raw.split(b"\r\n\r\n", 1)[0]
    assert re.search(rb"^Subject: Not processed GW-[0-9A-F]{10}\r$", outer, re.MULTILINE)
    assert b"\r\nAuto-Submitted: auto-replied\r\n" in outer
    assert b"\r\nIn-Reply-To: <daily.20260302@police.example.org>\r\n" in outer
    opened = open_sealed(world.desk, raw)
    assert opened.signature_valid and opened.signer_fingerprint == navigator_key.fingerprint
    text = " ".join(opened.inner.get_content().split())
    assert "nothing in it has been processed" in text and "no file attached" in text


def test_a_police_mail_with_only_a_refused_file_gets_a_reply_naming_it(world: World) -> None:
    world.dovecot.deliver(world.mash, world.police_mail_with(("daily-return.xlsm", b"PK")))
    world.run("poll")
    (row,) = _answers(world)
    assert row["kind"] == "reply"
    text = open_sealed(world.desk, bytes(row["body"])).inner.get_content()
    assert "- daily-return.xlsm: " in text


def test_a_spoofed_police_mail_gets_no_answer_only_an_alert(
    world: World, navigator_key: PgpKey
) -> None:
    unsigned = mail(content(("daily-return.xlsx", world.workbook.read_bytes())))
    world.dovecot.deliver(world.mash, unsigned)
    world.dovecot.deliver(world.mash, mail(content()))  # and one with nothing attached
    world.run("poll")
    world.run("dispatch")
    assert _answers(world) == []
    with world.state() as conn:
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM message")]
    assert kinds == ["alert", "alert"]
    assert [r.rcpt_tos for r in world.sink.received] == [(navigator_key.email,)] * 2


def test_an_automatic_police_mail_gets_no_reply(world: World) -> None:
    world.dovecot.deliver(
        world.mash, world.police_mail_without_files(("Auto-Submitted", "auto-generated"))
    )
    world.run("poll")
    assert _answers(world) == []
    with world.state() as conn:
        kinds = [r["kind"] for r in conn.execute("SELECT kind FROM message")]
        events = [r[0] for r in conn.execute("SELECT event FROM audit")]
    assert kinds == ["alert"]
    assert "police_mail.reply_not_sent" in events


def test_a_police_mail_carrying_our_loop_header_is_taken_in_but_gets_no_receipt(
    world: World,
) -> None:
    world.dovecot.deliver(
        world.mash,
        world.police_mail(world.workbook.read_bytes(), ("X-Encompass-Loop", "mash.example.org")),
    )
    world.run("poll")
    assert _answers(world) == []
    with world.state() as conn:
        assert conn.execute("SELECT COUNT(*) FROM intake").fetchone()[0] == 1
        events = [r[0] for r in conn.execute("SELECT event FROM audit")]
    assert "police_mail.receipt_not_sent" in events


def test_an_auto_submitted_no_police_mail_is_answered(world: World) -> None:
    world.dovecot.deliver(
        world.mash, world.police_mail(world.workbook.read_bytes(), ("Auto-Submitted", "no"))
    )
    world.run("poll")
    assert [r["kind"] for r in _answers(world)] == ["receipt"]


def test_a_file_refused_beside_a_taken_spreadsheet_is_counted_and_alerted(world: World) -> None:
    world.dovecot.deliver(
        world.mash,
        world.police_mail_with(
            ("daily-return.xlsx", world.workbook.read_bytes()), ("extra.xlsm", b"PK")
        ),
    )
    world.run("poll")
    with world.state() as conn:
        alert = conn.execute("SELECT body FROM message WHERE kind = 'alert'").fetchone()
    (row,) = _answers(world)
    text = " ".join(open_sealed(world.desk, bytes(row["body"])).inner.get_content().split())
    assert "Files received: 2; spreadsheets taken in: 1; not taken: 1." in text
    assert "extra.xlsm" not in text  # counts only
    with open_keyring(world.gnupg_home) as keyring:
        said = open_sealed(keyring, bytes(alert["body"])).inner.get_content()
    assert "extra.xlsm" in said and "Processed folder" in said


def test_a_resent_spreadsheet_gets_a_receipt_saying_nothing_new_was_recorded(
    world: World,
) -> None:
    for _ in range(2):  # signed afresh each time: another mail, the same spreadsheet
        world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
        world.run("poll")
    first, second = (
        " ".join(open_sealed(world.desk, bytes(row["body"])).inner.get_content().split())
        for row in _answers(world)
    )
    assert "Already recorded" not in first
    assert "Already recorded" in second and "nothing new was recorded" in second


def test_a_receipt_goes_to_the_authenticated_from_never_to_a_reply_to(world: World) -> None:
    raw = world.police_mail(world.workbook.read_bytes(), ("Reply-To", "evil@attacker.example"))
    world.dovecot.deliver(world.mash, raw)
    world.run("poll")
    world.run("dispatch")
    (row,) = _answers(world)
    assert row["recipient"] == POLICE
    assert [r.rcpt_tos for r in world.sink.received] == [(POLICE,)]
