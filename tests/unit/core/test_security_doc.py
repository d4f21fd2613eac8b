"""docs/security.md names the test behind each security rule; those names must run.

Every ``tests/…::test_…`` node id in the page must be a test function that pytest
collects (a ``test_*.py`` file under tests/ defining it, at module level or in a
``Test*`` class), so a renamed or removed test breaks this test instead of leaving
the page pointing at nothing. A row still waiting for its test (``TBD-LEAD``) fails
too: the page is complete only when every row names one.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "security.md"
NODE_ID = re.compile(r"(tests/[\w/]+\.py)::((?:Test\w+::)?test_\w+)")
UNFILLED = "TBD-LEAD"


@cache
def _tests_in(path: Path) -> frozenset[str]:
    """The test functions pytest collects from one file, as ``name`` or ``Class::name``."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(n for n in names if n.rsplit("::", 1)[-1].startswith("test_"))


def _missing(text: str) -> list[str]:
    missing = []
    for file, test in NODE_ID.findall(text):
        path = ROOT / file
        if not (path.name.startswith("test_") and path.is_file() and test in _tests_in(path)):
            missing.append(f"{file}::{test}")
    return missing


def test_every_node_id_in_the_security_doc_names_an_existing_test() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = NODE_ID.findall(text)
    assert len(named) >= 80, f"only {len(named)} node ids found: is the pattern still right?"
    assert _missing(text) == []


def test_a_renamed_test_in_the_security_doc_is_caught() -> None:
    real = (
        "`tests/unit/core/test_security_doc.py::test_a_renamed_test_in_the_security_doc_is_caught`"
    )
    assert _missing(real) == []
    assert _missing(real.replace("is_caught", "is_missed")) != []
    assert _missing("`tests/unit/core/no_such_file.py::test_x`") != []
    assert _missing("`tests/unit/core/test_security_doc.py::test_x[sqlite]`") != []


def test_the_security_doc_has_no_row_waiting_for_its_test() -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if UNFILLED in line]
    assert rows == [], f"{len(rows)} row(s) still say {UNFILLED}: name their tests"
