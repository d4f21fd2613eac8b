"""What this process runs: its version, the git commit it was built from when known, and
the newest migration it ships (``/readyz``, ``/metrics``, ``onepass triage``).

The playbook's first triage question is "which deploys are recent, and was the last one
green?"; every process answers it for itself here.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from onepass import __version__

PACKAGE = Path(__file__).parent
VERSIONS = PACKAGE / "db" / "migrations" / "versions"
# Written by the image build (deploy/Containerfile) where there is no git checkout.
COMMIT_FILE = PACKAGE / "COMMIT"
_REVISION = re.compile(r"^(\d{4})_\w+\.py$")
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class Release:
    version: str
    commit: str | None
    revision: str  # the newest migration this code ships (its schema head)

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        return f"{self.version}+{(self.commit or 'unknown')[:12]} (schema {self.revision})"


def head_revision(versions: Path = VERSIONS) -> str:
    """The newest migration: revisions are numbered in order (CONTRIBUTING.md), one line
    of history, so the highest number is the head (a unit test checks Alembic agrees)."""
    found = [m.group(1) for p in versions.iterdir() if (m := _REVISION.match(p.name))]
    return max(found)


def _commit() -> str | None:
    given = os.environ.get("ONEPASS_RELEASE_COMMIT", "").strip().lower()
    if _SHA.match(given):
        return given
    try:
        written = COMMIT_FILE.read_text().strip().lower()
    except OSError:
        written = ""
    if _SHA.match(written):
        return written
    if not (PACKAGE.parent / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - a development checkout only
            cwd=PACKAGE.parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if _SHA.match(out) else None


@functools.cache
def current() -> Release:
    """This process's release, read once."""
    return Release(version=__version__, commit=_commit(), revision=head_revision())


def schema_state(applied: str | None, shipped: str) -> tuple[bool, str]:
    """Whether code shipping migration ``shipped`` may serve on a database at ``applied``.

    Migrations are expand/contract (CONTRIBUTING.md): release N runs on the schema of
    N+1, so a database ahead of the code is ready; one behind it is not (run
    ``onepass db upgrade``)."""
    if applied is None:
        return False, "no migration applied: run onepass db upgrade"
    if applied == shipped:
        return True, f"at {applied}"
    if applied.isdigit() and shipped.isdigit() and int(applied) > int(shipped):
        return True, f"at {applied}, ahead of this release's {shipped} (expand/contract)"
    return False, f"at {applied}, behind this release's {shipped}: run onepass db upgrade"
