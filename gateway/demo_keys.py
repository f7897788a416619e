"""The demo's OpenPGP keys, made at run time with the `gpg` command and never committed.

Two GnuPG homes stand for two sides of the mail: the gateway's own home (the Navigator's
secret key, and the public keys an administrator imports into it) and the "schools' world",
which holds the secret keys of every DSL, deputy DSL and DA Lead (and of the Education
Safeguarding Manager), so the demo can read what each of them received. Nothing but public
keys crosses between the two, as armored files, exactly as it would between real parties.

Keys are ed25519 for signing with a cv25519 encryption subkey, without a passphrase and
without expiry: the way a school's IT would make one with `gpg --quick-gen-key`.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.directory_files import CONTACT_COLUMNS
from gateway.errors import GatewayError
from gateway.keyring import MAX_HOME_LENGTH, stop_agent
from gateway.model import Contact

GATEWAY_HOME = "gateway"
SCHOOLS_HOME = "schools"


class KeyGenerationError(GatewayError):
    """GnuPG is not installed, or the `gpg` command failed to make, export or import a demo
    key (the message carries GnuPG's own last words)."""


@dataclass(frozen=True)
class DemoKey:
    name: str
    email: str
    fingerprint: str

    @property
    def user_id(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class DemoHomes:
    """The gateway's GnuPG home and the schools' world, side by side in one folder."""

    gateway: Path
    schools: Path

    def stop_agents(self) -> None:
        """Stop the gpg-agent of both homes: nothing the demo started may outlive it."""
        stop_agent(self.gateway)
        stop_agent(self.schools)


def make_homes(workspace: Path) -> DemoHomes:
    """Two new, empty homes (mode 0700) under `workspace`/gnupg, or under a short folder in
    /tmp when that path would be too long for gpg-agent's socket (see gateway.keyring)."""
    root = workspace.absolute() / "gnupg"
    longest = max(len(os.fsencode(root / name)) for name in (GATEWAY_HOME, SCHOOLS_HOME))
    if longest > MAX_HOME_LENGTH:
        root = Path(tempfile.mkdtemp(prefix="eg-demo-gnupg-", dir="/tmp"))
    homes = DemoHomes(root / GATEWAY_HOME, root / SCHOOLS_HOME)
    for home in (homes.gateway, homes.schools):
        home.mkdir(parents=True)
        home.chmod(0o700)  # mkdir's mode is filtered by the umask
    return homes


@dataclass(frozen=True)
class DemoKeys:
    navigator: DemoKey  # secret key in the gateway's home
    manager: DemoKey  # secret key in the schools' world, public key in the key folder
    contacts: dict[tuple[int, str], DemoKey]  # by (URN, email); secret keys in the schools' world


def make_demo_keys(
    homes: DemoHomes,
    *,
    navigator: tuple[str, str],
    manager: tuple[str, str],
    contacts: Sequence[Contact],
    folder: Path,
    navigator_public: Path,
) -> DemoKeys:
    """Keys for the Navigator (name, email), the manager and every one of `contacts`.

    The public keys of the manager and the contacts are written to `folder` for the
    gateway's administrator to import (`URN-role.asc`, `manager.asc`); the Navigator's
    public key to `navigator_public`, and into the schools' world, as the schools receive it
    with their onboarding pack so they can check every notification's signature.
    """
    navigator_key = generate_key(homes.gateway, *navigator)
    import_public(homes.schools, export_public(homes.gateway, navigator_key, navigator_public))
    manager_key = generate_key(homes.schools, *manager)
    export_public(homes.schools, manager_key, folder / "manager.asc")
    keys = {}
    for contact in contacts:
        key = generate_key(homes.schools, contact.name, contact.email)
        export_public(homes.schools, key, folder / f"{contact.urn}-{contact.role.value}.asc")
        keys[(contact.urn, contact.email)] = key
    return DemoKeys(navigator_key, manager_key, keys)


def pin_fingerprints(contacts_csv: Path, keys: dict[tuple[int, str], DemoKey]) -> None:
    """Write each key's fingerprint into the contacts list, for the contact it was made for
    (by URN and email); every other row is left as it was."""
    urn, email, fingerprint = (CONTACT_COLUMNS[k] for k in ("urn", "email", "fingerprint"))
    with contacts_csv.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = list(reader.fieldnames or ()), list(reader)
    for row in rows:
        key = keys.get((int(row[urn]), row[email]))
        if key is not None:
            row[fingerprint] = key.fingerprint
    with contacts_csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def generate_key(home: Path, name: str, email: str) -> DemoKey:
    """A new key in `home` for "name <email>": ed25519 signing, cv25519 encryption subkey."""
    user_id = f"{name} <{email}>"
    created = _gpg(home, "--quick-gen-key", user_id, "ed25519", "sign", "never")
    primary = [line.split()[3] for line in created if line.startswith("[GNUPG:] KEY_CREATED P ")]
    if len(primary) != 1:
        raise KeyGenerationError(f"gpg made no key for {user_id} in {home}")
    _gpg(home, "--quick-add-key", primary[0], "cv25519", "encr", "never")
    return DemoKey(name, email, primary[0])


def export_public(home: Path, key: DemoKey, path: Path) -> Path:
    """Write the public half of `key` from `home` to `path`, ASCII-armored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _gpg(home, "--armor", "--output", str(path), "--export", key.fingerprint)
    if not path.is_file() or b"PUBLIC KEY BLOCK" not in path.read_bytes():
        raise KeyGenerationError(f"gpg exported no public key {key.fingerprint} to {path}")
    return path


def import_public(home: Path, path: Path) -> None:
    """Import the public key file `path` into `home` (a school learning the Navigator's key)."""
    _gpg(home, "--import", str(path))


def _gpg(home: Path, *args: str) -> list[str]:
    """Run gpg in `home` quietly and offline; return its status lines, or raise."""
    gpg = shutil.which("gpg")
    if gpg is None:
        raise KeyGenerationError("GnuPG is not installed: apt-get install gnupg")
    command = [
        gpg,
        "--homedir",
        str(home),
        "--batch",
        "--no-options",
        "--disable-dirmngr",
        "--status-fd",
        "1",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",  # an unprotected key: the demo has no secret store to keep a passphrase in
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()]
        raise KeyGenerationError(
            f"gpg {args[0]} failed in {home}: {last[-1] if last else 'no message'}"
        )
    return done.stdout.splitlines()
