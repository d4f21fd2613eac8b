"""One source for the version: the package, its metadata and ``onepass --version`` agree."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import onepass


def test_version_command_prints_the_installed_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "onepass", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.strip() == f"onepass {onepass.__version__}"
    assert importlib.metadata.version("onepass") == onepass.__version__
