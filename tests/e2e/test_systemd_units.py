"""deploy/systemd's units as systemd itself reads them: no unknown or misspelt key, and
the hardening systemd offers in place (`systemd-analyze security` rates the exposure)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


@pytest.mark.parametrize("unit", ["onepass.service", "onepass-dispatch.service"])
def test_unit_is_valid_and_hardened(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is needed (.ci/run installs systemd)")
    # The unit as shipped, with the executable where this checkout has it.
    text = (UNITS / unit).read_text()
    onepass = Path(sys.executable).with_name("onepass")
    path = tmp_path / unit
    path.write_text(text.replace("/opt/onepass/.venv/bin/onepass", str(onepass)))

    verify = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    complaints = [
        line for line in verify.stderr.splitlines() if str(path) in line or "Unknown" in line
    ]
    assert complaints == [], complaints

    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", security.stdout)
    assert found is not None, security.stdout[-2000:]
    assert float(found.group(1)) <= 2.0, security.stdout[-3000:]
    assert "User=onepass" in text and "NoNewPrivileges=yes" in text
