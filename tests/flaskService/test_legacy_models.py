"""Models from elsewhere: the original project's Keras 2 HDF5 file, .keras files, and broken files."""
import numpy as np
import pytest
import requests

from tests.helpers import ROOT, SHARED_DATA, gunicorn_start_error

# Relative to the repository root (gunicorn's working directory), as an operator would write it.
SEED_MODEL = "../shared/data/seed_model.h5"


def test_seed_model_serves_through_predict(start_server, mnist):
    """The 2020 project's Keras 2.2.4 model, named by MODEL_PATH, loads in a real gunicorn and reads
    >= 98% of the whole MNIST test set sent as pixel arrays with preprocess=none (its authors
    report 98.68%; a sample of a few hundred digits swings by a point either way)."""
    assert (ROOT / SEED_MODEL).is_file()
    server = start_server(env={"MODEL_PATH": SEED_MODEL}, workers=1)
    card = requests.get(server.url + "/model", timeout=10).json()
    assert card["name"] == "seed_model" and card["sha256"].startswith(card["version"])
    images, labels = mnist["x_test"], mnist["y_test"]
    read = []
    for start in range(0, len(images), 256):
        response = requests.post(server.url + "/predict?preprocess=none",
                                 json={"pixels": images[start:start + 256].tolist()}, timeout=30)
        assert response.status_code == 200, response.text
        read += [p["digit"] for p in response.json()["predictions"]]
    accuracy = (np.array(read) == labels).mean()
    assert accuracy >= 0.98, f"{accuracy:.2%}"


def test_keras_file_loads_like_the_h5(tmp_path, mnist):
    """The seed model saved in Keras 3's own .keras format loads and answers as the HDF5 file does."""
    from flaskService.digits.model import load_model

    from_h5 = load_model(ROOT / SEED_MODEL)
    from_h5.save(tmp_path / "seed.keras")
    from_keras = load_model(tmp_path / "seed.keras")
    images = (mnist["x_test"][:64] / 255.0).astype(np.float32)[..., None]
    expected = np.asarray(from_h5(images, training=False))
    np.testing.assert_allclose(np.asarray(from_keras(images, training=False)), expected, atol=1e-5)
    assert (expected.argmax(axis=1) == mnist["y_test"][:64]).mean() >= 0.95


def _truncated_seed(path):
    path.write_bytes((SHARED_DATA / "seed_model.h5").read_bytes()[:20_000])


def _garbage(path):
    path.write_bytes(b"this is not a model\n" * 100)


def _weights_only(path):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.zeros((3, 3)))


@pytest.mark.parametrize(("name", "make"), (
    ("model.h5", _garbage),
    ("model.keras", _garbage),
    ("model.h5", _truncated_seed),
    ("weights.h5", _weights_only),
))
def test_corrupt_model_stops_startup_with_one_line(tmp_path, name, make):
    """A broken model file stops gunicorn before any worker starts: exit 1, one `error:` line naming
    the file, no traceback."""
    path = tmp_path / name
    make(path)
    assert str(path) in gunicorn_start_error({"MODEL_PATH": str(path)})
