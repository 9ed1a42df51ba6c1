"""The README's code layout is the code's: every package it names imports only what its row
says, and `core/` imports neither the rest of the project nor Dagster."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).parents[1]
PACKAGE = ROOT / "stripe_sync"


def layout() -> dict[str, set[str]]:
    """The README's table: each module (`core`, `settings`, ...) -> what it may import."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| module | imports of the project |", 1)[1].split("\n\n", 1)[0]
    allowed = {}
    for row in table.splitlines()[2:]:
        modules, imports = (cell.strip() for cell in row.strip("|").split("|"))
        names = {name.strip("`/").removesuffix(".py") for name in modules.split(", ")}
        may = set() if imports == "nothing" else {i.strip("` ") for i in imports.split(",")}
        allowed |= dict.fromkeys(names, may)
    return allowed


def module_of(path: pathlib.Path) -> str:
    """`core` for stripe_sync/core/..., `cli` for stripe_sync/cli.py."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported(path: pathlib.Path) -> set[str]:
    """The top-level names this file imports: the project's modules (`core`, ...) and
    `dagster`, at any depth (a lazy import is an import too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "stripe_sync" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] == "dagster":
                found.add("dagster")
    return found


def test_every_module_of_the_package_has_a_row_in_the_readme_layout():
    modules = {module_of(path) for path in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert modules <= set(layout()), f"not in the README's layout: {modules - set(layout())}"


def test_every_import_of_the_project_follows_the_readme_layout():
    allowed = layout()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_of(path)
        if module not in allowed:
            continue
        for name in sorted(imported(path) - {"dagster"} - allowed[module] - {module}):
            wrong.append(f"{path.relative_to(ROOT)} imports stripe_sync.{name}")
    assert not wrong, "\n".join(wrong)


def test_core_knows_nothing_of_dagster():
    users = [
        str(path.relative_to(ROOT))
        for path in sorted((PACKAGE / "core").rglob("*.py"))
        if "dagster" in imported(path)
    ]
    assert not users


def test_the_layout_table_names_packages_that_exist():
    for name in layout():
        assert (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists(), name
    assert re.search(r"`core/` \| nothing", (ROOT / "README.md").read_text())


def test_the_wheel_ships_the_product_and_not_its_tests():
    import tomllib

    import setuptools

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = setuptools.find_packages(str(ROOT), include=found["packages"]["find"]["include"])
    assert "stripe_sync" in shipped and "stripe_sync.core" in shipped
    assert not [name for name in shipped if name.startswith("stripe_sync_tests")]


def test_no_module_of_the_dagster_glue_is_over_300_lines():
    # Glue stays thin: a longer module holds work that belongs in core/ or the factory.
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((PACKAGE / "defs").glob("*.py"))
        if (lines := len(path.read_text().splitlines())) > 300
    }
    assert not long
