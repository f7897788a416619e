"""A whole day on record, for retention and subject access tests: the sample police mail taken
in from the MASH inbox (Dovecot), the digest at 08:30, every notification sealed with real
GnuPG and sent at 09:00 to the SMTP sink (and the police return sheet with them), then a
school's read receipt and a plain reply that quotes the child, recorded and forwarded to the
Navigator sealed."""

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from mail_world import World, read_receipt

DIGEST = "2026-03-02T08:30:00+00:00"
AT_NINE = "2026-03-02T09:00:00+00:00"
RECEIPTS = "2026-03-02T09:20:00+00:00"
FORWARDED = "2026-03-02T09:21:00+00:00"
# The incident whose school replies, quoting the child (as a DSL's reply does).
REPLIED_INCIDENT = "CC-01032026-03319"


@dataclass(frozen=True)
class Child:
    incident_ref: str
    name: str  # as the gateway recorded it ("Forename Surname")
    dob: date
    outcome: str


@dataclass(frozen=True)
class RecordedDay:
    children: tuple[Child, ...]
    # Free text the police wrote about each incident (circumstances, location, relationship,
    # other information, the voice of the child), as the notifications carried it.
    texts: dict[str, tuple[str, ...]]
    replied_reference: str

    def incidents_needing_a_person(self) -> set[str]:
        return {c.incident_ref for c in self.children if c.outcome in ("exception", "telephone")}


@pytest.fixture
def day(world: World) -> RecordedDay:
    return record_a_day(world)


def record_a_day(world: World) -> RecordedDay:
    world.dovecot.deliver(world.mash, world.police_mail(world.workbook.read_bytes()))
    world.run("poll")
    world.run("digest", now=DIGEST)
    world.run("dispatch", now=AT_NINE)
    with world.state() as conn:
        replied = conn.execute(
            "SELECT m.message_id, n.reference, unseal(n.content) AS content FROM message m"
            " JOIN notification n ON n.reference = m.reference"
            " WHERE n.incident_ref = ? ORDER BY m.id LIMIT 1",
            (REPLIED_INCIDENT,),
        ).fetchone()
    child = json.loads(replied["content"])["children"][0]
    world.dovecot.deliver(world.navigator, read_receipt(replied["message_id"]))
    world.dovecot.deliver(
        world.navigator,
        (
            "From: dsl@school.example.org\r\nTo: navigator@mash.example.org\r\n"
            f"Subject: Re: Secure notification {replied['reference']}\r\n"
            "Message-ID: <reply.retention@school.example.org>\r\n"
            f"In-Reply-To: {replied['message_id']}\r\n"
            "Date: Mon, 2 Mar 2026 09:15:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"\r\nThank you. {child['forename']} {child['surname']} is on our chronology now.\r\n"
        ).encode(),
    )
    world.run("poll", now=RECEIPTS)
    world.run("dispatch", now=FORWARDED)
    return _what_was_recorded(world, replied["reference"])


def _what_was_recorded(world: World, replied_reference: str) -> RecordedDay:
    with world.state() as conn:
        children = tuple(
            Child(
                row["incident_ref"],
                record["child"],
                date.fromisoformat(record["dob"]),
                row["outcome"],
            )
            for row in conn.execute(
                "SELECT incident_ref, outcome, unseal(record) AS record FROM decision"
            )
            if (record := json.loads(row["record"]))["dob"]
        )
        texts: dict[str, list[str]] = {}
        # What the schools were sent, and what is kept of an exception child for a ROUTE.
        for row in conn.execute(
            "SELECT incident_ref, unseal(content) AS content FROM notification UNION ALL"
            " SELECT d.incident_ref, unseal(x.content) FROM exception_detail x"
            " JOIN decision d ON d.id = x.decision_id"
        ):
            content: dict[str, Any] = json.loads(row["content"])
            incident = content["incident"]
            found = [incident[key] for key in ("circumstances", "location", "other_info")]
            for child in content.get("children", [content.get("child")]):
                found += [child["relationship"], child["voice_of_child"]]
            texts.setdefault(row["incident_ref"], []).extend(t for t in found if len(t) >= 12)
    return RecordedDay(
        children, {ref: tuple(found) for ref, found in texts.items()}, replied_reference
    )
