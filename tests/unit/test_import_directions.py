"""The import directions of docs/design.md §1, checked by parsing every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tasktrail"
SHARED = {"tasktrail", "tasktrail.errors", "tasktrail.settings"}

# part -> the tasktrail parts it may import (besides itself and SHARED).
ALLOWED = {
    "engine": set(),
    "screening": {"engine"},
    "projections": {"engine"},
    "schema": {"engine"},
    "bootstrap": {"engine", "screening", "projections", "schema"},
    "http": {"engine", "screening", "projections", "bootstrap", "schema"},
    "cli": {"engine", "screening", "projections", "bootstrap", "schema", "http"},
}


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "tasktrail" or name.startswith("tasktrail.")}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_part_may(path: Path) -> None:
    relative = path.relative_to(ROOT).with_suffix("")
    part = relative.parts[1] if len(relative.parts) > 1 else ""
    part = part if part in ALLOWED else part.removesuffix(".py")
    if part not in ALLOWED:
        return  # __init__, __main__
    allowed = ALLOWED[part] | {part}
    for name in imports_of(path):
        if name in SHARED:
            continue
        assert part_of(name) in allowed, f"{relative} imports {name}"


def test_nothing_outside_cli_imports_cli_and_only_cli_imports_http() -> None:
    for path in modules():
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in imports_of(path):
            if part_of(name) == "cli":
                assert part == "cli" or path.name == "__main__.py", f"{path} imports {name}"
            if part_of(name) == "http":
                assert part in ("http", "cli"), f"{path} imports {name}"


def test_the_standard_library_http_still_imports_from_the_repository_root() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import http.client, http.server; print(http.client.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "tasktrail" not in result.stdout
