"""Customer credentials: stored sealed and hashed, checked in constant time, scoped to
projects, revocable."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog, SecretBox, secrets
from liverec.catalog.schema import credentials
from liverec.catalog.secrets import verify_secret
from liverec.errors import CatalogError, ConflictError, NotFoundError


@pytest.fixture
def projects(catalog: Catalog) -> Catalog:
    catalog.create_project("app1")
    catalog.create_project("app2")
    return catalog


def test_random_credentials_are_32_hex_and_the_secret_is_shown_once(projects: Catalog) -> None:
    cred, secret = projects.create_credential(None, None, ["app1"])
    assert re.fullmatch(r"[0-9a-f]{32}", cred.customer_id)
    assert re.fullmatch(r"[0-9a-f]{32}", secret)
    assert cred.app_ids == ("app1",) and not cred.revoked
    assert cred.created_at.tzinfo is not None
    assert projects.list_credentials() == [cred]
    assert secret not in repr(projects.list_credentials())


def test_secret_is_stored_sealed_and_hashed_never_plain(
    projects: Catalog, engine: sa.Engine, box: SecretBox
) -> None:
    projects.create_credential("cust", "the-plain-secret", ["app1"])
    with engine.connect() as conn:
        row = conn.execute(sa.select(credentials)).one()
    assert "the-plain-secret" not in repr(tuple(row))
    assert box.open(row.secret_sealed) == "the-plain-secret"
    assert verify_secret(row.secret_hash, "the-plain-secret")
    assert projects.credential_secret("cust") == "the-plain-secret"
    assert projects.credential_secret("unknown") is None


def test_a_wrong_key_cannot_open_the_secret(projects: Catalog, engine: sa.Engine) -> None:
    projects.create_credential("cust", "sec", ["app1"])
    other = Catalog(engine, SecretBox(SecretBox.generate_key()))
    with pytest.raises(CatalogError):
        other.credential_secret("cust")
    # Basic auth does not need the key: it checks the hash.
    assert other.verify_basic("cust", "sec") is not None


def test_verify_basic(projects: Catalog) -> None:
    cred, secret = projects.create_credential("cust", None, ["app1", "app2"])
    assert projects.verify_basic("cust", secret) == cred
    assert projects.verify_basic("cust", secret) == cred  # the remembered path
    assert projects.verify_basic("cust", secret + "x") is None
    assert projects.verify_basic("cust", "") is None
    assert projects.verify_basic("other", secret) is None
    assert projects.verify_basic("cust", secret.upper()) is None


def test_revoked_credentials_do_nothing(projects: Catalog) -> None:
    _, secret = projects.create_credential("cust", None, ["app1"])
    assert projects.verify_basic("cust", secret) is not None
    projects.revoke_credential("cust")
    assert projects.verify_basic("cust", secret) is None
    assert projects.credential_secret("cust") is None
    assert not projects.credential_can_access("cust", "app1")
    assert projects.list_credentials()[0].revoked
    with pytest.raises(NotFoundError):
        projects.revoke_credential("nobody")
    with pytest.raises(ConflictError):  # a revoked ID is not reused
        projects.create_credential("cust", None, [])


def test_unknown_id_wrong_secret_and_revoked_cost_the_same_work(
    projects: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hash check (scrypt, ~30 ms) dwarfs a lookup (~1 ms): were it skipped for an
    # unknown ID or a revoked credential, that path would answer many times faster. Each
    # path must run exactly one scrypt of the same cost (counted, not timed: the real
    # function still runs).
    projects.create_credential("cust", None, ["app1"])
    projects.create_credential("gone", "s", ["app1"])
    projects.revoke_credential("gone")
    calls: list[tuple[int, int, int]] = []
    real = secrets._scrypt

    def counted(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        calls.append((n, r, p))
        return real(secret, salt, n, r, p)

    monkeypatch.setattr(secrets, "_scrypt", counted)
    work = {}
    for who, secret in (("cust", "wrong"), ("nobody", "wrong"), ("gone", "s")):
        calls.clear()
        assert projects.verify_basic(who, secret) is None
        work[who] = list(calls)
    assert len(work["cust"]) == 1 and work["nobody"] == work["gone"] == work["cust"]


def test_access_is_per_granted_project(projects: Catalog) -> None:
    projects.create_credential("cust", "s", ["app1"])
    assert projects.credential_can_access("cust", "app1")
    assert not projects.credential_can_access("cust", "app2")
    assert not projects.credential_can_access("cust", "nope")
    assert not projects.credential_can_access("nobody", "app1")
    projects.grant("cust", "app2")
    projects.grant("cust", "app2")  # again: no error
    assert projects.credential_can_access("cust", "app2")
    assert projects.list_credentials()[0].app_ids == ("app1", "app2")
    with pytest.raises(NotFoundError):
        projects.grant("cust", "nope")
    with pytest.raises(NotFoundError):
        projects.grant("nobody", "app1")


def test_bad_credential_input(projects: Catalog) -> None:
    with pytest.raises(NotFoundError):
        projects.create_credential("cust", "s", ["nope"])
    assert projects.list_credentials() == []  # nothing half-made
    with pytest.raises(CatalogError):
        projects.create_credential("has:colon", "s", [])
    with pytest.raises(CatalogError):
        projects.create_credential("cust", "", [])
    with pytest.raises(CatalogError):
        projects.create_credential("cust", "line\nbreak", [])
    projects.create_credential("cust", "s", [])
    with pytest.raises(ConflictError):
        projects.create_credential("cust", "t", ["app1"])
