"""modelTrain/data.py and modelTrain/number_model.py: composed lines, and a short training run."""
import json

import numpy as np
import pytest

from flaskService.digits import sequence
from modelTrain import data


@pytest.fixture(scope="module")
def mnist(mnist_npz):
    with np.load(mnist_npz) as npz:
        return npz["x_train"], npz["y_train"]


def test_lines_hold_their_labels_digits_as_strips(mnist):
    x, y = mnist
    strips, labels = data.number_lines(x, y, np.arange(len(y)), 60, seed=5)
    assert strips.shape == (60, sequence.LINE_HEIGHT, sequence.LINE_WIDTH) and strips.dtype == np.uint8
    lengths = (labels >= 0).sum(axis=1)
    # A few lines hold only marks that are no digit: their label is empty.
    assert lengths.max() <= data.MAX_DIGITS and (lengths >= 1).mean() > 0.8
    assert len(set(lengths)) > 5  # lengths vary
    for strip, label, length in zip(strips, labels, lengths):
        assert (label[:length] >= 0).all() and (label[length:] == -1).all()
        inked = np.flatnonzero(strip.max(axis=0) > 80)
        assert inked[0] >= sequence.MARGIN - 1 and inked.size > 0
    # The same seed composes the same lines.
    again, _ = data.number_lines(x, y, np.arange(len(y)), 60, seed=5)
    assert (again == strips).all()


def test_printed_digits_stand_in_28x28_fields_as_tall_as_mnist_digits():
    images = data.printed_digits([0, 1, 7, 8], np.random.default_rng(0))
    assert [(image.shape, image.dtype) for image in images] == [((28, 28), np.uint8)] * 4
    for image in images:
        rows, cols = np.flatnonzero(image.max(axis=1) > 25), np.flatnonzero(image.max(axis=0) > 25)
        assert abs(len(rows) - data.PRINTED_HEIGHT) <= 1 and 0 < len(cols) <= 26
    assert len({image.tobytes() for image in images}) == 4  # each its own digit


def test_training_and_validation_digits_are_disjoint(mnist):
    _, y = mnist
    train, validation = data.split_digits(y, 0.1, seed=1)
    assert not set(train) & set(validation)
    assert len(train) + len(validation) == len(y)


def test_batches_hold_lines_of_one_width_cut_after_their_ink(mnist):
    from modelTrain import number_model

    x, y = mnist
    strips, _ = data.number_lines(x, y, np.arange(len(y)), 300, seed=7)
    widths = number_model.widths_needed(strips)
    assert set(widths) <= set(range(number_model.WIDTH_STEP, sequence.LINE_WIDTH + 1, number_model.WIDTH_STEP))
    assert len(set(widths)) > 1  # short lines are cut short
    for strip, width in zip(strips, widths):
        inked = np.flatnonzero(strip.max(axis=0) > sequence.THRESHOLD * 255)
        # Nothing inked is cut off, and the cut keeps an empty margin unless the strip is full width.
        assert inked[-1] < width
        assert width == sequence.LINE_WIDTH or inked[-1] + number_model.RIGHT_MARGIN < width
    batches = number_model.batches(widths, np.random.default_rng(0))
    assert sorted(np.concatenate(batches)) == list(range(len(strips)))  # every line once
    assert all(len(set(widths[batch])) == 1 and len(batch) <= number_model.BATCH_SIZE for batch in batches)
    again = number_model.batches(widths, np.random.default_rng(1))
    assert [list(b) for b in again] != [list(b) for b in batches]  # each pass is shuffled


def test_a_short_run_writes_the_model_and_its_card(run, mnist_npz, tmp_path):
    result = run("number_model.py", "--data", mnist_npz, "--lines", "600", "--validation-lines", "100",
                 "--epochs", "1", "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in tmp_path.iterdir()} == {"number_model.h5", "number_model.json"}
    card = json.loads((tmp_path / "number_model.json").read_text())
    assert card["input"]["shape"] == [sequence.LINE_HEIGHT, sequence.LINE_WIDTH, 1]
    assert card["output"]["shape"] == [sequence.FRAMES, sequence.CLASSES]
    assert card["data"]["training_lines"] == 600 and card["training"]["epochs"] == 1
    assert 0 <= card["validation"]["exact_match"] <= 1

    import keras

    model = keras.models.load_model(tmp_path / "number_model.h5", compile=False)
    probabilities = model.predict(np.zeros((2, sequence.LINE_HEIGHT, sequence.LINE_WIDTH, 1), np.float32), verbose=0)
    assert probabilities.shape == (2, sequence.FRAMES, sequence.CLASSES)
    assert np.allclose(probabilities.sum(axis=-1), 1, atol=1e-4)


def noisy_lines(count, seed):
    """Logits of `count` lines whose frames spell 1-4 digits, blurred by noise, and their labels,
    a fifth of them with a digit the frames do not say: a reader sure of itself is wrong there."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (count, sequence.FRAMES, sequence.CLASSES))
    labels = np.full((count, data.MAX_DIGITS), -1, np.int32)
    for line in range(count):
        digits = rng.integers(0, 10, rng.integers(1, 5))
        logits[line, :, sequence.BLANK] += 4
        for i, digit in enumerate(digits):
            logits[line, 6 * i + 2:6 * i + 5, digit + 1] += 8
        labels[line, :len(digits)] = digits
        if rng.random() < 0.2:
            labels[line, 0] = (digits[0] + 1) % 10
    return logits, labels


def test_the_temperature_is_the_one_under_which_true_texts_are_likeliest():
    from modelTrain import number_model

    logits, labels = noisy_lines(200, seed=1)
    temperature = number_model.fit_temperature(logits, labels)
    assert number_model.TEMPERATURES[0] < temperature < number_model.TEMPERATURES[-1]
    # Sharper logits need a proportionally higher temperature (10 steps of the grid: exactly a grid value).
    step = number_model.TEMPERATURES[1] / number_model.TEMPERATURES[0]
    assert number_model.fit_temperature(logits * step ** 10, labels) == pytest.approx(temperature * step ** 10)


def test_the_ctc_loss_is_minus_the_log_of_the_services_text_probability():
    from modelTrain import number_model

    logits, labels = noisy_lines(20, seed=2)
    losses = np.asarray(number_model.ctc_loss(labels, logits))
    texts = number_model.texts(labels)
    for frames, text, loss in zip(number_model.softmax(logits), texts, losses):
        assert np.exp(-loss) == pytest.approx(sequence.text_probability(frames, [int(d) for d in text]), rel=1e-4)
