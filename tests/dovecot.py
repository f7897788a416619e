"""A real Dovecot 2.3 IMAP server for tests, on 127.0.0.1 with a private config directory.

    with Dovecot() as server:                    # plaintext on loopback, any free port
        mash = server.new_user("mash")           # a fresh account with an empty Maildir
        uid = server.deliver(mash, raw_bytes)    # APPEND into its INBOX; the new UID
        server.imap_section(mash)                # the gateway's settings for that account
        server.restart()                         # down, then up again on the SAME port

`Dovecot(tls="required", certificate=make_certificate(dir))` refuses a plaintext login,
offers STARTTLS on `port` and implicit TLS on `tls_port`. `capabilities="IMAP4rev1 IDLE"`
replaces what the server announces after login (e.g. no MOVE, to exercise the fallback).

Facts this relies on (measured; see shared/notes/mail-servers-in-tests.md): Dovecot refuses
to serve mail as uid 0, so the Maildirs belong to a bare numeric uid; every start gets a
fresh, short base_dir (unix sockets are limited to 108 bytes, and a stale auth-penalty
socket makes logins wait); the auth failure penalty is off, or one wrong-password test slows
the next login from 127.0.0.1 by seconds; its processes keep the caller's stdout and stderr
open for good, so they go to a log file, never to a pipe.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from imapclient import IMAPClient  # type: ignore[import-untyped]
from smtp_sink import HOST, Certificate, free_port

from gateway.config import ImapSection, SecretRef

MAIL_UID = 5000  # owns every Maildir; needs no /etc/passwd entry
PASSWORD = "correct-horse-battery-staple"  # every test account's
START_SECONDS = 15.0
STOP_SECONDS = 15.0

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
log_path = {root}/dovecot.log
listen = {host}
protocols = imap
{ssl}
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = {uid}
last_valid_uid = {uid}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
  }}
}}
# The auth failure penalty is per client IP: off, or one refused login slows the next test.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
{capabilities}}}
# Every user name logs in with PASSWORD and gets a fresh Maildir on first use: a test makes
# accounts by naming them. (Dovecot rereads a passwd-file at most once a second, so users added
# while the server runs would be refused for up to a second.)
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/home/%u
}}
"""


@dataclass(frozen=True)
class MailUser:
    """An account on the test server; `name` is also its login."""

    name: str
    password: str = PASSWORD


