"""The IMAP adapter against a real Dovecot on loopback: what it reads, moves, flags and waits for,
and how each failure of the server or of TLS reaches the caller."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot import Dovecot, MailUser
from smtp_sink import free_port

from gateway.config import SecretRef
from gateway.imap_client import (
    MailboxClient,
    MailboxInsecure,
    MailboxLoginRefused,
    MailboxUnavailable,
    MessageGone,
    connect,
)


def message(number: int = 1, *, subject: str = "Incidents") -> bytes:
    return (
        f"From: da-desk@police.example.org\r\n"
        f"To: mash@mash.example.org\r\n"
        f"Subject: {subject} {number}\r\n"
        f"Message-ID: <{number}.test@police.example.org>\r\n"
        f"\r\n"
        f"Body {number}\r\n"
    ).encode()


@pytest.fixture
def mash(dovecot: Dovecot) -> MailUser:
    return dovecot.new_user("mash")


@pytest.fixture
def client(dovecot: Dovecot, mash: MailUser) -> Iterator[MailboxClient]:
    with connect(dovecot.imap_section(mash)) as opened:
        yield opened


def deliver_later(server: Dovecot, user: MailUser, raw: bytes, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, server.deliver, (user, raw))
    timer.start()
    return timer


# --------------------------------------------------------------------------------------
# Reading


def test_fetch_does_not_mark_the_message_read(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    uid = dovecot.deliver(mash, message())
    client.select("INBOX")
    assert client.fetch(uid) == message()
    assert "\\Seen" not in dovecot.messages(mash)[uid].flags


def test_new_mail_is_listed_by_uid_above_the_last_one_seen(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    client.select("INBOX")
    first = dovecot.deliver(mash, message(1))
    second = dovecot.deliver(mash, message(2))
    assert client.uids_since(0) == [first, second]
    assert client.uids_since(first) == [second]
    # "UID n:*" matches the highest UID even when it is below n; nothing newer is nothing.
    assert client.uids_since(second) == []


def test_select_gives_the_folders_uidvalidity(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    dovecot.deliver(mash, message(), folder="Intake")
    first = client.select("Intake")
    assert client.select("Intake") == first
    with dovecot.client(mash) as other:
        other.delete_folder("Intake")
        other.create_folder("Intake")
    assert client.select("Intake") != first


def test_a_message_moved_away_by_someone_else_is_gone_not_a_broken_connection(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    uid = dovecot.deliver(mash, message())
    client.select("INBOX")
    with dovecot.client(mash) as other:
        other.select_folder("INBOX")
        other.create_folder("Elsewhere")
        other.move([uid], "Elsewhere")
    with pytest.raises(MessageGone):
        client.fetch(uid)
    assert client.uids_since(0) == []


# --------------------------------------------------------------------------------------
# Moving and flagging: nothing deleted


def test_move_puts_the_message_in_the_folder_and_nowhere_else(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    uid = dovecot.deliver(mash, message())
    client.ensure_folders(["Processed"])
    client.select("INBOX")
    client.move(uid, "Processed")
    assert dovecot.messages(mash) == {}
    assert [stored.raw for stored in dovecot.messages(mash, "Processed").values()] == [message()]


def test_moving_a_message_already_moved_is_not_an_error(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    uid = dovecot.deliver(mash, message())
    client.ensure_folders(["Processed"])
    client.select("INBOX")
    client.move(uid, "Processed")
    client.move(uid, "Processed")
    assert len(dovecot.messages(mash, "Processed")) == 1


def test_without_move_the_copy_is_made_before_only_that_message_is_expunged() -> None:
    with Dovecot(capabilities="IMAP4rev1 IDLE UIDPLUS LITERAL+") as server:
        user = server.new_user("mash")
        wanted = server.deliver(user, message(1))
        other = server.deliver(user, message(2))
        with server.client(user) as someone:
            someone.select_folder("INBOX")
            someone.add_flags([other], [b"\\Deleted"])
        with connect(server.imap_section(user)) as client:
            client.ensure_folders(["Processed"])
            client.select("INBOX")
            client.move(wanted, "Processed")
        inbox = server.messages(user)
        assert list(inbox) == [other]  # another client's \Deleted message is not expunged
        assert [s.raw for s in server.messages(user, "Processed").values()] == [message(1)]


def test_flag_leaves_the_message_where_it_is(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    uid = dovecot.deliver(mash, message())
    client.select("INBOX")
    client.flag(uid, "\\Flagged")
    assert dovecot.messages(mash)[uid].flags >= {"\\Flagged"}


def test_missing_folders_are_created_and_existing_ones_kept(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    dovecot.deliver(mash, message(), folder="Processed")
    client.ensure_folders(["Processed", "Quarantine"])
    client.ensure_folders(["Processed", "Quarantine"])
    assert len(dovecot.messages(mash, "Processed")) == 1
    assert dovecot.messages(mash, "Quarantine") == {}
    client.select("Quarantine")


# --------------------------------------------------------------------------------------
# Waiting with IDLE


def test_idle_wakes_soon_after_a_delivery(
    dovecot: Dovecot, mash: MailUser, client: MailboxClient
) -> None:
    client.select("INBOX")
    delivered: list[float] = []
    timer = threading.Timer(
        0.5, lambda: (dovecot.deliver(mash, message()), delivered.append(time.monotonic()))
    )
    timer.start()
    assert client.wait_for_mail(10) is True
    woke = time.monotonic()
    timer.join()
    print(f"IDLE latency, delivery to wake-up: {woke - delivered[0]:.3f} s")
    assert client.uids_since(0) == [1]


def test_idle_returns_quietly_when_nothing_arrives(client: MailboxClient) -> None:
    client.select("INBOX")
    assert client.wait_for_mail(1.5) is False
    assert client.uids_since(0) == []  # the connection is usable again


def test_a_stop_request_ends_the_wait(client: MailboxClient) -> None:
    client.select("INBOX")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert client.wait_for_mail(60, stop=stop) is False


def test_idle_is_renewed_with_a_noop_and_still_wakes(
    dovecot: Dovecot, mash: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    account = dovecot.imap_section(mash, idle_renew_minutes=0.01)  # every 0.6 s
    with connect(account) as client:
        client.select("INBOX")
        timer = deliver_later(dovecot, mash, message(), 2.5)
        with caplog.at_level(logging.DEBUG, logger="imapclient"):
            assert client.wait_for_mail(30) is True
        timer.join()
    sent = [record.getMessage() for record in caplog.records]
    assert sum("NOOP" in line for line in sent) >= 2
    assert sum(line.startswith("< DONE") for line in sent) >= 3


def test_a_server_restart_during_idle_is_reported_as_unavailable() -> None:
    with Dovecot() as server:
        user = server.new_user("mash")
        with connect(server.imap_section(user)) as client:
            client.select("INBOX")
            restart = threading.Timer(0.5, server.restart)
            restart.start()
            with pytest.raises(MailboxUnavailable, match="BYE"):
                client.wait_for_mail(30)
            restart.join()


def test_a_server_crash_during_idle_is_reported_as_unavailable() -> None:
    # SIGKILL: no BYE, just the end of the stream, which imapclient alone reports as silence.
    with Dovecot() as server:
        user = server.new_user("mash")
        with connect(server.imap_section(user)) as client:
            client.select("INBOX")
            crash = threading.Timer(0.5, server.kill)
            crash.start()
            with pytest.raises(MailboxUnavailable, match="closed the connection"):
                client.wait_for_mail(30)
            crash.join()


# --------------------------------------------------------------------------------------
# Connecting: refused, wrong password, TLS


def test_a_server_that_is_not_there_is_unavailable(dovecot: Dovecot, mash: MailUser) -> None:
    with pytest.raises(MailboxUnavailable, match=r"127\.0\.0\.1"):
        connect(dovecot.imap_section(mash, port=free_port()))


def test_a_wrong_password_is_refused(dovecot: Dovecot, mash: MailUser, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password", encoding="utf-8")
    with pytest.raises(MailboxLoginRefused, match="check the username and password"):
        connect(dovecot.imap_section(mash, password=SecretRef(file=wrong)))


def test_starttls_is_required_when_configured_and_never_skipped(
    dovecot: Dovecot, mash: MailUser
) -> None:
    # The shared server has no TLS: it offers no STARTTLS, as a stripping attacker would.
    with pytest.raises(MailboxInsecure, match="does not offer STARTTLS"):
        connect(dovecot.imap_section(mash, tls="starttls"))
    assert f"user=<{mash.name}>" not in dovecot.log()  # no login was attempted


def test_implicit_tls_to_a_plaintext_server_fails_as_insecure(
    dovecot: Dovecot, mash: MailUser
) -> None:
    with pytest.raises(MailboxInsecure):
        connect(dovecot.imap_section(mash, tls="implicit"))


def test_starttls_with_a_trusted_certificate_logs_in(dovecot_tls: Dovecot) -> None:
    user = dovecot_tls.new_user("mash")
    dovecot_tls.deliver(user, message())
    with connect(dovecot_tls.imap_section(user)) as client:
        client.select("INBOX")
        assert client.fetch(1) == message()


def test_implicit_tls_with_a_trusted_certificate_logs_in(dovecot_tls: Dovecot) -> None:
    user = dovecot_tls.new_user("mash")
    account = dovecot_tls.imap_section(user, tls="implicit", port=dovecot_tls.tls_port)
    with connect(account) as client:
        assert client.select("INBOX") > 0


def test_a_certificate_nobody_vouches_for_is_refused(dovecot_tls: Dovecot) -> None:
    user = dovecot_tls.new_user("mash")
    with pytest.raises(MailboxInsecure, match="certificate verify failed"):
        connect(dovecot_tls.imap_section(user, ca_file=None))
