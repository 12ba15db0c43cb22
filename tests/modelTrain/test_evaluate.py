"""modelTrain/evaluate.py, and the model we ship evaluated for real."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import DOC_IMAGES, MODEL_PATH

SHIPPED = MODEL_PATH.parent  # the model we ship, with its card beside it (its plots: DOC_IMAGES)


def test_evaluate_prints_table_and_writes_confusion(small_run, mnist_npz, run, tmp_path):
    """evaluate.py prints the card's accuracy and one row per digit, and writes the confusion."""
    out = tmp_path / "plots" / "confusion.png"
    result = run("evaluate.py", small_run / "model.h5", "--data", mnist_npz, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((small_run / "model.json").read_text())
    lines = result.stdout.splitlines()
    assert f"(version {card['version']})" in lines[0]
    assert f"accuracy  {card['test']['accuracy']:.2%}" in result.stdout
    assert ": 10000 images" in result.stdout
    rows = [line.split() for line in lines if line.split()[:1] in ([str(d)] for d in range(10))]
    assert [int(row[0]) for row in rows] == list(range(10))
    assert sum(int(row[1]) for row in rows) == 10000
    with Image.open(out) as image:
        assert image.format == "PNG"


def write_garbage(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n but not really HDF5")


@pytest.mark.parametrize(("args", "message"), (
    (["{tmp}/missing.h5"], "model file not found"),
    (["{tmp}/garbage.h5"], "cannot read model"),
    (["{model}", "--data", "{tmp}/missing.npz"], "no such file"),
    (["{model}", "--data", "{tmp}/garbage.h5"], "not a readable .npz"),
    (["{model}", "--data", "{tmp}"], "no digit sub-folders"),
    (["{model}", "--out", "{tmp}/garbage.h5/c.png"], "--out"),
    ([], "the following arguments are required: model"),
    (["{model}", "--verbose"], "unrecognized arguments"),
))
def test_bad_input_is_one_line_and_exit_2(args, message, small_run, run, tmp_path):
    """Bad model, data or arguments: exit status 2, one line on stderr, no traceback."""
    write_garbage(tmp_path / "garbage.h5")
    args = [a.format(tmp=tmp_path, model=small_run / "model.h5") for a in args]
    result = run("evaluate.py", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("evaluate.py: error: ") and message in result.stderr


@pytest.fixture(scope="module")
def shipped_card():
    return json.loads((SHIPPED / "model.json").read_text())


def test_shipped_card_matches_model_file(shipped_card):
    """The card beside the shipped model describes that very file, trained on all our MNIST."""
    digest = hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()
    assert shipped_card["sha256"] == digest and shipped_card["version"] == digest[:12]
    assert shipped_card["architecture"]["name"] == "compact"
    assert shipped_card["data"]["limit"] is None
    assert shipped_card["data"]["train"] + shipped_card["data"]["validation"] == 24345
    assert shipped_card["training"]["augmentation"] is not None
    for plot in ("history.png", "confusion.png"):
        with Image.open(DOC_IMAGES / plot) as image:
            assert image.format == "PNG"


def test_shipped_model_beats_target_on_all_test_images(shipped_card, mnist):
    """Loaded the way the service loads it, the shipped model scores >= 99.3% on all 10,000 test
    images, as its card says."""
    from flaskService.digits.model import load_model
    from modelTrain.card import evaluate

    x_test = mnist["x_test"].astype("float32")[..., np.newaxis] / 255
    results = evaluate(load_model(MODEL_PATH), x_test, mnist["y_test"].astype("int64"))
    assert results["images"] == 10000
    assert results["accuracy"] >= 0.993
    assert results["accuracy"] == pytest.approx(shipped_card["test"]["accuracy"], abs=2e-4)


def test_shipped_model_is_cheap_to_serve(shipped_card):
    """The card records a sub-0.2 ms LiteRT latency measured at training time; here, without a
    flaky timing, the network itself stays within the compute budget that latency came from."""
    from flaskService.digits.model import load_model

    model = load_model(MODEL_PATH)
    assert shipped_card["latency"]["median_ms"] < 0.2
    assert model.count_params() == shipped_card["architecture"]["parameters"] < 100_000