class Dovecot:
    """One Dovecot instance: start, stop, restart on the same port, users, delivery."""

    def __init__(
        self,
        *,
        tls: Literal["none", "required"] = "none",
        certificate: Certificate | None = None,
        capabilities: str | None = None,
    ) -> None:
        if tls == "required" and certificate is None:
            raise ValueError('tls="required" needs a certificate (smtp_sink.make_certificate)')
        if shutil.which("dovecot") is None:
            raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd")
        if os.geteuid() != 0:
            raise RuntimeError("the Dovecot fixture runs as root (it switches to the mail uid)")
        self.tls = tls
        self.certificate = certificate
        self.capabilities = capabilities
        # Short, under /tmp, world-traversable: the mail uid must reach its home.
        self.root = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls == "required" else 0
        home = self.root / "home"
        home.mkdir()
        os.chown(home, MAIL_UID, MAIL_UID)
        # Where the gateway's settings read the accounts' password from (a secret file).
        self.password_file = self.root / "password"
        self.password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        self._users = 0
        self._deliveries = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    # ----------------------------------------------------------------------------------
    # Life cycle

    def start(self) -> Dovecot:
        if self._process is not None:
            raise RuntimeError("this Dovecot is already running")
        # A fresh base_dir on every start: a stale auth socket left by the last run makes
        # the first logins retry for seconds.
        shutil.rmtree(self.root / "run", ignore_errors=True)
        with (self.root / "output.log").open("ab") as output:
            self._process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop the server and wait until every one of its processes is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        children = _children(process.pid)
        # The whole process group, as systemd stops a unit: signalled alone, the master
        # exits at once but leaves its imap processes serving their clients for ~10 s.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        _wait_gone(children)

    def kill(self) -> None:
        """Crash: SIGKILL every process, so clients see their connections drop with no BYE."""
        process, self._process = self._process, None
        if process is None:
            return
        children = _children(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_gone(children)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None

    def log(self) -> str:
        """Dovecot's own log, for a failing test's output."""
        path = self.root / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    # ----------------------------------------------------------------------------------
    # Accounts and mail

    def new_user(self, prefix: str = "user") -> MailUser:
        """A new account with an empty mailbox, named `prefix` and a number."""
        self._users += 1
        return MailUser(f"{prefix}{self._users}")

    def imap_section(self, user: MailUser, **overrides: Any) -> ImapSection:
        """The gateway's settings for `user`'s mailbox on this server (STARTTLS when the
        server requires TLS, trusting its certificate)."""
        settings: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "tls": "none" if self.tls == "none" else "starttls",
            "username": user.name,
            "password": SecretRef(file=self.password_file),
            "timeout_seconds": 10,
        }
        if self.certificate is not None:
            settings["ca_file"] = self.certificate.cert
        settings.update(overrides)
        return ImapSection(**settings)

    def client(self, user: MailUser) -> IMAPClient:
        """A plain imapclient session as `user`, for a test to look at or change a mailbox
        behind the gateway's back. Close it with `logout()` (or use `with`)."""
        if self.tls == "required":
            assert self.certificate is not None
            client = IMAPClient(
                HOST,
                self.tls_port,
                ssl=True,
                ssl_context=ssl.create_default_context(cafile=self.certificate.cert),
                timeout=10,
            )
        else:
            client = IMAPClient(HOST, self.port, ssl=False, timeout=10)
        client.login(user.name, user.password)
        return client

    def deliver(self, user: MailUser, message: bytes, folder: str = "INBOX") -> int:
        """Put `message` into `user`'s `folder` (IMAP APPEND as that user); its new UID."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, message)
        found = re.search(rb"APPENDUID \d+ (\d+)", response)
        assert found is not None, f"no APPENDUID in {response!r}"
        return int(found[1])

    def deliver_to_maildir(self, user: MailUser, message: bytes) -> None:
        """Put `message` straight into `user`'s Maildir, as a delivery agent does; works
        while the server is down. The user must have logged in once (the Maildir exists)."""
        maildir = self.root / "home" / user.name / "Maildir"
        self._deliveries += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._deliveries}.test"
        temporary = maildir / "tmp" / name
        temporary.write_bytes(message)
        os.chown(temporary, MAIL_UID, MAIL_UID)
        temporary.rename(maildir / "new" / name)

    def messages(self, user: MailUser, folder: str = "INBOX") -> dict[int, Stored]:
        """Every message in `folder` by UID, with its flags (read without setting \\Seen)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
        return {
            uid: Stored(
                flags=frozenset(flag.decode() for flag in data[b"FLAGS"]),
                raw=data[b"BODY[]"],
            )
            for uid, data in fetched.items()
        }

    # ----------------------------------------------------------------------------------

    def _write_config(self) -> None:
        if self.tls == "required":
            assert self.certificate is not None
            tls = (
                "ssl = required\n"
                f"ssl_cert = <{self.certificate.cert}\n"
                f"ssl_key = <{self.certificate.key}\n"
                "disable_plaintext_auth = yes"
            )
        else:
            tls = "ssl = no\ndisable_plaintext_auth = no"
        capabilities = (
            "" if self.capabilities is None else f"  imap_capability = {self.capabilities}\n"
        )
        (self.root / "dovecot.conf").write_text(
            _CONFIG.format(
                root=self.root,
                instance=self.root.name,
                host=HOST,
                port=self.port,
                tls_port=self.tls_port,
                uid=MAIL_UID,
                password=PASSWORD,
                ssl=tls,
                capabilities=capabilities,
            ),
            encoding="utf-8",
        )

    def _wait_until_ready(self) -> None:
        # Ready means a greeting on the port: the listener exists before the login
        # processes can serve it.
        assert self._process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as probe:
                    if probe.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        output = (self.root / "output.log").read_text(encoding="utf-8", errors="replace")
        self.stop()
        raise RuntimeError(f"Dovecot did not start:\n{output}\n{self.log()}")


@dataclass(frozen=True)
class Stored:
    flags: frozenset[str]
    raw: bytes


def _wait_gone(pids: list[int]) -> None:
    # The master's children are reaped by PID 1, which on these machines does so only every
    # few seconds: a zombie is gone for our purposes (it holds no socket). A process still
    # running when the deadline passes would keep the port: it is killed.
    deadline = time.monotonic() + STOP_SECONDS
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    # `kill -0` succeeds on a zombie; its state in /proc/PID/stat says "Z".
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])
