"""The tests' own layout: helpers come from tests/support only, and a conftest.py defines fixtures only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "e2e")
MODULES = sorted(path for tier in TIERS for path in (TESTS / tier).rglob("*.py"))
BENCH = sorted((TESTS.parent / "bench").glob("*.py"))
SUPPORT = sorted((TESTS / "support").rglob("*.py"))


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


@pytest.mark.parametrize("path", MODULES + BENCH, ids=lambda path: str(path.relative_to(TESTS.parent)))
def test_tests_and_benchmarks_import_helpers_from_tests_support_only(path):
    others = {name for name in imported_names(path) if name.split(".")[0] == "tests" and
              name != "tests.support" and not name.startswith("tests.support.")}

    assert others == set(), f"{path.name} imports {others}: move what it needs to tests/support/"


@pytest.mark.parametrize("path", SUPPORT, ids=lambda path: str(path.relative_to(TESTS)))
def test_support_imports_no_test(path):
    tiers = {name for name in imported_names(path) if name.split(".")[:2] in [["tests", tier] for tier in TIERS]}

    assert tiers == set()


@pytest.mark.parametrize("path", [p for p in MODULES if p.name == "conftest.py"], ids=lambda path: str(path.relative_to(TESTS)))
def test_a_conftest_defines_fixtures_only(path):
    tree = ast.parse(path.read_text(), str(path))
    helpers = [node.name for node in tree.body
               if isinstance(node, ast.FunctionDef | ast.ClassDef)
               and not any(is_fixture(decorator) for decorator in node.decorator_list)]
    plugins = [node for node in tree.body if isinstance(node, ast.Assign)
               and any(isinstance(target, ast.Name) and target.id == "pytest_plugins" for target in node.targets)]

    assert helpers == [], f"{path} defines {helpers}: helpers live in tests/support/"
    assert plugins == []


def test_no_conftest_above_the_tiers():
    # A fixture there would reach the unit tier too; the services' fixtures belong to a tier's conftest.
    assert not (TESTS / "conftest.py").exists()
