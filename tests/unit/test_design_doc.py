"""docs/design.md, the design reference, names what the code has, and the repository is self-contained.

The reference's settings, endpoints and tables are compared with ``SETTING_NAMES``, the routes
``function_app.app`` registers and ``TABLE_NAMES``, so that the document cannot drift silently; and no
file of the repository may point to a design file or link outside the repository.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import function_app
from sandbox.host import routes_of
from sanscouture.adapters.tables import TABLE_NAMES
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from sanscouture.settings import SETTING_NAMES
from sanscouture.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# Not part of the repository's content: tool caches, installed packages, local sandbox data.
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "node_modules", ".data", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "mutants"}
)
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def section(title: str) -> str:
    """The text of the level-2 section ``## title`` of docs/design.md, up to the next level-2 heading."""
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def first_code(cell: str) -> str:
    found = _CODE.search(cell)
    assert found is not None, f"no `code` in table cell {cell!r}"
    return found.group(1)


def test_the_settings_table_lists_every_setting_the_code_reads() -> None:
    documented = [first_code(row[0]) for row in table_rows(section("Settings"))]
    assert sorted(documented) == sorted(SETTING_NAMES)


def test_the_design_names_no_setting_the_code_does_not_read() -> None:
    mentioned = set(re.findall(r"\bBROKER_[A-Z_]+\b", DESIGN.read_text(encoding="utf-8")))
    assert mentioned - set(SETTING_NAMES) == set()


def test_the_settings_table_gives_the_defaults_of_settings_py() -> None:
    defaults = {row[0]: row[1] for row in table_rows(section("Settings"))}
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    for name in SETTING_NAMES:
        field = fields[name.removeprefix("BROKER_").lower()]
        cell = defaults[f"`{name}`"]
        if field.default is dataclasses.MISSING:
            assert cell == "required", name
        elif isinstance(field.default, bool):
            assert f"`{str(field.default).lower()}`" in cell, name
        elif isinstance(field.default, int):
            assert f"`{field.default}`" in cell, name


def test_the_endpoints_table_lists_exactly_the_registered_routes_and_methods() -> None:
    documented = {
        first_code(row[0]).lstrip("/"): {method.strip() for method in row[1].split(",")}
        for row in table_rows(section("Endpoints"))
    }
    registered = {route.template: set(route.methods) for route in routes_of(function_app.app)}
    assert documented == registered


def test_the_state_tables_list_exactly_the_tables_and_the_sealed_cookies() -> None:
    rows = [row for row in table_rows(section("State")) if "`" in row[0]]  # two tables: skip the headers
    documented = [first_code(row[0]) for row in rows]
    cookies = [name for name in documented if name.startswith("__Host-")]
    assert sorted(name for name in documented if name not in cookies) == sorted(TABLE_NAMES)
    assert cookies == [f"{JOURNEY_COOKIE_PREFIX}<id prefix>", SESSION_COOKIE]


def test_the_readme_links_the_design_reference() -> None:
    assert "](docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_file_points_to_a_design_outside_the_repository() -> None:
    # Built from parts, so that this file does not match itself.
    outside = ("../" + "shared", "/work/" + "shared")
    offenders = [
        str(path.relative_to(ROOT))
        for path in repository_files()
        if any(marker.encode() in path.read_bytes() for marker in outside)
    ]
    assert offenders == []


def test_every_relative_link_of_the_documentation_leads_into_the_repository() -> None:
    broken = []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]:
        for target in _LINK.findall(document.read_text(encoding="utf-8")):
            path, _, fragment = target.partition("#")
            if re.match(r"^[a-z]+:", path):
                continue
            resolved = (document.parent / path).resolve() if path else document
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
            elif fragment and resolved.suffix == ".md" and fragment not in heading_anchors(resolved):
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def heading_anchors(document: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def repository_files() -> list[Path]:
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_DIRS]
        files.extend(Path(folder) / name for name in names)
    return files
