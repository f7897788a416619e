"""Kill dispatch with SIGKILL at each step, run it again, and count what the schools received.

Dispatch runs in a child process against the test's state database and SMTP sink; the
fault-injection seam (gateway/faults.py) kills it at the named checkpoint. After the second,
undisturbed run every message must have arrived, and a message may have arrived twice only
when the kill fell between the server's acceptance and the commit of `sent` — and then both
copies carry the same Message-ID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from smtp_sink import SmtpSink

from gateway import audit
from gateway.faults import CRASH_AT_VARIABLE

if TYPE_CHECKING:
    from conftest import SealedOutbox

DISPATCH_SCRIPT = """
import sys
from datetime import datetime
from pathlib import Path

from gateway.config import DispatchSection, SmtpSection
from gateway.dispatch import dispatch_due
from gateway.smtp_transport import SmtpTransport
from gateway.store import open_state

database, port, now, settings = sys.argv[1:]
section = SmtpSection(host="127.0.0.1", port=int(port), tls="none", timeout_seconds=10)
report = dispatch_due(
    open_state(Path(database)),
    now=datetime.fromisoformat(now),
    connect=lambda: SmtpTransport.open(section),
    settings=DispatchSection.model_validate_json(settings),
    actor="dispatch",
)
print(len(report.sent), len(report.retrying), len(report.exceptions))
"""


def run_dispatch(
    sealed_outbox: SealedOutbox, sink: SmtpSink, now: datetime, *, crash_at: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_AT_VARIABLE}
    if crash_at is not None:
        env[CRASH_AT_VARIABLE] = crash_at
    return subprocess.run(
        [
            sys.executable,
            "-c",
            DISPATCH_SCRIPT,
            str(sealed_outbox.database),
            str(sink.port),
            now.isoformat(),
            sealed_outbox.settings.model_dump_json(),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("checkpoint", "left_as", "duplicates"),
    [
        ("dispatch.after_sending_marked", "sending", 0),
        ("dispatch.after_accept", "sending", 1),
        ("dispatch.after_sent_committed", "sent", 0),
    ],
)
def test_a_dispatch_killed_at_any_step_resumes_without_loss(
    sealed_outbox: SealedOutbox,
    smtp_sink: SmtpSink,
    checkpoint: str,
    left_as: str,
    duplicates: int,
) -> None:
    messages = [
        *sealed_outbox.add("CC-1001", recipients=(sealed_outbox.dsl, sealed_outbox.da_lead)),
        *sealed_outbox.add("CC-1002", urn=100002),
    ]
    nine = sealed_outbox.due

    killed = run_dispatch(sealed_outbox, smtp_sink, nine, crash_at=checkpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    in_flight = messages[0]
    state = sealed_outbox.conn.execute(
        "SELECT state FROM message WHERE id = ?", (in_flight.id,)
    ).fetchone()["state"]
    assert state == left_as

    resumed = run_dispatch(sealed_outbox, smtp_sink, nine, crash_at=None)
    assert resumed.returncode == 0, resumed.stderr

    received_ids = smtp_sink.message_ids()
    assert sorted(set(received_ids)) == sorted(m.message_id for m in messages)  # none lost
    assert len(received_ids) - len(set(received_ids)) == duplicates
    if duplicates:
        # The message in flight, twice, byte for byte: recognisably the same message.
        assert received_ids.count(in_flight.message_id) == 2
        assert [r.data for r in smtp_sink.received].count(in_flight.body) == 2
    for received in smtp_sink.received:
        sealed_outbox.check(received)
    rows = sealed_outbox.conn.execute("SELECT state FROM message").fetchall()
    assert {row["state"] for row in rows} == {"sent"}
    assert audit.verify(sealed_outbox.conn).ok
