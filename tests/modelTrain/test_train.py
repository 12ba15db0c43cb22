"""modelTrain/train.py: what a run writes, the architectures, the data sources, bad input."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import image_bytes

CARD_KEYS = {"name", "version", "sha256", "created", "framework", "architecture", "input",
             "output", "data", "training", "validation", "test", "latency"}


def read_card(out):
    return json.loads((out / "model.json").read_text())


def test_run_writes_model_card_and_plots(small_run):
    """A run leaves the model, its card and both plots (real PNGs) in --out."""
    assert {p.name for p in small_run.iterdir()} == {
        "model.h5", "model.json", "history.png", "confusion.png"}
    for plot in ("history.png", "confusion.png"):
        with Image.open(small_run / plot) as image:
            assert image.format == "PNG" and min(image.size) >= 300


def test_card_describes_the_run(small_run):
    """The card's version is the model file's sha256, and its figures add up."""
    card = read_card(small_run)
    assert CARD_KEYS <= card.keys()
    digest = hashlib.sha256((small_run / "model.h5").read_bytes()).hexdigest()
    assert card["sha256"] == digest and card["version"] == digest[:12]
    assert card["architecture"]["name"] == "compact"
    assert card["data"]["format"] == "npz" and card["data"]["limit"] == 2000
    assert card["data"]["train"] + card["data"]["validation"] == 2000
    # Beside the digits, made-up images of the two extra classes, in their shares.
    assert card["data"]["not_a_digit"]["train"] == round(card["data"]["train"] * 0.5)
    assert card["data"]["several_digits"]["validation"] == round(card["data"]["validation"] * 0.25)
    assert 0.25 <= card["training"]["calibration"]["temperature"] <= 8
    assert card["data"]["test"] == card["test"]["images"] == 10000
    assert card["training"]["epochs_run"] == 1 and card["training"]["seed"] == 3
    confusion = np.array(card["test"]["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10000
    assert card["test"]["accuracy"] == pytest.approx(np.trace(confusion) / 10000)
    assert list(card["test"]["per_class_accuracy"]) == [str(d) for d in range(10)]
    assert 0 <= card["validation"]["accuracy"] <= 1 and card["validation"]["loss"] > 0
    assert card["input"]["shape"] == [28, 28, 1] and card["input"]["dtype"] == "float32"
    assert card["input"]["polarity"] == "white ink on black"
    assert card["latency"]["median_ms"] > 0 and card["latency"]["threads"] == 1


def test_model_loads_and_matches_its_card(small_run, mnist):
    """The model loads with Keras and with the service's loader and scores what its card says."""
    import keras

    from flaskService.digits.model import load_model

    x_test = mnist["x_test"].astype("float32")[..., None] / 255
    keras_model = keras.models.load_model(small_run / "model.h5")
    model = load_model(small_run / "model.h5")
    assert model.count_params() == keras_model.count_params()
    assert not any("Random" in type(layer).__name__ for layer in model.layers)
    probabilities = model.predict(x_test, batch_size=1000, verbose=0)
    assert probabilities.shape == (10000, 12)  # ten digits, not a digit, several digits
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    accuracy = (probabilities[:, :10].argmax(axis=1) == mnist["y_test"]).mean()
    assert accuracy == pytest.approx(read_card(small_run)["test"]["accuracy"], abs=2e-4)


def test_same_seed_same_model(small_run, small_run_args, run, tmp_path):
    """A run is reproducible: the same arguments write a byte-identical model."""
    result = run("train.py", *small_run_args, "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model.h5").read_bytes() == (small_run / "model.h5").read_bytes()


def describe(layer):
    config = layer.get_config()
    return (type(layer).__name__, config.get("filters") or config.get("units"),
            config.get("kernel_size"), config.get("activation"))


def test_seed_architecture_is_the_original():
    """--arch seed is the 2020 network layer for layer, but for its two extra outputs (not a digit,
    several digits) and the calibration temperature: 12,172 parameters instead of 12,106."""
    from modelTrain.train import ARCHITECTURES

    model = ARCHITECTURES["seed"]()
    assert model.count_params() == 12172
    assert [describe(layer) for layer in model.layers[1:]] == [
        ("Conv2D", 8, (5, 5), "relu"),
        ("MaxPooling2D", None, None, None),
        ("Conv2D", 16, (5, 5), "relu"),
        ("MaxPooling2D", None, None, None),
        ("Flatten", None, None, None),
        ("Dense", 32, None, "relu"),
        ("BatchNormalization", None, None, None),
        ("Dense", 12, None, "linear"),
        ("Rescaling", None, None, None),
        ("Activation", None, None, "softmax"),
    ]


