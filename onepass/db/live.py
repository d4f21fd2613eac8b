"""Whether a migration is safe to run while the previous release serves
(``onepass db upgrade --check``).

Rolling upgrades follow expand/contract (CONTRIBUTING.md): release N+1's migrations only
add (tables, indexes, nullable columns or columns with a server default), so release N
keeps working on the new schema while hosts are upgraded one by one; what removes or
changes (drop, rename, a type or nullability change, a column N does not write) waits
for a later release, once no process runs N any more.

Each pending migration's ``upgrade()`` is run against a recorder standing in for
Alembic's ``op``, which sees every operation and its real arguments (the columns as
SQLAlchemy builds them, helpers included), and classifies it:

- ``expand``: safe live;
- ``review``: safe for the previous release, but costs something live (an index built on
  an existing table takes a write lock on PostgreSQL for the build; raw SQL cannot be
  judged here);
- ``contract``: the previous release breaks, or the migration fails on existing rows
  (e.g. a NOT NULL column without a default); run it only once every process runs a
  release that no longer needs what it removes.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

VERSIONS = Path(__file__).parent / "migrations" / "versions"


class Verdict(StrEnum):
    EXPAND = "expand"
    REVIEW = "review"
    CONTRACT = "contract"

    @property
    def rank(self) -> int:
        return {"expand": 0, "review": 1, "contract": 2}[self.value]


@dataclass
class Assessment:
    revision: str
    path: Path
    verdict: Verdict = Verdict.EXPAND
    reasons: list[str] = field(default_factory=list)

    def note(self, verdict: Verdict, reason: str) -> None:
        self.reasons.append(f"{verdict.value}: {reason}")
        if verdict.rank > self.verdict.rank:
            self.verdict = verdict

    def describe(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "file": self.path.name,
            "verdict": self.verdict.value,
            "safe_live": self.verdict is Verdict.EXPAND,
            "reasons": self.reasons,
        }


# Operations that only add.
_ADDING = {"create_table", "f", "batch_alter_table", "get_bind", "get_context"}
# Operations that remove or change what the previous release reads or writes.
_CONTRACTING = {
    "drop_table",
    "drop_column",
    "drop_constraint",
    "drop_index",
    "rename_table",
    "alter_column",
    "create_primary_key",
    "create_unique_constraint",
    "create_foreign_key",
    "create_check_constraint",
    "bulk_insert",
}
# Constraints that are safe on columns this migration adds (nothing the previous release
# writes is checked), at the cost of a short lock while PostgreSQL validates the rows.
_CONSTRAINTS = {"create_unique_constraint", "create_foreign_key", "create_check_constraint"}


# Operations of ``op`` whose first argument is a name and the second the table.
_NAMED_FIRST = {
    "create_index",
    "drop_index",
    "drop_constraint",
    "create_unique_constraint",
    "create_foreign_key",
    "create_check_constraint",
    "create_primary_key",
}


def _table_of(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if name in _NAMED_FIRST:
        given = args[1] if len(args) > 1 else kwargs.get("table_name", kwargs.get("source_table"))
    else:
        given = args[0] if args else kwargs.get("table_name")
    return None if given is None else str(given)


class _Recorder:
    """Stands in for ``alembic.op`` (and a batch's ``batch_op``) and judges each call."""

    def __init__(
        self,
        assessment: Assessment,
        created: set[str],
        table: str | None = None,
        added: set[tuple[str, str]] | None = None,
    ):
        self._assessment = assessment
        self._created = created  # tables created by this migration
        self._table = table
        self._added = added if added is not None else set()  # (table, column) it adds

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._judge(name, args, kwargs)

        return call

    def _judge(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        a = self._assessment
        if name == "f":
            return args[0]
        if name == "get_bind":
            return SimpleNamespace(dialect=SimpleNamespace(name="postgresql"))
        if name == "create_table":
            self._created.add(str(args[0]))
            return None
        if name == "batch_alter_table":
            return self._batch(str(args[0]))
        table = self._table or _table_of(name, args, kwargs)
        if name == "create_index":
            if table not in self._created:
                a.note(
                    Verdict.REVIEW,
                    f"index {args[0]} on existing table {table}: PostgreSQL blocks writes to "
                    "it while the index builds (fine for a small table; a large one wants "
                    "CREATE INDEX CONCURRENTLY)",
                )
            return None
        if name == "add_column":
            column = args[0] if self._table else args[1]
            where = self._table or str(args[0])
            self._added.add((where, column.name))
            if where in self._created:
                return None
            if not column.nullable and column.server_default is None:
                a.note(
                    Verdict.CONTRACT,
                    f"column {where}.{column.name} is NOT NULL without a server default: "
                    "existing rows fail it and the previous release does not write it",
                )
            return None
        if name == "execute":
            a.note(Verdict.REVIEW, f"raw SQL ({str(args[0])[:80]!r}) cannot be judged here")
            return None
        if name in _CONSTRAINTS and table is not None:
            columns = _constraint_columns(name, args, kwargs, batch=self._table is not None)
            if table in self._created or (
                columns and all((table, c) in self._added for c in columns)
            ):
                if table not in self._created:
                    a.note(
                        Verdict.REVIEW,
                        f"{name} on {table}'s new column(s) {', '.join(columns)}: PostgreSQL "
                        "locks the table briefly while it checks the rows",
                    )
                return None
        if name in _CONTRACTING:
            a.note(Verdict.CONTRACT, f"{name} on {table}")
            return None
        if name not in _ADDING:
            a.note(Verdict.REVIEW, f"operation {name} is not known to be additive")
        return None

    @contextlib.contextmanager
    def _batch(self, table: str) -> Iterator[_Recorder]:
        yield _Recorder(self._assessment, self._created, table, self._added)


def _constraint_columns(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, batch: bool
) -> list[str]:
    """The local columns a constraint checks (Alembic's signatures: ``op.X(name, table,
    …)``, ``batch_op.X(name, …)``)."""
    rest = list(args[1:] if batch else args[2:])
    if name == "create_foreign_key":  # (referent_table, local_cols, remote_cols)
        cols = rest[1] if len(rest) > 1 else kwargs.get("local_cols", [])
    elif name == "create_unique_constraint":  # (columns)
        cols = rest[0] if rest else kwargs.get("columns", [])
    else:
        return []  # a check constraint's condition is SQL: not judged here
    return [str(c) for c in cols]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_onepass_live_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assess(path: Path) -> Assessment:
    """Run one migration's ``upgrade()`` against the recorder."""
    module = _load(path)
    assessment = Assessment(str(module.revision), path)
    setattr(module, "op", _Recorder(assessment, set()))  # noqa: B010 - the module is not typed
    module.upgrade()
    return assessment


def migrations(versions: Path = VERSIONS) -> list[tuple[str, Path]]:
    """Every migration, oldest first (revisions are numbered in order)."""
    found = [(p.name[:4], p) for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    return sorted(found)


def pending(applied: str | None, versions: Path = VERSIONS) -> list[Assessment]:
    """The migrations after ``applied`` (all of them on an empty database), assessed."""
    return [assess(path) for rev, path in migrations(versions) if applied is None or rev > applied]
