"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_RP = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_rp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed (CI has them)")
    where = tmp_path_factory.mktemp("node-rp")
    for path in [NODE_RP / "package.json", NODE_RP / "package-lock.json", *NODE_RP.glob("*.mjs")]:
        shutil.copy(path, where / path.name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=where,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return where
