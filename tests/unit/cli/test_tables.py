"""The CLI's tables at 80 columns: identifiers whole, long values wrapped, columns left
out (with a note) only when nothing else fits, "none" for no rows."""

from __future__ import annotations

import pytest

from onepass.cli.common import print_table

KID = "kid_" + "x" * 40  # a long kid: the width of a JWK thumbprint and more


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    return out.splitlines()


def test_table_with_no_rows_prints_its_title_and_none(capsys: pytest.CaptureFixture[str]) -> None:
    print_table([], ("kid", "state"), title="signing keys")
    assert lines(capsys) == ["signing keys: none"]


def test_table_keeps_a_long_kid_whole_and_wraps_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [{"kid": KID, "state": "active", "note": "a long note " * 4}]
    print_table(rows, ("kid", "state", "note"), title="keys")
    out = lines(capsys)
    assert any(KID in line for line in out), out
    assert sum("a long note" in line for line in out) >= 2  # wrapped, not cut
    assert not any("…" in line for line in out)


def test_table_too_wide_leaves_out_empty_then_last_columns_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    columns = ("kid", "alg", "state", "created_at", "activated_at", "retired_at", "removed_at")
    rows = [
        {
            "kid": KID,
            "alg": "ES256",
            "state": "active",
            "created_at": "2026-01-31 12:00:00Z",
            "activated_at": "2026-01-31 12:05:00Z",
            "retired_at": "2026-02-01 00:00:00Z",
            "removed_at": None,
        }
    ]
    print_table(rows, columns, title="keys")
    out = lines(capsys)
    assert any(KID in line for line in out)
    note = " ".join(out[-2:])
    assert note.startswith("(not shown at this width: "), out
    assert "--json has every field" in note
    left_out = note.split(": ", 1)[1].split(";")[0].replace(" ", "").split(",")
    # The empty column first, then from the end; the first columns stay.
    assert "removed_at" in left_out and "alg" not in left_out and "state" not in left_out
