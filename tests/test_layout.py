"""The test tree's layout: conftest.py files hold fixtures, helpers live in plain modules the tests
import (tests/helpers.py, tests/load.py, or a folder's own module such as
tests/dockerFlaskService/containers/engine.py), and no module under tests/ imports a test module or
a conftest.py (pytest finds fixtures without imports)."""
import ast

from tests.helpers import ROOT

TESTS = ROOT / "tests"


def module_name(path, root=ROOT):
    """tests/flaskService/page/test_page.py -> tests.flaskService.page.test_page; a package's
    __init__.py -> the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path, root=ROOT):
    """Every module a file may import, at any depth of its code, relative imports resolved: for
    `from X import name`, both X and X.name (the name may be a module)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package[:len(package) - node.level + 1] if node.level else []
            base = ".".join([*parent, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def is_test_or_conftest(module):
    return any(part == "conftest" or part.startswith("test_") for part in module.split("."))


def public_non_fixtures(path):
    """Top-level functions and classes of a conftest.py that are neither fixtures, pytest hooks nor private."""
    def is_fixture(decorator):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return ast.unparse(target) in ("pytest.fixture", "fixture")

    return [node.name for node in ast.parse(path.read_text(), str(path)).body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith(("_", "pytest_"))
            and not any(is_fixture(decorator) for decorator in node.decorator_list)]


def test_no_module_imports_a_test_module_or_a_conftest():
    found = [f"{path.relative_to(ROOT)}: {module}" for path in sorted(TESTS.rglob("*.py"))
             for module in sorted(set(imported(path))) if is_test_or_conftest(module)]
    assert found == []


def test_conftest_files_define_only_fixtures():
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted(TESTS.rglob("conftest.py"))
             for name in public_non_fixtures(path)]
    assert found == []
