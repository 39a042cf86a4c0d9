"""Bad push signatures lock the address out a while (admission.py's hook into
api/guard.Guard); a right signature from another address is still admitted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from liverec.admission import Admission
from liverec.api.guard import Guard, GuardSettings
from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.errors import RefusedError
from liverec.rtmp.pushauth import push_signature
from liverec.rtmp.session import PublishRequest
from liverec.storage import LocalStore

APP = "app"


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP, is_default=True)
    catalog.create_entry_point(APP, "live", auth_key="k3y")
    yield catalog
    engine.dispose()


def request(peer: str, **query: str) -> PublishRequest:
    return PublishRequest(
        app="live",
        stream_name="cam",
        query=query,
        tc_url="rtmp://example.com/live",
        host="example.com",
        peer=peer,
    )


def test_bad_push_signatures_lock_the_address_out(catalog: Catalog, tmp_path: Path) -> None:
    refusals: list[str] = []
    adm = Admission(
        catalog,
        LocalStore(tmp_path / "store"),
        node_id="n",
        region="na",
        lease_seconds=30,
        clock=lambda: datetime.now(UTC),
    )
    adm.push_guard = Guard(GuardSettings(ip_failures=3, lockout=30), on_refusal=refusals.append)
    ts = str(int(datetime.now(UTC).timestamp()) + 600)
    messages = []
    for n in range(5):
        with pytest.raises(RefusedError) as refused:
            adm.admit(request("10.0.0.66:4000", ts=ts, sign=f"{n:064x}"))
        assert refused.value.code == "NetStream.Publish.Unauthorized"
        messages.append(str(refused.value))
    assert all("too many bad push signatures" in m for m in messages[3:])
    assert refusals == ["push_bad_signature"] * 3 + ["push_locked"] * 2
    good = request("10.0.0.7:4000", ts=ts, sign=push_signature("k3y", "live", "cam", ts))
    assert adm.admit(good).record
    locked = dataclasses.replace(good, peer="10.0.0.66:4001")
    with pytest.raises(RefusedError):
        adm.admit(locked)  # the guessing address waits, even with the right signature
