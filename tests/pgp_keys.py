"""OpenPGP keys for tests: short temporary GnuPG homes and a factory of small, fast keys.

Keys are ed25519 (certify + sign) with a cv25519 encryption subkey, made with
%no-protection unless a passphrase is asked for (about 40 ms each). A `PgpKey` is plain
armored data, so one generated key can be installed into as many fresh homes as tests
need: the gateway's keyring gets the public half, a "recipient" home (the DSL's own GnuPG)
gets the secret half.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import gnupg  # type: ignore[import-untyped]

from gateway.keyring import Keyring, open_keyring, stop_agent

# Each home's gpg-agent otherwise calibrates its passphrase protection to ~0.5 s per use
# on these machines; a protected test key would make every seal that slow.
_AGENT_CONF = "s2k-count 65536\n"
_OPTIONS = ("--pinentry-mode", "loopback")


def new_gnupg_home(prefix: str = "eg-") -> Path:
    """A new empty GnuPG home under /tmp (short: gpg-agent's socket path limit), mode 0700."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o700)
    (home / "gpg-agent.conf").write_text(_AGENT_CONF, encoding="ascii")
    return home


def remove_gnupg_home(home: Path) -> None:
    """Stop the home's gpg-agent, then delete it."""
    stop_agent(home)
    shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class PgpKey:
    """A generated key as armored data."""

    email: str
    fingerprint: str
    public: bytes
    secret: bytes
    passphrase: str | None = None
    expires: date | None = None
    revoked: bool = False
    sign_only: bool = False
    revocation: bytes = b""  # its revocation certificate, ready to import

    def install_public(self, keyring: Keyring) -> None:
        """Import the public key into `keyring` (as the LA administrator would)."""
        result = keyring.gpg.import_keys(self.public)
        assert result.count == 1, result.stderr
        keyring.refresh()

    def install_secret(self, keyring: Keyring) -> None:
        """Import the secret key into `keyring` (the Navigator's, or a DSL's own home)."""
        result = keyring.gpg.import_keys(self.secret, passphrase=self.passphrase)
        assert result.sec_imported + result.sec_dups == 1, result.stderr
        keyring.refresh()

    def revoke_in(self, keyring: Keyring) -> None:
        """Import the key's revocation into `keyring`, as its owner would publish it."""
        result = keyring.gpg.import_keys(self.revocation)
        assert result.n_revoc == 1, result.stderr
        keyring.refresh()


class KeyFactory:
    """Generates keys in one scratch home; the same request returns the same key."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._gpg = gnupg.GPG(gnupghome=str(home), options=list(_OPTIONS))
        self._made: dict[tuple[object, ...], PgpKey] = {}

    def make(
        self,
        email: str,
        *,
        name: str = "",
        expires: date | None = None,
        subkey_expires: date | None = None,
        revoked: bool = False,
        sign_only: bool = False,
        passphrase: str | None = None,
        serial: int = 0,
        made_on: date | None = None,
    ) -> PgpKey:
        """A key for `email`. `serial` tells apart two keys with the same options (a school
        that replaced its key); `subkey_expires` gives the encryption subkey its own
        expiry (the primary then lasts until `expires`); `made_on` makes it as if on that
        day (GnuPG's faked system time), so that it can have expired by now."""
        request = (
            email,
            name,
            expires,
            subkey_expires,
            revoked,
            sign_only,
            passphrase,
            serial,
            made_on,
        )
        if request not in self._made:
            gpg = self._gpg
            if made_on is not None:
                gpg = gnupg.GPG(
                    gnupghome=str(self.home),
                    options=[*_OPTIONS, "--faked-system-time", f"{made_on:%Y%m%d}T120000"],
                )
            self._made[request] = self._generate(
                gpg, email, name, expires, subkey_expires, revoked, sign_only, passphrase
            )
        return self._made[request]

    def _generate(
        self,
        gpg: gnupg.GPG,
        email: str,
        name: str,
        expires: date | None,
        subkey_expires: date | None,
        revoked: bool,
        sign_only: bool,
        passphrase: str | None,
    ) -> PgpKey:
        protection = {"passphrase": passphrase} if passphrase else {"no_protection": True}
        separate_subkey = sign_only or subkey_expires is not None
        subkey = (
            {}
            if separate_subkey
            else {"subkey_type": "ECDH", "subkey_curve": "cv25519", "subkey_usage": "encrypt"}
        )
        spec = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            key_usage="sign",
            name_real=name or email.split("@")[0],
            name_email=email,
            expire_date=expires.isoformat() if expires else "0",
            **subkey,
            **protection,
        )
        generated = gpg.gen_key(spec)
        fingerprint = generated.fingerprint
        assert fingerprint, generated.stderr
        if subkey_expires is not None and not sign_only:
            # An empty passphrase (not None) answers GnuPG's question for the new subkey.
            added = gpg.add_subkey(
                fingerprint, passphrase or "", "cv25519", "encr", subkey_expires.isoformat()
            )
            assert added.fingerprint, added.stderr
        revocation = self._revocation(fingerprint)
        if revoked:
            result = gpg.import_keys(revocation)
            assert result.n_revoc == 1, result.stderr
        public = gpg.export_keys(fingerprint, armor=True).encode("ascii")
        secret = gpg.export_keys(
            fingerprint,
            secret=True,
            armor=True,
            passphrase=passphrase,
            expect_passphrase=passphrase is not None,
        ).encode("ascii")
        return PgpKey(
            email=email,
            fingerprint=fingerprint,
            public=public,
            secret=secret,
            passphrase=passphrase,
            expires=expires,
            revoked=revoked,
            sign_only=sign_only,
            revocation=revocation,
        )

    def renewed(self, key: PgpKey, expires: date) -> PgpKey:
        """`key` with its expiry (and its subkeys') moved to `expires`: the same fingerprint,
        a new self-signature, as a school renews its key rather than replacing it."""
        for which in ((), ("*",)):
            subprocess.run(
                [
                    "gpg",
                    "--homedir",
                    str(self.home),
                    "--batch",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    key.passphrase or "",
                    "--quick-set-expire",
                    key.fingerprint,
                    expires.isoformat(),
                    *which,
                ],
                check=True,
                capture_output=True,
            )
        public = self._gpg.export_keys(key.fingerprint, armor=True).encode("ascii")
        return PgpKey(
            email=key.email,
            fingerprint=key.fingerprint,
            public=public,
            secret=key.secret,
            passphrase=key.passphrase,
            expires=expires,
        )

    def _revocation(self, fingerprint: str) -> bytes:
        # GnuPG 2.2 writes a revocation certificate at generation; its armor line is
        # prefixed with ':' so that an accidental import does nothing.
        certificate = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text("ascii")
        armored = certificate.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK"
        )
        return armored.encode("ascii")


def recipient_keyring(home: Path, key: PgpKey, navigator: PgpKey) -> Keyring:
    """A DSL's own GnuPG home: their secret key, and the Navigator's public key to verify."""
    keyring = open_keyring(home)
    key.install_secret(keyring)
    navigator.install_public(keyring)
    return keyring
