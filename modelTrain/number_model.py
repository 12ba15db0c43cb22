"""
Title: Number reader: a convolutional network trained with CTC
Description: Reads a whole line of handwritten digits at once. A thin, fully convolutional network
turns the line into 64 column frames, each a probability of a blank and the ten digits; CTC loss
trains it without saying where each digit lies, and greedy decoding reads the frames
(flaskService/digits/sequence.py). No recurrent layer: LiteRT runs it with built-in ops only.

Run from the repository root; it writes flaskService/number_model.h5 and its card:

    python modelTrain/number_model.py --data ../shared/data/mnist.npz --seed 1

The lines are composed from MNIST *training* digits (modelTrain/data.py); a tenth of those digits
is held out to compose the validation lines that pick the best epoch and calibrate the confidence.
The MNIST test split is read only by modelTrain/evaluate_numbers.py.
"""

"""
## Setup
"""

import argparse
import functools
import json
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# Run as `python modelTrain/number_model.py`: the repository root holds the service's package, whose
# preprocessing and decoding the training data goes through.
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from flaskService.digits import sequence  # noqa: E402
from flaskService.digits.model import sha256_of  # noqa: E402
from modelTrain import data  # noqa: E402
from modelTrain.card import save_model, write_card  # noqa: E402

"""
## Prepare the data

Composing and painting a line and reading it back through find_ink costs ~5 ms of CPU, as much as
a training step spends on it, so the lines are made once, up front, by every core, and training
takes passes over them.
"""

TRAIN_LINES = 135_000
VALIDATION_LINES = 3_000
CHUNK = 2_000  # lines per task of the process pool


def load_digits(path):
    with np.load(path, allow_pickle=False) as npz:
        return npz["x_train"], npz["y_train"].astype(np.int64)


def make_lines(x, y, pool, count, seed, workers):
    """`count` lines from the digits `pool`, made in chunks by `workers` processes (each chunk seeded
    from (seed, chunk number), so the result does not depend on the number of workers)."""
    sizes = [min(CHUNK, count - start) for start in range(0, count, CHUNK)]
    with ProcessPoolExecutor(workers) as executor:
        parts = list(executor.map(data.number_lines, *zip(*[(x, y, pool, size, (seed, i))
                                                             for i, size in enumerate(sizes)])))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


"""
## Build the model

Full-resolution layers are kept thin: throughput decides what a fixed training budget buys. Height
is brought down to 2 rows, width by 4, so each of the 64 frames sees 4 columns of the strip and, through
the convolutions, ~120 px around them: a digit and its neighbours on each side. Nothing but the
input fixes the width: training feeds strips cut short, the saved model takes the full strip.
"""


SPATIAL_DROPOUT = 0.1
FRAME_DROPOUT = 0.3


def build_model(width=None):
    import keras
    from keras import layers

    def conv(x, filters, strides=1):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((sequence.LINE_HEIGHT, width, 1), name="line")
    # The first two convolutions step by 2 instead of pooling after: a quarter of the work at full
    # resolution, a step a fifth faster.
    x = conv(inputs, 16, strides=2)  # 16 x 128
    x = conv(x, 32, strides=2)  # 8 x 64
    x = conv(conv(x, 64), 64)
    x = layers.MaxPooling2D((2, 1))(x)  # 4 x 64
    # Whole feature maps dropped in training: ~22,000 digits are few enough for the network to
    # learn them one by one, and digits it has not seen read 4 points worse.
    x = layers.SpatialDropout2D(SPATIAL_DROPOUT)(x)
    x = conv(conv(x, 96), 96)
    x = layers.MaxPooling2D((2, 1))(x)  # 2 x 64
    x = layers.SpatialDropout2D(SPATIAL_DROPOUT)(x)
    # Columns become frames: (64, 2 * 96) features per frame.
    x = layers.Permute((2, 1, 3))(x)
    x = layers.Reshape((-1, x.shape[2] * x.shape[3]))(x)
    x = layers.Conv1D(128, 5, padding="same", activation="relu")(x)
    # Two more frame convolutions, residual, widen each frame's view to ~120 px: whether a stroke is
    # a 1 of its own or the edge of the digit beside it shows only with both neighbours in sight.
    for _ in range(2):
        x = layers.Add()([x, layers.Conv1D(128, 5, padding="same", activation="relu")(x)])
    x = layers.Dropout(FRAME_DROPOUT)(x)
    logits = layers.Dense(sequence.CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="number_reader")


