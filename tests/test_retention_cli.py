"""`liverec entry-points add|set --retention`, run as a user runs it."""

from __future__ import annotations

from pathlib import Path

from test_cli import data_dir, failed, ok, run

__all__ = ["data_dir"]  # the fixture, shared with test_cli


def test_retention_is_set_listed_and_cleared(tmp_path: Path, data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    out = ok(run(tmp_path, "entry-points", "set", "live", "--retention", "7d", *d))
    assert "retention: 7d" in out
    assert "retention=7d" in ok(run(tmp_path, "entry-points", "list", *d))
    out = ok(run(tmp_path, "entry-points", "add", "short", "--retention", "36h", *d))
    assert "retention: 36h" in out
    assert "retention=36h" in ok(run(tmp_path, "entry-points", "list", *d))
    ok(run(tmp_path, "entry-points", "set", "live", "--retention", "forever", *d))
    assert "retention=forever" in ok(run(tmp_path, "entry-points", "list", *d))
    ok(run(tmp_path, "entry-points", "set", "short", "--retention", "0", *d))
    listing = ok(run(tmp_path, "entry-points", "list", *d))
    assert "retention=7d" not in listing and "retention=36h" not in listing


def test_bad_retention_values_are_refused(tmp_path: Path, data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    failed(run(tmp_path, "entry-points", "set", "live", "--retention", "7x", *d), "--retention")
    failed(run(tmp_path, "entry-points", "set", "live", "--retention=-1d", *d), "e.g. 36h, 7d")
    failed(
        run(tmp_path, "entry-points", "add", "nope", "--retention", "soon", *d), "not a retention"
    )
    # nothing was made by the refused `add`
    assert "nope" not in ok(run(tmp_path, "entry-points", "list", *d))
