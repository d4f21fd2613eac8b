"""The playbook (``onepass.playbook``) is the only writer of audit rows and the only
taker of the procedures' locks: a scan of the package's source, no database."""

from __future__ import annotations

import ast
from pathlib import Path

import onepass

PACKAGE = Path(onepass.__file__).parent
PLAYBOOK = PACKAGE / "playbook"

# The audit log's writers (onepass.operators.audit) and the procedures' locks.
AUDIT_WRITERS = {"add", "record", "record_refusal"}
LOCKS = {"KEYS_LOCK", "OUTBOX_LOCK", "INCIDENTS_LOCK", "keys_lock"}

# Where else they may appear, and why.
AUDIT_ELSEWHERE = {
    # The writer itself.
    "operators/audit.py",
}
LOCKS_ELSEWHERE = {
    # Start-up creates missing signing keys before the workers start, under KEYS_LOCK.
    "startup.py",
}


def modules() -> list[tuple[str, ast.Module]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PLAYBOOK in path.parents:
            continue
        found.append((path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text())))
    return found


def audit_names(tree: ast.Module) -> set[str]:
    """The names this module gives onepass.operators.audit (``from … import audit``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "onepass.operators":
            names |= {a.asname or a.name for a in node.names if a.name == "audit"}
        if isinstance(node, ast.ImportFrom) and node.module == "onepass.operators.audit":
            names |= {"<direct>"} if any(a.name in AUDIT_WRITERS for a in node.names) else set()
    return names


def test_only_the_playbook_writes_audit_rows() -> None:
    writers = []
    for name, tree in modules():
        if name in AUDIT_ELSEWHERE:
            continue
        aliases = audit_names(tree)
        if "<direct>" in aliases:
            writers.append(f"{name}: imports an audit writer")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in AUDIT_WRITERS
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                writers.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not writers, "audit rows are the playbook's to write (onepass.playbook):\n" + "\n".join(
        writers
    )


def test_only_the_playbook_takes_the_procedures_locks() -> None:
    takers = []
    for name, tree in modules():
        if name in LOCKS_ELSEWHERE:
            continue
        for node in ast.walk(tree):
            used = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used = node.id
            elif isinstance(node, ast.Attribute):
                used = node.attr
            if used in LOCKS:
                takers.append(f"{name}:{node.lineno}: {used}")
            if isinstance(node, ast.keyword) and node.arg == "exclusive":
                takers.append(f"{name}:{node.value.lineno}: exclusive=")
    assert not takers, (
        "procedure locks are the playbook's to take (onepass.playbook):\n" + "\n".join(takers)
    )


def test_the_scan_sees_the_playbook_do_both() -> None:
    """The checks above would pass on an empty package: the playbook does write and lock."""
    sources = "\n".join(p.read_text() for p in PLAYBOOK.glob("*.py"))
    assert "audit.add(" in sources and "exclusive=" in sources
