"""The CLI reports a refusal (``onepass.refusals``) on stderr with exit status 1, and
lets anything else through with its traceback: a bug is never a tidy message."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from onepass.cli import common
from onepass.cli.common import run
from onepass.refusals import Conflict
from onepass.runtime import Runtime
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONEPASS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ONEPASS_SECRET_KEY", TEST_SECRET_KEY)
    # run() configures logging for a command's process: not for the test session's.
    monkeypatch.setattr(common, "configure_logging", lambda *_args, **_kwargs: None)


async def refused(_runtime: Runtime) -> None:
    raise Conflict("user 2 is already merged")


async def broken(_runtime: Runtime) -> None:
    raise ValueError("invalid literal for int() with base 10: 'x'")


def test_a_refusal_is_reported_with_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        run(refused, check_schema=False)
    assert exited.value.exit_code == 1
    assert capsys.readouterr().err == "onepass: user 2 is already merged\n"


def test_a_bug_is_not_reported_as_a_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        run(broken, check_schema=False)
    assert "onepass:" not in capsys.readouterr().err