def ctc_loss(labels, logits):
    """Labels are digits padded with -1; CTC's classes are blank (0) and digit d as d + 1."""
    import keras
    from keras import ops

    labels = ops.cast(labels, "int32")
    lengths = ops.sum(ops.cast(labels >= 0, "int32"), axis=1)
    target = ops.where(labels >= 0, labels + 1, 0)
    frames = ops.full((ops.shape(logits)[0],), ops.shape(logits)[1], dtype="int32")
    return keras.ops.ctc_loss(target, logits, lengths, frames, mask_index=sequence.BLANK)


"""
## Train the model

Most lines are short: the writing ends, on average, half way along the strip. Each batch holds
lines of about one length, cut to the width they need (a multiple of WIDTH_STEP, keeping at least
RIGHT_MARGIN empty columns after the ink, as the full strip has), so the network spends its time on
writing instead of on empty strip: a third less per epoch.
"""

EPOCHS = 4
BATCH_SIZE = 64
PEAK_LEARNING_RATE = 2e-3
WIDTH_STEP = 64
RIGHT_MARGIN = 32


def widths_needed(strips):
    """Per strip, the columns a batch holding it keeps: its ink, RIGHT_MARGIN more, rounded up."""
    ink = strips.max(axis=1) > sequence.THRESHOLD * 255
    end = np.where(ink.any(axis=1), ink.shape[1] - np.argmax(ink[:, ::-1], axis=1), 0)
    return np.minimum(-(-(end + RIGHT_MARGIN) // WIDTH_STEP) * WIDTH_STEP, strips.shape[2])


def batches(widths, rng=None):
    """Index arrays of batches whose lines share a width. With `rng`, the lines are shuffled within
    each width and the batches among themselves."""
    order = rng.permutation(len(widths)) if rng is not None else np.arange(len(widths))
    groups = [order[widths[order] == width] for width in np.unique(widths)]
    chunks = [group[i:i + BATCH_SIZE] for group in groups for i in range(0, len(group), BATCH_SIZE)]
    return [chunks[i] for i in rng.permutation(len(chunks))] if rng is not None else chunks


def dataset(strips, labels, shuffle, seed):
    """Batches of (lines as float32 in [0, 1], labels), each cut to its lines' width; reshuffled at
    each pass when `shuffle`."""
    import tensorflow as tf

    widths = widths_needed(strips)
    rng = np.random.default_rng(seed) if shuffle else None
    count = len(batches(widths))

    def generate():
        for chunk in batches(widths, rng):
            yield strips[chunk, :, :widths[chunk[0]], None].astype(np.float32) / 255, labels[chunk]

    signature = (tf.TensorSpec((None, sequence.LINE_HEIGHT, None, 1), tf.float32),
                 tf.TensorSpec((None, labels.shape[1]), tf.int32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.apply(tf.data.experimental.assert_cardinality(count)).prefetch(4)


def train(model, train_data, validation_data, epochs, seed, checkpoint):
    import keras

    train_batches = dataset(*train_data, True, seed)
    steps = epochs * int(train_batches.cardinality())
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=PEAK_LEARNING_RATE,
                                                      warmup_steps=min(1000, steps // 10))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    # Each epoch's best model is on disk at once: a run stopped early still leaves one.
    callbacks = [keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True)]
    history = model.fit(train_batches, validation_data=dataset(*validation_data, False, seed),
                        epochs=epochs, callbacks=callbacks, verbose=2)
    return keras.models.load_model(checkpoint, compile=False), history.history


"""
## Evaluate on the validation lines, and calibrate

The service's confidence in a number is the probability the frames give the text read
(sequence.text_probability, CTC's). A temperature on the logits, fitted on the validation lines,
calibrates it: the temperature under which their true texts are likeliest, the least mean CTC loss.
A digit's confidence comes from the same frames and stays calibrated with it. The product of the
digits' confidences would not do for the number's: it cannot see a digit too many or too few.
"""

TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 121))


def softmax(logits, temperature=1.0):
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def texts(labels):
    return ["".join(str(d) for d in row if d >= 0) for row in labels]


def exact_match(logits, labels):
    truth = texts(labels)
    return float(np.mean([sequence.text_of(p) == t for p, t in zip(softmax(logits), truth)]))


def fit_temperature(logits, labels):
    """The temperature under which the lines' true texts are likeliest: the least mean CTC loss.
    The loss falls and then rises along TEMPERATURES, so a ternary search finds it in ~25 of them
    (a CTC pass over 3,000 lines takes about a second)."""
    from keras import ops

    @functools.cache
    def loss(index):
        return float(ops.mean(ctc_loss(labels, logits / TEMPERATURES[index])))

    low, high = 0, len(TEMPERATURES) - 1
    while high - low > 2:
        third = (high - low) // 3
        if loss(low + third) < loss(high - third):
            high = high - third
        else:
            low = low + third
    return float(TEMPERATURES[min(range(low, high + 1), key=loss)])


def per_length(logits, labels):
    truth = texts(labels)
    read = [sequence.text_of(p) for p in softmax(logits)]
    table = {}
    for length in range(1, data.MAX_DIGITS + 1):
        matches = [r == t for r, t in zip(read, truth) if len(t) == length]
        if matches:
            table[str(length)] = round(float(np.mean(matches)), 4)
    return table


"""
## Save the model and its card

The saved model ends in a softmax over the calibrated logits: the service and LiteRT get frame
probabilities, and decoding stays outside the model.
"""


def serving_model(model, temperature):
    """The trained network at the full strip's width, ending in the calibrated softmax."""
    import keras
    from keras import layers

    strip = build_model(sequence.LINE_WIDTH)
    strip.set_weights(model.get_weights())
    probabilities = layers.Softmax(name="frames")(layers.Rescaling(1 / temperature)(strip.output))
    return keras.Model(strip.input, probabilities, name="number_reader")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="number_model.py", description="Train the number reader.")
    parser.add_argument("--data", type=Path, required=True, metavar="PATH", help="mnist .npz (Keras layout)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"passes over the lines (default {EPOCHS})")
    parser.add_argument("--lines", type=int, default=TRAIN_LINES, help=f"training lines (default {TRAIN_LINES})")
    parser.add_argument("--validation-lines", type=int, default=VALIDATION_LINES)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes composing lines")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "flaskService", metavar="DIR")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    started = time.monotonic()
    x, y = load_digits(args.data)
    train_pool, validation_pool = data.split_digits(y, data.HELD_OUT_FRACTION, args.seed)
    train_data = make_lines(x, y, train_pool, args.lines, (args.seed, 0), args.workers)
    validation_data = make_lines(x, y, validation_pool, args.validation_lines, (args.seed, 1), args.workers)
    composed = time.monotonic()
    print(f"{len(train_data[1])} training and {len(validation_data[1])} validation lines composed in "
          f"{composed - started:.0f} s", flush=True)

    import keras

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    model, history = train(build_model(), train_data, validation_data, args.epochs, args.seed,
                           args.out / "number_model.checkpoint.keras")
    trained = time.monotonic()

    logits = model.predict(validation_data[0][..., None].astype("float32") / 255, batch_size=256, verbose=0)
    temperature = fit_temperature(logits, validation_data[1])
    path = args.out / "number_model.h5"
    save_model(serving_model(model, temperature), path)
    card = {
        "name": "number_reader",
        "sha256": sha256_of(path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "modelTrain/number_model.py", *argv]),
        "architecture": "6 convolutions (BatchNorm, ReLU, spatial dropout), 3 frame convolutions (2 residual), dense; CTC; no recurrent layer",
        "parameters": int(model.count_params()),
        "input": {"shape": [sequence.LINE_HEIGHT, sequence.LINE_WIDTH, 1], "dtype": "float32",
                  "range": [0.0, 1.0], "polarity": "white ink on black",
                  "from_ink": "flaskService.digits.sequence.line_input"},
        "output": {"shape": [sequence.FRAMES, sequence.CLASSES],
                   "meaning": "per frame of 4 columns: calibrated probabilities of CTC blank (0) and digits 0..9 (1..10)",
                   "decode": "flaskService.digits.sequence.greedy_decode"},
        "temperature": temperature,
        "data": {"source": str(args.data), "digits": "MNIST training split",
                 "training_lines": int(len(train_data[1])), "validation_lines": int(len(validation_data[1])),
                 "validation_digits": f"{data.HELD_OUT_FRACTION:.0%} of the training digits, seed {args.seed}",
                 "lengths": [1, data.MAX_DIGITS], "styled_share": data.STYLED_SHARE},
        "training": {"epochs": len(history["loss"]), "batch_size": BATCH_SIZE,
                     "best_validation_loss": round(float(min(history["val_loss"])), 4),
                     "minutes_composing": round((composed - started) / 60, 1),
                     "minutes_training": round((trained - composed) / 60, 1),
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores"},
        "validation": {"exact_match": round(exact_match(logits, validation_data[1]), 4),
                       "per_length": per_length(logits, validation_data[1])},
    }
    write_card(args.out / "number_model.json", card)
    (args.out / "number_model.checkpoint.keras").unlink(missing_ok=True)
    print(json.dumps(card["validation"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
