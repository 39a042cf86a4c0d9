"""Customer credentials (customer ID + secret) and the projects each may reach.

A secret is stored twice: sealed (the HMAC scheme needs it back to sign) and as a scrypt
hash (Basic auth checks against it). Checking a hash costs ~30 ms; to keep API calls fast a
successful check is remembered in memory as an HMAC of the secret under a per-process key,
so a repeat of the same right secret costs microseconds. Anything else runs scrypt."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

from sqlalchemy import Connection, Engine, and_, insert, select, update

from liverec.catalog._base import Clock, RepoBase, insert_ignore, utc_now
from liverec.catalog.models import Credential, from_ms
from liverec.catalog.names import check_customer_id, check_secret
from liverec.catalog.schema import credentials, grants, projects
from liverec.catalog.secrets import SecretBox, dummy_hash, hash_secret, verify_secret
from liverec.errors import ConflictError, NotFoundError

_CACHE_SIZE = 1024


class _VerifiedCache:
    """(customer_id, stored hash) -> HMAC of the secret that matched it."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _mac(self, secret: str) -> bytes:
        return hmac.digest(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)

    def matches(self, customer_id: str, stored: str, secret: str) -> bool:
        with self._lock:
            known = self._entries.get((customer_id, stored))
            if known is not None:
                self._entries.move_to_end((customer_id, stored))
        return known is not None and hmac.compare_digest(known, self._mac(secret))

    def remember(self, customer_id: str, stored: str, secret: str) -> None:
        mac = self._mac(secret)
        with self._lock:
            self._entries[(customer_id, stored)] = mac
            while len(self._entries) > _CACHE_SIZE:
                self._entries.popitem(last=False)


class CredentialsRepo(RepoBase):
    def __init__(self, engine: Engine, box: SecretBox, clock: Clock = utc_now) -> None:
        super().__init__(engine, box, clock)
        self._verified = _VerifiedCache()

    def create_credential(
        self, customer_id: str | None, secret: str | None, app_ids: list[str]
    ) -> tuple[Credential, str]:
        """A new credential granted the given projects. A None customer_id or secret is made
        up (32 hex digits). Returns the plain secret: this is the only time it is shown."""
        customer_id = secrets.token_hex(16) if customer_id is None else customer_id
        secret = secrets.token_hex(16) if secret is None else secret
        check_customer_id(customer_id)
        check_secret(secret)
        hashed = hash_secret(secret)  # slow: outside the transaction
        now = self._now_ms()
        try:
            with self._write() as conn:
                project_ids = [self._project_id(conn, app_id) for app_id in app_ids]
                pk = conn.execute(
                    insert(credentials).values(
                        customer_id=customer_id,
                        secret_sealed=self._box.seal(secret),
                        secret_hash=hashed,
                        created_ms=now,
                        revoked=False,
                    )
                ).inserted_primary_key
                assert pk is not None
                for pid in sorted(set(project_ids)):
                    conn.execute(insert(grants).values(credential_id=pk[0], project_id=pid))
        except ConflictError:
            raise ConflictError(f"customer ID {customer_id!r} exists already") from None
        credential = Credential(
            customer_id=customer_id,
            app_ids=tuple(sorted(set(app_ids))),
            created_at=from_ms(now),
            revoked=False,
        )
        return credential, secret

    def list_credentials(self) -> list[Credential]:
        with self._read() as conn:
            rows = conn.execute(
                select(credentials.c.id, credentials.c.customer_id).order_by(credentials.c.id)
            ).all()
            return [self._credential(conn, cid) for cid, _ in rows]

    def revoke_credential(self, customer_id: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                update(credentials)
                .where(credentials.c.customer_id == customer_id)
                .values(revoked=True)
            ).rowcount
        if not done:
            raise NotFoundError(f"credential {customer_id!r} does not exist")

    def grant(self, customer_id: str, app_id: str) -> None:
        """Let the credential reach the project (no error if it already can)."""
        with self._write() as conn:
            pid = self._project_id(conn, app_id)
            cid = self._credential_id(conn, customer_id)
            insert_ignore(conn, grants, {"credential_id": cid, "project_id": pid})

    def verify_basic(self, customer_id: str, secret: str) -> Credential | None:
        """The credential if the secret is right and it is not revoked, else None. An unknown
        ID, a wrong secret and a revoked credential take the same time."""
        with self._read() as conn:
            row = conn.execute(
                select(credentials.c.id, credentials.c.secret_hash, credentials.c.revoked).where(
                    credentials.c.customer_id == customer_id
                )
            ).one_or_none()
        if row is None:
            verify_secret(dummy_hash(), secret)
            return None
        m = row._mapping
        cid, stored, revoked = m["id"], m["secret_hash"], m["revoked"]
        if revoked:
            verify_secret(stored, secret)
            return None
        cache = self._verified
        if not cache.matches(customer_id, stored, secret):
            if not verify_secret(stored, secret):
                return None
            cache.remember(customer_id, stored, secret)
        with self._read() as conn:
            return self._credential(conn, cid)

    def credential_secret(self, customer_id: str) -> str | None:
        """The plain secret (for the HMAC scheme); None if unknown or revoked."""
        with self._read() as conn:
            row = conn.execute(
                select(credentials.c.secret_sealed, credentials.c.revoked).where(
                    credentials.c.customer_id == customer_id
                )
            ).one_or_none()
        if row is None or row._mapping["revoked"]:
            return None
        return str(self._box.open(row._mapping["secret_sealed"]))

    def credential_can_access(self, customer_id: str, app_id: str) -> bool:
        with self._read() as conn:
            found = conn.execute(
                select(grants.c.project_id)
                .join(credentials, credentials.c.id == grants.c.credential_id)
                .join(projects, projects.c.id == grants.c.project_id)
                .where(
                    and_(
                        credentials.c.customer_id == customer_id,
                        projects.c.app_id == app_id,
                        credentials.c.revoked.is_(False),
                    )
                )
            ).first()
        return found is not None

    @staticmethod
    def _credential_id(conn: Connection, customer_id: str) -> int:
        cid = conn.execute(
            select(credentials.c.id).where(credentials.c.customer_id == customer_id)
        ).scalar_one_or_none()
        if cid is None:
            raise NotFoundError(f"credential {customer_id!r} does not exist")
        return int(cid)

    @staticmethod
    def _credential(conn: Connection, credential_id: int) -> Credential:
        customer_id, created_ms, revoked = conn.execute(
            select(
                credentials.c.customer_id, credentials.c.created_ms, credentials.c.revoked
            ).where(credentials.c.id == credential_id)
        ).one()
        app_ids = conn.execute(
            select(projects.c.app_id)
            .join(grants, grants.c.project_id == projects.c.id)
            .where(grants.c.credential_id == credential_id)
            .order_by(projects.c.app_id)
        ).scalars()
        return Credential(
            customer_id=customer_id,
            app_ids=tuple(app_ids),
            created_at=from_ms(created_ms),
            revoked=bool(revoked),
        )
