"""The tests' own layout: helpers come from tests/support only, and a conftest.py defines fixtures only."""
from __future__ import annotations

import ast
from pathlib import Path

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


def test_tests_and_benchmarks_import_helpers_from_tests_support_only():
    offenders = {str(path.relative_to(TESTS.parent)): others for path in MODULES + BENCH
                 if (others := {name for name in imported_names(path) if name.split(".")[0] == "tests"
                                and name != "tests.support" and not name.startswith("tests.support.")})}

    assert offenders == {}, "move what these import to tests/support/"


def test_support_imports_no_test():
    offenders = {str(path.relative_to(TESTS)): tiers for path in SUPPORT
                 if (tiers := {name for name in imported_names(path)
                               if name.split(".")[:2] in [["tests", tier] for tier in TIERS]})}

    assert offenders == {}


def test_a_conftest_defines_fixtures_only():
    offenders: dict[str, list[str]] = {}
    for path in (p for p in MODULES if p.name == "conftest.py"):
        tree = ast.parse(path.read_text(), str(path))
        helpers = [node.name for node in tree.body
                   if isinstance(node, ast.FunctionDef | ast.ClassDef)
                   and not any(is_fixture(decorator) for decorator in node.decorator_list)]
        helpers += [target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name) and target.id == "pytest_plugins"]
        if helpers:
            offenders[str(path.relative_to(TESTS))] = helpers

    assert offenders == {}, "helpers live in tests/support/; plugins' fixtures are offered by a tier's conftest"


def test_no_conftest_above_the_tiers():
    # A fixture there would reach the unit tier too; the services' fixtures belong to a tier's conftest.
    assert not (TESTS / "conftest.py").exists()
