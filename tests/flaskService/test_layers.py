"""The layers: the image core (flaskService/digits/) loads no web framework and imports nothing from
the HTTP layer around it; training imports only the core; the core's ImageError reaches a client as
the one JSON error shape. (tests/flaskService/test_predict.py's test_bad_requests covers every code.)"""
import ast
import subprocess
import sys

import pytest

from flaskService.digits import preprocess
from flaskService.digits.errors import ImageError
from flaskService.errors import ApiError
from tests.helpers import ROOT, assert_error, image_bytes

CORE = ROOT / "flaskService" / "digits"
CORE_MODULES = ("preprocess", "sequence", "predictor", "model", "selfcheck", "image_metadata", "errors")
# What the HTTP layer and the feedback store bring; the core must load none of it.
WEB = ("flask", "werkzeug", "gunicorn", "sqlalchemy", "prometheus_client", "flask_swagger_ui")


def imports(path):
    """(level, module) of every import in a file, at any depth: level 0 for absolute imports."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_importing_the_core_loads_no_web_framework():
    code = ("import sys; " + "; ".join(f"import flaskService.digits.{name}" for name in CORE_MODULES)
            + f"; print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_core_imports_nothing_outside_it():
    found = [f"{path.relative_to(ROOT)}: {'.' * level}{module}" for path in sorted(CORE.glob("*.py"))
             for level, module in imports(path)
             if level > 1 or module.split(".")[0] in WEB
             or (level == 0 and module.split(".")[0] == "flaskService" and not module.startswith("flaskService.digits"))]
    assert found == []


# Beside the core, training reads two runtime modules, neither of which imports the HTTP layer:
# the settings' defaults (config.py, the standard library only: MIN_DIGIT_SCORE for the evaluations,
# the store's limits for corrections.py) and the corrections table (feedback_store.py, SQLAlchemy Core),
# which modelTrain/corrections.py reads for retraining.
RUNTIME_FOR_TRAINING = {"flaskService.config": (), "flaskService.feedback_store": ("sqlalchemy",)}


def test_training_imports_only_the_core():
    found = [f"{path.relative_to(ROOT)}: {module}" for path in sorted((ROOT / "modelTrain").rglob("*.py"))
             for level, module in imports(path)
             if level == 0 and module.split(".")[0] == "flaskService" and module not in RUNTIME_FOR_TRAINING
             and not (module == "flaskService.digits" or module.startswith("flaskService.digits."))]
    assert found == []


@pytest.mark.parametrize("module", RUNTIME_FOR_TRAINING)
def test_what_training_reads_beside_the_core_imports_no_http_layer(module):
    path = ROOT / (module.replace(".", "/") + ".py")
    found = [f"{'.' * level}{name}" for level, name in imports(path)
             if level > 0 or name.split(".")[0] == "flaskService"
             or (name.split(".")[0] in WEB and name.split(".")[0] not in RUNTIME_FOR_TRAINING[module])]
    assert found == []


def test_the_tree_names_every_core_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert [path.name for path in CORE.glob("*.py") if path.name != "__init__.py" and path.name not in text] == []


def test_an_api_error_is_an_image_error():
    """One handler (flaskService/errors.py) answers both: ApiError adds only headers."""
    assert issubclass(ApiError, ImageError)


@pytest.mark.parametrize(("path", "data", "status", "code"), [
    ("/predict", b"garbage", 400, "invalid_image"),
    ("/predict", b"", 400, "empty_image"),
    ("/read", b"garbage", 400, "invalid_image"),
])
def test_an_image_error_from_the_core_is_the_json_error(client, path, data, status, code):
    """The core raises its own ImageError (not the HTTP layer's ApiError); the client gets it, message
    and all, as {"error", "code", "status"} with its status."""
    with pytest.raises(ImageError) as raised:
        preprocess.decode_image(data)
    assert type(raised.value) is ImageError
    response = client.post(path, data=data, content_type="image/png")
    assert_error(response, status, code)
    assert response.json["error"] == raised.value.message


def test_a_blank_line_is_the_number_readers_json_error(client):
    """sequence.read_number's ImageError (blank_image) through POST /read."""
    import numpy as np

    response = client.post("/read", data=image_bytes(np.zeros((32, 128), np.uint8)), content_type="image/png")
    assert_error(response, 422, "blank_image")
