"""The README's configuration table lists every setting, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from onepass.settings import Settings

README = Path(__file__).resolve().parents[3] / "README.md"
# Read from the environment by a library, not by Settings.
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


def documented() -> set[str]:
    text = README.read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def settings_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice) for choice in alias.choices}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def test_readme_configuration_table_lists_every_setting_and_only_settings() -> None:
    table = documented()
    variables = settings_variables()
    assert len(variables) > 40
    assert sorted(variables - table) == [], "settings missing from README.md's table"
    assert sorted(table - variables - NOT_SETTINGS) == [], "README.md names no such setting"