def test_default_architecture_fits_the_budget():
    """Our network keeps MNIST's input and a 12-way softmax within ~3M multiply-adds per image."""
    from modelTrain.card import multiply_adds
    from modelTrain.train import ARCHITECTURES

    model = ARCHITECTURES["compact"]()
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 12)
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert multiply_adds(model) <= 3_000_000


def test_augmenter_is_seeded_and_keeps_the_input_contract(mnist):
    """Augmented digits keep the model's input shape and [0, 1] range, are really distorted, and
    one seed gives one sequence of distortions."""
    from modelTrain.data import build_augmenter

    x = mnist["x_train"][:64].astype("float32")[..., np.newaxis] / 255
    first, again = (build_augmenter(seed=7)(x).numpy() for _ in range(2))
    assert first.shape == x.shape and first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - x).mean() > 0.01


# Each image is drawn black on white, at its own size, in its own format: what people have.
SIZES = ((28, 28), (64, 64), (150, 100), (37, 52), (300, 300))
FORMATS = ("PNG", "JPEG", "BMP")


def write_digit_folder(folder, mnist, per_digit, offset=0):
    """per_digit real MNIST digits of each class as black-on-white image files in folder/0..9."""
    count = 0
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        indices = np.flatnonzero(mnist["y_train"] == digit)[offset: offset + per_digit]
        for i, index in enumerate(indices):
            image = Image.fromarray(255 - mnist["x_train"][index]).resize(SIZES[count % len(SIZES)])
            if count % 2:
                image = image.convert("RGB")
            image_format = FORMATS[count % len(FORMATS)]
            image.save(folder / str(digit) / f"{i}.{image_format.lower()}", image_format)
            count += 1
    return count


