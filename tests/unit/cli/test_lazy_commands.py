"""The ``onepass`` command imports a group's module only when that group is used.

Every command is a new process, and importing every group cost about a second per call;
`onepass.cli.main` lists the groups by module name instead."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from onepass.cli.main import COMMANDS, app

PROBE = """
import sys
from onepass.cli.main import main
sys.argv = ["onepass", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(" ".join(sorted(m for m in sys.modules if m.startswith(("onepass.", "sqlalchemy")))))
"""


def modules_after(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return set(out.splitlines()[-1].split())


def test_version_imports_no_command_group() -> None:
    assert modules_after("--version") == {"onepass.cli", "onepass.cli.main"}


def test_a_group_imports_its_own_module_and_not_the_others() -> None:
    loaded = modules_after("db", "--help")
    assert "onepass.cli.db" in loaded
    assert not {"onepass.cli.admin", "onepass.cli.ops", "onepass.cli.webhooks"} & loaded


def test_help_lists_every_command_in_order() -> None:
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    rows = [line.split()[1] for line in out.splitlines() if line.startswith("│ ")]
    assert rows[-len(COMMANDS) :] == list(COMMANDS)


def test_commands_registered_from_another_module_are_there() -> None:
    runner = CliRunner()
    for path in (["users", "merge"], ["webhooks", "backfill-links"], ["admin", "tokens", "list"]):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert f"onepass {' '.join(path)}" in " ".join(result.output.split())


def test_a_mistyped_group_is_suggested_without_loading_it() -> None:
    result = CliRunner().invoke(app, ["user"])
    assert result.exit_code == 2
    assert "Did you mean 'users'" in result.output
