"""Stored secrets: sealed (Fernet) where the code needs them back, hashed (scrypt) where it
only needs to check them. The Fernet key lives outside the catalog: in the settings, or in
`{data_dir}/secret.key` (created 0600 on first use)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from liverec.config import Settings
from liverec.errors import CatalogError, ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

KEY_FILE_NAME = "secret.key"

# scrypt cost: about 30 ms and 16 MiB on one core; slow enough to make guessing a leaked
# hash expensive, fast enough for an API call.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_HASH_LEN = 32


class SecretBox:
    """Seals and opens short strings with one Fernet key."""

    def __init__(self, key: str | bytes) -> None:
        # Checked as Fernet checks it; Fernet itself (cryptography's Rust library, ~6 MB
        # of RSS) loads on the first seal or open, which an idle node may never make.
        try:
            self._raw = base64.urlsafe_b64decode(key)
        except (ValueError, TypeError):
            self._raw = b""
        if len(self._raw) != 32:
            raise ConfigError(
                "secret key must be a url-safe base64 32-byte Fernet key "
                "(make one with `liverec.catalog.SecretBox.generate_key()`)"
            )
        self._key = key
        self._box: Fernet | None = None

    @property
    def _fernet(self) -> Fernet:
        if self._box is None:
            from cryptography.fernet import Fernet

            self._box = Fernet(self._key)
        return self._box

    @staticmethod
    def generate_key() -> str:
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The key from `secret_key`, else from `{data_dir}/secret.key` (made if missing)."""
        if settings.secret_key:
            return cls(settings.secret_key)
        return cls.from_key_file(settings.data_dir / KEY_FILE_NAME)

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """Read the key file, creating it (0600, atomically) if it does not exist."""
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, cls.generate_key().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link() fails if another process made the key first: then use theirs. Readers
            # never see a half-written key file.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return cls(path.read_bytes().strip())

    def derive(self, purpose: str) -> bytes:
        """A key for another use (signing file URLs), derived so that every node sharing
        the secret key derives the same one, and it reveals nothing of the secret key."""
        return hmac.new(self._raw, b"liverec:" + purpose.encode(), hashlib.sha256).digest()

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        fernet = self._fernet
        from cryptography.fernet import InvalidToken

        try:
            return fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise CatalogError(
                "a stored secret cannot be decrypted: the secret key is not the one it was "
                "sealed with"
            ) from None


def hash_secret(secret: str) -> str:
    """A salted scrypt hash, self-describing: `scrypt$N$r$p$salt$hash` (base64)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_secret(stored: str, secret: str) -> bool:
    """Does `secret` match the stored hash? Constant time in the secret's content."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = _scrypt(secret, salt, int(n), int(r), int(p))
    except ValueError:
        raise CatalogError("a stored secret hash is malformed") from None
    return hmac.compare_digest(digest, expected)


@functools.cache
def dummy_hash() -> str:
    """A hash of a random secret: checked against when a customer ID is unknown, so that an
    unknown ID costs the same time as a wrong secret."""
    return hash_secret(secrets.token_hex(16))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_SCRYPT_MAXMEM,
        dklen=_HASH_LEN,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