@pytest.mark.parametrize("layout", ("digits", "train-test"))
def test_folder_dataset(layout, mnist, run, tmp_path):
    """A folder of digit images of mixed sizes and formats trains, with a test split carved out
    when the folder has none; evaluate.py reads the same folder."""
    data, out = tmp_path / "digits", tmp_path / "out"
    if layout == "digits":
        total = write_digit_folder(data, mnist, per_digit=10)
        n_test, n_train = 20, total - 20
    else:
        n_train = write_digit_folder(data / "train", mnist, per_digit=8)
        n_test = write_digit_folder(data / "test", mnist, per_digit=3, offset=8)

    result = run("train.py", "--data", data, "--arch", "seed", "--epochs", "1", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    card = read_card(out)
    assert card["data"]["format"] == "folder" and card["architecture"]["parameters"] == 12172
    assert card["data"]["train"] + card["data"]["validation"] == n_train
    assert card["data"]["test"] == card["test"]["images"] == n_test
    assert card["data"]["test_split"].startswith("carved") == (layout == "digits")

    evaluation = run("evaluate.py", out / "model.h5", "--data", data, "--out", tmp_path / "c.png")
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    images = (n_train + n_test) if layout == "digits" else n_test
    assert f": {images} images" in evaluation.stdout


def test_folder_images_are_preprocessed_like_served_ones(mnist, tmp_path):
    """Folder images go through the service's preprocess_image: white on black, in [0, 1]."""
    from flaskService.digits.preprocess import preprocess_image
    from modelTrain.data import load_folder

    write_digit_folder(tmp_path, mnist, per_digit=2)
    x, y = load_folder(tmp_path)
    assert x.shape == (20, 28, 28, 1) and x.dtype == np.float32
    assert list(y) == [d for d in range(10) for _ in range(2)]
    assert 0 <= x.min() and x.max() <= 1 and x[:, 0, 0].max() < 0.1  # black background
    first = (tmp_path / "0" / "0.png").read_bytes()
    np.testing.assert_array_equal(x[0, ..., 0], preprocess_image(first))


def corrupt_npz(path):
    path.write_bytes(b"PK\x03\x04 not really a zip archive")


def npz_without_test(path):
    np.savez(path, x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros(5, np.uint8))


def npz_with_wrong_shapes(path):
    np.savez(path, x_train=np.zeros((5, 32, 32), np.uint8), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((5, 28, 28), np.uint8), y_test=np.zeros(5, np.uint8))


def npz_with_bad_labels(path):
    np.savez(path, x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.full(5, 12, np.uint8),
             x_test=np.zeros((5, 28, 28), np.uint8), y_test=np.zeros(5, np.uint8))


def npz_with_float_pixels(path):
    np.savez(path, x_train=np.zeros((5, 28, 28)), y_train=np.zeros(5, np.uint8),
             x_test=np.zeros((5, 28, 28)), y_test=np.zeros(5, np.uint8))


def folder_without_digits(path):
    (path / "cats").mkdir(parents=True)


def folder_missing_some_digits(path):
    for digit in range(5):
        (path / str(digit)).mkdir(parents=True)


def folder_with_an_empty_digit(path):
    for digit in range(10):
        (path / str(digit)).mkdir(parents=True)
        if digit != 7:
            Image.new("L", (28, 28), 255).save(path / str(digit) / "a.png")


def folder_with_a_corrupt_image(path):
    for digit in range(10):
        (path / str(digit)).mkdir(parents=True)
        data = image_bytes(np.pad(np.full((10, 4), 255, np.uint8), 9))
        (path / str(digit) / "a.png").write_bytes(data[: 40 if digit == 4 else None])


DATA_MAKERS = {
    "corrupt.npz": corrupt_npz,
    "no_test.npz": npz_without_test,
    "shapes.npz": npz_with_wrong_shapes,
    "labels.npz": npz_with_bad_labels,
    "floats.npz": npz_with_float_pixels,
    "no_digits": folder_without_digits,
    "some_digits": folder_missing_some_digits,
    "empty_digit": folder_with_an_empty_digit,
    "corrupt_image": folder_with_a_corrupt_image,
}


@pytest.mark.parametrize(("args", "message"), (
    (["--data", "{tmp}/missing.npz"], "no such file"),
    (["--data", "{tmp}/corrupt.npz"], "not a readable .npz"),
    (["--data", "{tmp}/no_test.npz"], "missing x_test, y_test"),
    (["--data", "{tmp}/shapes.npz"], "not n 28x28 images"),
    (["--data", "{tmp}/labels.npz"], "labels other than the integers 0..9"),
    (["--data", "{tmp}/floats.npz"], "x_train is float64; expected uint8"),
    (["--data", "{tmp}/no_digits"], "no digit sub-folders"),
    (["--data", "{tmp}/some_digits"], "no sub-folder for digit(s) 5, 6, 7, 8, 9"),
    (["--data", "{tmp}/empty_digit"], "no images for digit(s) 7"),
    (["--data", "{tmp}/corrupt_image"], "corrupt_image/4/a.png"),
    (["--data", "{npz}", "--limit", "5"], "only 5 training images"),
    (["--data", "{npz}", "--out", "{tmp}/corrupt.npz"], "--out"),
    (["--arch", "resnet"], "invalid choice: 'resnet'"),
    (["--epochs", "0"], "--epochs: invalid positive integer value: '0'"),
    (["--epochs", "-3"], "--epochs"),
    (["--epochs", "many"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--limit", "-1"], "--limit: invalid positive integer value: '-1'"),
    (["--limit", "0"], "--limit"),
    (["--seed", "-1"], "--seed: invalid non-negative integer value"),
    (["--colour", "red"], "unrecognized arguments"),
))
def test_bad_input_is_one_line_and_exit_2(args, message, run, tmp_path, mnist_npz):
    """Bad data or arguments: exit status 2, one line on stderr saying what is wrong, no trace."""
    for name in (a.removeprefix("{tmp}/") for a in args):
        if name in DATA_MAKERS:  # only the files this case names (--data, or --out onto a file)
            DATA_MAKERS[name](tmp_path / name)
    args = [a.format(tmp=tmp_path, npz=mnist_npz) for a in args]
    out = [] if "--out" in args else ["--out", tmp_path / "out"]
    result = run("train.py", *args, *out)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("train.py: error: ") and message in result.stderr
    assert not (tmp_path / "out" / "model.h5").exists()
