"""The fast inference path (LiteRT) answers as Keras does, and Keras takes over when it cannot be built."""
import hashlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from flaskService.digits import predictor as predictor_module
from flaskService.digits.model import load_model
from flaskService.digits.predictor import BATCH_SIZES, Predictor
from tests.helpers import MODEL_PATH, ROOT


@pytest.fixture(scope="module")
def keras_model():
    return load_model(MODEL_PATH)


def test_litert_matches_keras_on_the_test_set(predictor, keras_model, mnist):
    """Over all 10,000 test images: the same digit every time, probabilities within 1e-4."""
    assert predictor.backend == "litert"
    images = mnist["x_test"].astype(np.float32) / 255.0
    expected = np.asarray(keras_model(images[..., None], training=False))
    actual = predictor.predict(images)
    assert actual.shape == (10_000, 12) and actual.dtype == np.float32  # ten digits, not a digit, several
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.parametrize("count", sorted({1, 2, *BATCH_SIZES, BATCH_SIZES[-1] + 1, 300}))
def test_every_batch_size_answers_per_image(predictor, mnist, count):
    """Padding to the interpreter's size and splitting past the largest one never mix images up."""
    images = mnist["x_test"][:count].astype(np.float32) / 255.0
    one_by_one = np.concatenate([predictor.predict(image[None]) for image in images])
    np.testing.assert_allclose(predictor.predict(images), one_by_one, atol=1e-6)


def _broken_converter(model):
    raise RuntimeError("converter exploded")


def test_failed_conversion_falls_back_to_keras_with_a_warning(predictor, keras_model, mnist, monkeypatch, caplog):
    monkeypatch.setattr(predictor_module, "to_tflite", _broken_converter)
    with caplog.at_level(logging.WARNING, logger="flaskService.digits.predictor"):
        fallback = Predictor(keras_model)
    assert fallback.backend == "keras"
    assert "converter exploded" in caplog.text
    fallback.warm_up()
    images = mnist["x_test"][:64].astype(np.float32) / 255.0
    np.testing.assert_allclose(fallback.predict(images), predictor.predict(images), atol=1e-4)


def test_litert_required_but_unavailable_fails(keras_model, monkeypatch):
    """INFERENCE_BACKEND=litert means "fast or not at all": no silent fallback."""
    monkeypatch.setattr(predictor_module, "to_tflite", _broken_converter)
    with pytest.raises(RuntimeError, match="converter exploded"):
        Predictor(keras_model, backend="litert")


def test_keras_backend_when_asked(predictor, keras_model, mnist):
    keras = Predictor(keras_model, backend="keras")
    assert keras.backend == "keras"
    images = mnist["x_test"][:16].astype(np.float32) / 255.0
    np.testing.assert_array_equal(keras.predict(images).argmax(axis=1), predictor.predict(images).argmax(axis=1))


def test_conversion_is_cached_so_workers_skip_tensorflow(tmp_path):
    """The rollout check (gunicorn's master runs it in a child) converts and caches; a fresh process
    then loads the cached LiteRT model without importing TensorFlow, and answers."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    check = "import sys; from flaskService.rollout import check; sys.exit(check(sys.argv[1]))"
    load = ("import sys; from flaskService.digits.predictor import Predictor; "
            "p = Predictor.from_path(sys.argv[1]); p.warm_up(); print(p.backend, 'tensorflow' in sys.modules)")
    for script in (check, load):
        run = subprocess.run([sys.executable, "-c", script, str(MODEL_PATH)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["litert", "False"]
    assert len(list(tmp_path.glob("flaskService-*/*.tflite"))) == 1


def test_unusable_cache_directory_still_serves(tmp_path, monkeypatch):
    """A temp directory where ours cannot be made, or another user could write to ours, means no cache."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(predictor_module.tempfile, "gettempdir", lambda: str(blocker))
    assert predictor_module._cache_path("0" * 64) is None
    shared = tmp_path / f"flaskService-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setattr(predictor_module.tempfile, "gettempdir", lambda: str(tmp_path))
    assert predictor_module._cache_path("0" * 64) is None


def test_corrupt_cached_conversion_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_module.tempfile, "gettempdir", lambda: str(tmp_path))
    sha256 = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    cache = predictor_module._cache_path(sha256)
    cache.write_bytes(b"TFL3 but not really")
    fresh = Predictor.from_path(MODEL_PATH)
    assert fresh.backend == "litert" and fresh.model is not None
    fresh.warm_up()
    assert cache.read_bytes() != b"TFL3 but not really"


def test_convert_command_writes_the_conversion_the_service_then_serves(tmp_path):
    """`python -m flaskService convert` (the image's build stage) writes model.<sha>.tflite beside
    the model; a process that finds it there serves it without importing TensorFlow or converting,
    and still reports the .h5's sha256."""
    model = tmp_path / "model.h5"
    model.write_bytes(MODEL_PATH.read_bytes())
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    env = {**os.environ, "TMPDIR": str(tmp_path / "no-cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    (tmp_path / "no-cache").mkdir()
    done = subprocess.run([sys.executable, "-m", "flaskService", "convert", str(model)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(tmp_path / f"model.{sha256[:16]}.tflite")
    load = ("import sys; from flaskService.digits.predictor import Predictor; p = Predictor.from_path(sys.argv[1]); "
            "p.warm_up(); print(p.backend, p.sha256, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", load, str(model)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["litert", sha256, "False", "False"]
    assert list((tmp_path / "no-cache").rglob("*.tflite")) == []  # nothing converted, nothing cached


def test_without_tensorflow_a_model_without_conversion_is_refused_with_the_command(tmp_path, monkeypatch):
    """Where TensorFlow is not installed (the image), a model without its conversion cannot be
    served: the error names the command that makes the conversion."""
    model = tmp_path / "other.h5"
    model.write_bytes(MODEL_PATH.read_bytes())
    monkeypatch.setattr(predictor_module.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(predictor_module, "can_convert", lambda: False)
    with pytest.raises(predictor_module.ModelLoadError, match=rf"python -m flaskService convert {model}$"):
        Predictor.from_path(model)
    with pytest.raises(predictor_module.ModelLoadError, match="INFERENCE_BACKEND=keras needs TensorFlow"):
        predictor_module.check_servable(model, "keras")


def test_without_tensorflow_a_corrupt_conversion_is_refused_with_the_command(tmp_path, monkeypatch):
    """A conversion beside the model that does not load is no conversion: the same one line."""
    model = tmp_path / "model.h5"
    model.write_bytes(MODEL_PATH.read_bytes())
    predictor_module.conversion_path(model).write_bytes(b"TFL3 but not really")
    monkeypatch.setattr(predictor_module.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(predictor_module, "can_convert", lambda: False)
    with pytest.raises(predictor_module.ModelLoadError, match="no usable LiteRT conversion"):
        Predictor.from_path(model)
