"""SecretBox (sealing with a key kept apart from the catalog) and secret hashing."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from liverec.catalog import SecretBox
from liverec.catalog.secrets import hash_secret, verify_secret
from liverec.config import Settings
from liverec.errors import CatalogError, ConfigError


def test_seal_and_open_round_trip() -> None:
    box = SecretBox(SecretBox.generate_key())
    sealed = box.seal("pässwörd ✓")
    assert "pässwörd" not in sealed
    assert sealed != box.seal("pässwörd ✓")  # a fresh IV each time
    assert box.open(sealed) == "pässwörd ✓"


def test_opening_with_the_wrong_key_is_a_catalog_error() -> None:
    sealed = SecretBox(SecretBox.generate_key()).seal("secret")
    with pytest.raises(CatalogError, match="not the one it was sealed with"):
        SecretBox(SecretBox.generate_key()).open(sealed)
    with pytest.raises(CatalogError):
        SecretBox(SecretBox.generate_key()).open("not a token")


@pytest.mark.parametrize("key", ["", "short", "x" * 44])
def test_malformed_keys_are_config_errors(key: str) -> None:
    with pytest.raises(ConfigError):
        SecretBox(key)


def test_key_file_is_made_0600_once_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = SecretBox.from_settings(settings)
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = first.seal("x")
    assert SecretBox.from_settings(settings).open(sealed) == "x"
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]


def test_racing_key_file_creation_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(6)

    def make() -> None:
        barrier.wait()
        boxes.append(SecretBox.from_key_file(path))

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sealed = boxes[0].seal("x")
    assert all(b.open(sealed) == "x" for b in boxes)
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_settings_key_wins_over_the_file(tmp_path: Path) -> None:
    key = SecretBox.generate_key()
    box = SecretBox.from_settings(Settings(data_dir=tmp_path, secret_key=key))
    assert SecretBox(key).open(box.seal("y")) == "y"
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(ConfigError):
        SecretBox.from_settings(Settings(data_dir=tmp_path, secret_key="bad"))


def test_secret_hash_is_salted_and_verifies() -> None:
    h1, h2 = hash_secret("s3cret"), hash_secret("s3cret")
    assert h1 != h2 and h1.startswith("scrypt$")
    assert "s3cret" not in h1
    assert verify_secret(h1, "s3cret") and verify_secret(h2, "s3cret")
    assert not verify_secret(h1, "s3cre") and not verify_secret(h1, "")
    with pytest.raises(CatalogError):
        verify_secret("md5$abc", "s3cret")


def test_unreadable_key_file_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("garbage\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError):
        SecretBox.from_key_file(path)
    assert path.read_text() == "garbage\n"
