"""modelTrain/'s layout: train.py is a script that reads top to bottom as the digit model's story, and
what other code shares lives in modules no script owns (data.py, card.py, cli.py, corrections.py)."""
import ast

import pytest

from tests.helpers import ROOT

TRAINING_SCRIPT = {"train", "modelTrain.train"}


def imported(source, package):
    """Every module name `source` (a file of `package`) may import, at any depth of its code: for
    `from X import name`, both X and X.name (the name may be a module); relative imports resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            parent = parts[:len(parts) - node.level + 1] if node.level else []
            base = ".".join([*parent, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("folder", ("modelTrain", "flaskService", "benchmarks", "docs", "tests"))
def test_no_module_imports_the_training_script(folder):
    """Only train.py's own tests import it: evaluate.py, the number model, its evaluation and the
    corrections take what they share from data.py, card.py, cli.py and corrections.py."""
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / folder).rglob("*.py"))
             if path.name != "test_train.py"
             for name in sorted(set(imported(path.read_text(), ".".join(path.relative_to(ROOT).parent.parts))))
             if name in TRAINING_SCRIPT]
    assert found == []


@pytest.mark.parametrize("source", (
    "import train",
    "from modelTrain import train",
    "from modelTrain.train import ARCHITECTURES",
    "def build():\n    import modelTrain.train",
    "from . import train",
    "from .train import run",
))
def test_every_way_of_importing_it_is_seen(source):
    assert set(imported(source, "modelTrain")) & TRAINING_SCRIPT
