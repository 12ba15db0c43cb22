"""create_app() and its configuration: defaults, the environment, test overrides, failing fast."""
import pytest

from flaskService import config, create_app
from flaskService.digits.model import ModelLoadError


def test_defaults():
    settings = config.from_environment({})
    assert settings["MAX_CONTENT_LENGTH"] == 4 * 1024 * 1024
    assert settings["MAX_PIXELS"] == 16_000_000 and settings["MAX_IMAGES"] == 256
    assert settings["MAX_REQUEST_PIXELS"] == 16_000_000 and settings["REQUEST_TIMEOUT"] == 20.0
    assert settings["MODEL_PATH"].endswith("flaskService/model.h5")


def test_environment_overrides_defaults():
    settings = config.from_environment({"MAX_IMAGES": "8", "API_KEYS": "a, b,", "MODEL_PATH": "/m.h5"})
    assert settings["MAX_IMAGES"] == 8 and settings["API_KEYS"] == ("a", "b") and settings["MODEL_PATH"] == "/m.h5"


@pytest.mark.parametrize(("name", "value"), [("MAX_IMAGES", "many"), ("MAX_PIXELS", "-5"),
                                             ("INFERENCE_BACKEND", "gpu"), ("REQUEST_TIMEOUT", "soon")])
def test_wrong_values_fail_with_one_line_naming_the_variable(name, value):
    with pytest.raises(config.ConfigError) as error:
        config.from_environment({name: value})
    assert name in str(error.value) and "\n" not in str(error.value)


def test_test_config_overrides(predictor):
    app = create_app({"TESTING": True, "PREDICTOR": predictor, "MAX_IMAGES": 3})
    assert app.testing and app.config["MAX_IMAGES"] == 3


def test_missing_model_fails_at_creation(tmp_path):
    with pytest.raises(ModelLoadError, match="model file not found"):
        create_app({"MODEL_PATH": str(tmp_path / "absent.h5")})


def test_corrupt_model_fails_at_creation(tmp_path):
    corrupt = tmp_path / "model.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(ModelLoadError, match="cannot read model"):
        create_app({"MODEL_PATH": str(corrupt)})


def test_ready_after_self_check(app):
    """A freshly built app has loaded, warmed up and self-checked its model."""
    assert app.extensions["readiness"].ready
