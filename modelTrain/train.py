"""
Title: Handwritten digit classifier for flaskService
Description: Trains the convnet the service loads, on MNIST or on a folder of digit images, and
writes the model, its card and two plots.

Run from the repository root. By default it trains our architecture and refreshes the model the
service ships (`flaskService/`); without `--data` it downloads MNIST. The shipped model is:

    python modelTrain/train.py --data ../shared/data/mnist.npz --seed 1

`--data` takes a .npz in Keras's mnist layout (`x_train, y_train, x_test, y_test`, uint8) or a
directory with one sub-folder per digit `0` ... `9` (or `train/0..9` and `test/0..9`) of images of
any size and format; those go through the service's own preprocessing, so the model learns from
exactly what it will be served. `--help` lists the rest.
"""

"""
## Setup
"""

import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Run as `python modelTrain/train.py`: put the repository root on the path so that the service's
# package (flaskService.digits.preprocess) is importable; image preprocessing has one implementation.
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# Keras (and TensorFlow under it) is imported inside the functions that need it, once the
# arguments and the data have been checked: its start-up takes seconds and writes a banner to
# stderr, and a mistyped option should fail at once with one line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES, sha256_of  # noqa: E402  (the service's contract)
from flaskService.digits.predictor import to_tflite  # noqa: E402  (the conversion the service serves)
from modelTrain import synthetic  # noqa: E402  (what is not one digit: the two extra classes)
from modelTrain.card import evaluate, plot_confusion, plot_history  # noqa: E402  (shared with evaluate.py)
from modelTrain.cli import ArgumentParser, InputError, non_negative_int, positive_int  # noqa: E402
from modelTrain.data import as_model_input, load_data, split_validation  # noqa: E402  (shared with evaluate.py)

"""
## Prepare the data

Every source ends up as float32 arrays of shape (n, 28, 28, 1) in [0, 1], white ink on black,
MNIST-centred: the input contract of the served model. Reading the sources (a mnist .npz, a folder
of digit images, or MNIST downloaded) and carving the test split out of a folder is
modelTrain/data.py's `load_data`, which evaluate.py reads its test images with too.
"""

# Share of the training images held out for validation (best-epoch choice); never the test set.
VALIDATION_FRACTION = 0.1


"""
### Corrections from the service (`--feedback`)

What people corrected through POST /feedback joins the training images, each seen several times per
epoch: they are few, and they are exactly the digits the model got wrong. A share is held out, so the
card says how well the new model reads corrections it never trained on.
"""

FEEDBACK_WEIGHT = 10
FEEDBACK_HELD_OUT_FRACTION = 0.2


def mix_in_feedback(train_data, source, weight, seed):
    """The training data with the corrections from `source` added `weight` times each, and a
    description of them for the card holding the held-out share (x, y)."""
    from modelTrain.feedback import CorrectionsError, describe_source, load_corrections, split_held_out

    try:
        x, y = load_corrections(source)
    except CorrectionsError as error:
        raise InputError(str(error)) from None
    (x_used, y_used), held_out = split_held_out(x, y, FEEDBACK_HELD_OUT_FRACTION, seed)
    mixed = (np.concatenate([train_data[0], np.repeat(x_used, weight, axis=0)]),
             np.concatenate([train_data[1], np.repeat(y_used, weight)]))
    return mixed, {"source": describe_source(source), "corrections": len(y), "trained_on": len(y_used),
                   "weight": weight, "held_out": held_out}


def digit_accuracy(model, x, y):
    """Share of `x` read as `y`, from the ten digit outputs (a model may have more), or None if empty."""
    if not len(y):
        return None
    return float((model.predict(x, verbose=0)[:, :NUM_CLASSES].argmax(axis=1) == y).mean())


"""
The classifier also learns to say "not a digit" and "several digits" (outlier exposure): beside
the digits it sees letters, symbols, scribbles, shapes, hatching and noise drawn in code, and
several of the split's own digits side by side (modelTrain/synthetic.py). The validation split
gets its own, drawn with other seeds from its own digits.
"""

# Per digit image of the split: how many "not a digit" and "several digits" images go beside it.
NON_DIGIT_SHARE = 0.5
SEVERAL_DIGITS_SHARE = 0.25


def with_rejection_classes(x, y, seed):
    """The split's digits plus made-up images of the two extra classes, shuffled together."""
    count = len(y)
    non_digits = synthetic.non_digits(round(count * NON_DIGIT_SHARE), seed)
    several = synthetic.several_digits(x, y, round(count * SEVERAL_DIGITS_SHARE), seed + 1)
    x = np.concatenate([x, as_model_input(non_digits), as_model_input(several)])
    y = np.concatenate([y, np.full(len(non_digits), synthetic.NOT_A_DIGIT),
                        np.full(len(several), synthetic.SEVERAL_DIGITS)]).astype("int64")
    order = np.random.default_rng(seed).permutation(len(y))
    return x[order], y[order]


"""
## Build the model
"""


def build_seed_model():
    """The original 2020 network, layer for layer but for its two extra outputs: 12,172 parameters."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE)
    x = layers.Conv2D(8, kernel_size=5, activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(16, kernel_size=5, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    return keras.Model(inputs, classifier_head(x), name="seed")


# Dropout before the classifier: with 24k training images the network can memorise them.
COMPACT_DROPOUT = 0.4


def build_compact_model():
    """Ours: four batch-normalised convolutions, about 2.5M multiply-adds per image.

    Small enough that LiteRT runs one image in a few hundredths of a millisecond on one core,
    wide enough (with augmentation) to beat the seed network trained on 2.5x the data.
    """
    import keras
    from keras import layers

    def conv_bn_relu(x, filters, kernel_size, padding="same"):
        # The batch normalisation's shift replaces the convolution's bias.
        x = layers.Conv2D(filters, kernel_size, padding=padding, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=INPUT_SHAPE)
    # MNIST digits sit in a 20x20 box inside 28x28: a "valid" 5x5 convolution loses only border.
    x = conv_bn_relu(inputs, 16, 5, padding="valid")  # 24x24
    x = layers.MaxPooling2D(pool_size=2)(x)  # 12x12
    x = conv_bn_relu(x, 32, 3)
    x = conv_bn_relu(x, 32, 3)
    x = layers.MaxPooling2D(pool_size=2)(x)  # 6x6
    x = conv_bn_relu(x, 64, 3, padding="valid")  # 4x4
    x = layers.Flatten()(x)
    x = layers.Dropout(COMPACT_DROPOUT)(x)
    return keras.Model(inputs, classifier_head(x), name="compact")


def classifier_head(features):
    """Logits for the ten digits and the two extra classes, then their probabilities."""
    from keras import layers

    return probabilities_from(layers.Dense(synthetic.CLASSES, name="logits")(features), temperature=1.0)


def probabilities_from(logits, temperature):
    """Softmax of the logits divided by the calibration temperature (1 while training)."""
    from keras import layers

    scaled = layers.Rescaling(1 / temperature, name="temperature")(logits)
    return layers.Activation("softmax", name="probabilities")(scaled)


ARCHITECTURES = {"compact": build_compact_model, "seed": build_seed_model}

# People do not write like MNIST's writers: small rotations and changes of scale, thicker and
# thinner pens. The service centres every digit by its mass in a 20x20 box, so shifts stay small.
ROTATION_DEGREES = 15
ZOOM_FRACTION = 0.15
SHIFT_PIXELS = 1.5
# Largest share of a 3x3 maximum (thicker strokes) or minimum (thinner) blended into an image.
STROKE_VARIATION = 0.5
# Digits written on forms and ruled paper reach the model with what line removal leaves: a faint
# piece of a rule across the digit, or a gap where a stroke crossed a rule that was taken out.
# Each happens to this share of the images.
LINE_REMNANT_SHARE = 0.08
STROKE_GAP_SHARE = 0.08
# Old scans and thumbnails: a digit only 8-16 pixels tall, blown up by whatever viewer was at hand.
# The service scales its 20 px box back up, blocky or blurred: this share of the images is made
# that coarse (its box shrunk to LOW_RESOLUTION_BOX pixels and enlarged again).
LOW_RESOLUTION_SHARE = 0.1
LOW_RESOLUTION_BOX = (8, 16)


def build_augmenter(seed):
    """Random distortions for the input pipeline, not in the model: it stays pure inference.

    Rotation, zoom and shift all move the point each output pixel is read from, and the image is
    resampled once: every resampling blurs, and the digits the service reads are sharp.
    """
    import keras
    import tensorflow as tf

    seed_generator = keras.random.SeedGenerator(seed)
    height, width = INPUT_SHAPE[:2]
    # Rotation and zoom turn about the image's centre.
    centre = ((height - 1) / 2, (width - 1) / 2)
    rows, columns = np.mgrid[:height, :width].astype("float32")
    rows, columns = rows - centre[0], columns - centre[1]

    def uniform(shape, limit):
        return keras.random.uniform(shape, -limit, limit, seed=seed_generator)

    def source_points(n):
        """(n, height, width, 2): where each output pixel comes from, as (row, column)."""
        angle = uniform((n, 1, 1), np.radians(ROTATION_DEGREES))
        scale = 1 + uniform((n, 1, 1), ZOOM_FRACTION)
        y, x = rows / scale, columns / scale
        turned = tf.stack([tf.cos(angle) * y - tf.sin(angle) * x + centre[0],
                           tf.sin(angle) * y + tf.cos(angle) * x + centre[1]], axis=-1)
        return turned + uniform((n, 1, 1, 2), SHIFT_PIXELS)

    def resample(images, points):
        """Bilinear interpolation of each image at its points; black outside the image."""
        n = tf.shape(images)[0]
        corner = tf.floor(points)
        weight_y, weight_x = tf.unstack(tf.reshape(points - corner, (n, -1, 2)), axis=-1)
        pixels = tf.reshape(images, (n, -1))

        def at(dy, dx):  # the pixel dy rows down and dx columns right of each point's corner
            y, x = tf.unstack(tf.reshape(corner + [dy, dx], (n, -1, 2)), axis=-1)
            inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            index = tf.clip_by_value(y, 0, height - 1) * width + tf.clip_by_value(x, 0, width - 1)
            return tf.where(inside, tf.gather(pixels, tf.cast(index, "int32"), batch_dims=1), 0.0)

        top = (1 - weight_x) * at(0, 0) + weight_x * at(0, 1)
        bottom = (1 - weight_x) * at(1, 0) + weight_x * at(1, 1)
        return tf.reshape((1 - weight_y) * top + weight_y * bottom, tf.shape(images))

    def between(shape, low, high):
        return keras.random.uniform(shape, low, high, seed=seed_generator)

    row_index, column_index = (tf.constant(grid[None, :, :, None]) for grid in np.mgrid[:height, :width].astype("float32"))

    def line_remnants(images):
        """A one-pixel line, horizontal or vertical, across part of some images; a gap of the same
        shape cut through others."""
        n = tf.shape(images)[0]
        horizontal = between((n, 1, 1, 1), 0, 1) < 0.5
        across = tf.where(horizontal, row_index, column_index)
        along = tf.where(horizontal, column_index, row_index)
        start = between((n, 1, 1, 1), 0, width / 2)
        on_line = ((tf.abs(across - between((n, 1, 1, 1), 4, height - 4)) < 0.5)
                   & (along >= start) & (along < start + between((n, 1, 1, 1), width / 3, width)))
        kind = between((n, 1, 1, 1), 0, 1)
        remnant = on_line & (kind < LINE_REMNANT_SHARE)
        gap = on_line & (kind >= LINE_REMNANT_SHARE) & (kind < LINE_REMNANT_SHARE + STROKE_GAP_SHARE)
        images = tf.where(remnant, tf.maximum(images, between((n, 1, 1, 1), 0.3, 1)), images)
        return tf.where(gap, 0.0, images)

    def low_resolution(images):
        """Some images shrunk to a coarse grid (one size per batch) and enlarged again, half of
        them blocky (nearest neighbour), half blurred (bilinear)."""
        n = tf.shape(images)[0]
        box = between((), *LOW_RESOLUTION_BOX)
        side = tf.cast(tf.round(box * height / 20), "int32")  # the 20 px box at `box` px: the image at `side`
        small = tf.image.resize(images, (side, side), method="area")
        blocky = tf.image.resize(small, (height, width), method="nearest")
        blurred = tf.image.resize(small, (height, width), method="bilinear")
        kind = between((n, 1, 1, 1), 0, 1)
        coarse = tf.where(kind < LOW_RESOLUTION_SHARE / 2, blocky, blurred)
        return tf.where(kind < LOW_RESOLUTION_SHARE, coarse, images)

    def augment(images):
        n = tf.shape(images)[0]
        images = resample(images, source_points(n))
        thicker = tf.nn.max_pool2d(images, 3, 1, "SAME")
        thinner = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
        stroke = uniform((n, 1, 1, 1), STROKE_VARIATION)
        images = (images + tf.nn.relu(stroke) * (thicker - images)
                  + tf.nn.relu(-stroke) * (thinner - images))
        return low_resolution(line_remnants(images))

    return augment


"""
## Train the model
"""

EPOCHS = 40
BATCH_SIZE = 128
# Adam with one epoch of linear warm-up to the peak rate, then cosine decay to zero.
PEAK_LEARNING_RATE = 3e-3
# Fine-tuning (--init) starts from weights that already read MNIST: a tenth of the rate adapts them
# to the corrections without unlearning the rest.
FINE_TUNE_LEARNING_RATE = 3e-4
# Epochs without a better validation loss before training stops; the best epoch is kept. Generous:
# on distorted digits the validation loss jumps about until the learning rate has come down.
PATIENCE = 20


def train(model, train_data, validation_data, epochs, batch_size, augment, seed,
          peak_learning_rate=PEAK_LEARNING_RATE):
    """Fit with the best epoch (lowest validation loss) restored; returns history and that epoch."""
    import keras
    import tensorflow as tf

    x_train, y_train = train_data
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    dataset = dataset.shuffle(len(y_train), seed=seed).batch(batch_size)
    if augment:
        augmenter = build_augmenter(seed)
        dataset = dataset.map(lambda x, y: (augmenter(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)

    steps_per_epoch = len(dataset)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak_learning_rate / 10,
        warmup_target=peak_learning_rate,
        warmup_steps=steps_per_epoch,
        decay_steps=max(1, steps_per_epoch * (epochs - 1)),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=PATIENCE, restore_best_weights=True, verbose=1
    )
    history = model.fit(
        dataset,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=[early_stopping],
        shuffle=False,  # The dataset reshuffles itself every epoch, with the seed.
        verbose=2,
    )
    return history.history, early_stopping.best_epoch + 1


"""
## Calibrate the confidence

A network trained to low loss is over-confident on what it gets wrong. One temperature T, by
which every logit is divided, is fitted on the validation split's digits to minimise the log loss
of their digit probabilities (the ten digits' softmax, which the service answers as `probabilities`
and `confidence`; temperature scaling, Guo et al. 2017): it changes no answer, only how sure the
answer says it is. The saved model carries T in its `temperature` layer, so every copy of it is
calibrated.
"""

TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))


def fit_temperature(model, x, y):
    """The temperature that minimises the log loss of `model`'s digit logits on the digits (x, y)."""
    import keras

    logits = keras.Model(model.input, model.get_layer("logits").output).predict(x, batch_size=1000, verbose=0)
    logits = logits[:, :NUM_CLASSES].astype("float64")

    def log_loss(temperature):
        scaled = logits / temperature
        top = scaled.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
        return float((log_norm - scaled[np.arange(len(y)), y]).mean())

    return float(min(TEMPERATURES, key=log_loss))


def calibrated(model, temperature):
    """The same network with its logits divided by `temperature` before the softmax."""
    import keras

    return keras.Model(model.input, probabilities_from(model.get_layer("logits").output, temperature),
                       name=model.name)


"""
## Evaluate the trained model

Accuracy, loss, per-digit accuracy and the confusion matrix on the validation and test digits are
modelTrain/card.py's `evaluate`, the one evaluate.py reports with; here the card also gets the
model's speed through LiteRT and its size in multiply-adds.
"""

LATENCY_RUNS = 2000


def measure_latency(model, runs=LATENCY_RUNS):
    """Median milliseconds of one single-image LiteRT invoke() on one thread, float32 model."""
    from ai_edge_litert.interpreter import Interpreter

    flatbuffer = to_tflite(model)
    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    image = np.random.default_rng(0).random((1, *INPUT_SHAPE), dtype=np.float32)
    timings = []
    for run in range(runs + runs // 10):
        interpreter.set_tensor(index, image)
        start = time.perf_counter()
        interpreter.invoke()
        if run >= runs // 10:  # The first tenth warms caches up and is not counted.
            timings.append(time.perf_counter() - start)
    return {
        "runtime": "ai-edge-litert (LiteRT) float32, XNNPACK",
        "threads": 1,
        "runs": runs,
        "median_ms": round(statistics.median(timings) * 1000, 4),
        "tflite_bytes": len(flatbuffer),
        "cpu": cpu_name(),
    }


def cpu_name():
    """The processor's model name where Linux tells it, else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def multiply_adds(model):
    """Multiply-accumulates for one image through the convolutions and dense layers."""
    total = 0
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D":
            _, height, width, filters = layer.output.shape
            total += height * width * filters * int(np.prod(layer.kernel.shape[:-1]))
        elif type(layer).__name__ == "Dense":
            total += int(np.prod(layer.kernel.shape))
    return total


"""
## Save the model and its card
"""

INPUT_CONTRACT = {
    "shape": list(INPUT_SHAPE),
    "dtype": "float32",
    "range": [0.0, 1.0],
    "polarity": "white ink on black",
    "centring": "MNIST: digit scaled to fit a 20x20 box, centred by its centre of mass in 28x28",
    "from_image_bytes": "flaskService.digits.preprocess.preprocess_image",
}
OUTPUT_CONTRACT = {
    "shape": [synthetic.CLASSES],
    "meaning": "calibrated softmax probabilities of digits 0..9, then 'not a digit' (10) and 'several "
               "digits' (11); the probability that the image is one digit is the sum of the first ten",
}


def save_model(model, path):
    """HDF5 (what the service loads), written beside the target and renamed into place."""
    partial = path.with_name(f".{path.stem}.partial.h5")  # Keras picks the format by suffix.
    model.save(partial, include_optimizer=False)
    os.replace(partial, path)


def write_card(path, card):
    path.write_text(json.dumps(card, indent=2) + "\n")


"""
## Command line
"""


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="train.py",
        description="Train the digit classifier and write model.h5, model.json, history.png "
        "and confusion.png.",
    )
    parser.add_argument(
        "--data", type=Path, metavar="PATH",
        help="mnist .npz (x_train, y_train, x_test, y_test) or folder of digit sub-folders 0..9 "
        "(default: download MNIST with keras.datasets)",
    )
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="compact",
                        help="network: compact (ours, default) or seed (the original 2020 one)")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS,
                        help=f"maximum epochs (default {EPOCHS})")
    parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                        help=f"images per training step (default {BATCH_SIZE})")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--seed", type=non_negative_int, default=1,
                        help="seed for splits, shuffling, initialisation, augmentation (default 1)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="train on the images as they are")
    parser.add_argument("--feedback", metavar="SOURCE",
                        help="also train on corrections sent to the service: its FEEDBACK_DB URL, or "
                        "the zip (or unzipped folder) GET /feedback/export returns")
    parser.add_argument("--feedback-weight", type=positive_int, default=FEEDBACK_WEIGHT, metavar="N",
                        help=f"each correction is seen N times per epoch (default {FEEDBACK_WEIGHT})")
    parser.add_argument("--init", type=Path, metavar="MODEL",
                        help="fine-tune this model (e.g. flaskService/model.h5) instead of starting "
                        f"from scratch, at a peak learning rate of {FINE_TUNE_LEARNING_RATE}")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "flaskService", metavar="DIR",
                        help="output folder (default: flaskService/, the shipped model)")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        run(args, command=shlex.join(["python", "modelTrain/train.py", *argv]))
    except InputError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args, command):
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {args.out}: {error.strerror}") from None

    (x_train, y_train), (x_test, y_test), data = load_data(args.data, args.seed)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if len(y_train) < 10:
        raise InputError(f"only {len(y_train)} training images; at least 10 are needed")
    if not len(y_test):
        raise InputError(f"{args.data}: no test images; give each digit at least 3 images")
    train_digits, validation_digits = split_validation(x_train, y_train, VALIDATION_FRACTION, args.seed)
    feedback = None
    if args.feedback:
        train_digits, feedback = mix_in_feedback(train_digits, args.feedback, args.feedback_weight, args.seed)
    train_data = with_rejection_classes(*train_digits, seed=args.seed)
    validation_data = with_rejection_classes(*validation_digits, seed=args.seed + 1000)
    data.update(train=len(train_digits[1]), validation=len(validation_digits[1]), test=len(y_test),
                not_a_digit={"train": int((train_data[1] == synthetic.NOT_A_DIGIT).sum()),
                             "validation": int((validation_data[1] == synthetic.NOT_A_DIGIT).sum()),
                             "kinds": synthetic.NON_DIGIT_KINDS},
                several_digits={"train": int((train_data[1] == synthetic.SEVERAL_DIGITS).sum()),
                                "validation": int((validation_data[1] == synthetic.SEVERAL_DIGITS).sum())})
    print(f"data: {data}")

    import keras
    import tensorflow as tf

    # Same seed, same model: seeded initialisation, splits, shuffling and augmentation, and
    # TensorFlow's deterministic kernels (multi-threaded reductions otherwise vary run to run).
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    if args.init:
        from flaskService.digits.model import ModelLoadError, load_model

        try:
            model = load_model(args.init)
        except ModelLoadError as error:
            raise InputError(f"--init: {error}") from None
        if model.output_shape[-1] != synthetic.CLASSES:
            raise InputError(f"--init: {args.init} has {model.output_shape[-1]} outputs; fine-tuning needs one of "
                             f"ours with {synthetic.CLASSES} (ten digits, not a digit, several digits)")
    else:
        model = ARCHITECTURES[args.arch]()
    model.summary()
    if feedback:
        feedback["held_out_accuracy_before"] = digit_accuracy(model, *feedback["held_out"]) if args.init else None

    started = time.monotonic()
    history, best_epoch = train(
        model, train_data, validation_data, args.epochs, args.batch_size, args.augment, args.seed,
        FINE_TUNE_LEARNING_RATE if args.init else PEAK_LEARNING_RATE,
    )
    training_seconds = round(time.monotonic() - started, 1)
    temperature = fit_temperature(model, *validation_digits)
    model = calibrated(model, temperature)
    print(f"calibration: temperature {temperature:.3f}, fitted on the validation split")
    if feedback:
        held_out = feedback.pop("held_out")
        feedback.update(held_out=len(held_out[1]), held_out_accuracy=digit_accuracy(model, *held_out))
        print(f"corrections: {feedback}")

    validation = evaluate(model, *validation_digits)
    test = evaluate(model, x_test, y_test)
    latency = measure_latency(model)
    print(
        f"validation accuracy {validation['accuracy']:.4f}, test accuracy {test['accuracy']:.4f} "
        f"({test['images']} images), LiteRT {latency['median_ms']} ms/image"
    )

    model_path = args.out / "model.h5"
    save_model(model, model_path)
    digest = sha256_of(model_path)
    card = {
        "name": "digit-classifier",
        "version": digest[:12],
        "sha256": digest,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "framework": {"keras": keras.__version__, "tensorflow": tf.__version__},
        "architecture": {
            "name": args.arch,
            "parameters": model.count_params(),
            "multiply_adds": multiply_adds(model),
        },
        "input": INPUT_CONTRACT,
        "output": OUTPUT_CONTRACT,
        "data": {**data, "limit": args.limit},
        "training": {
            "command": command,
            "epochs": args.epochs,
            "epochs_run": len(history["loss"]),
            "best_epoch": best_epoch,
            "batch_size": args.batch_size,
            "optimizer": f"adam, {PEAK_LEARNING_RATE} peak, 1 epoch warm-up, cosine decay",
            "early_stopping": f"val_loss, patience {PATIENCE}, best epoch restored",
            "augmentation": {
                "rotation_degrees": ROTATION_DEGREES,
                "zoom_fraction": ZOOM_FRACTION,
                "shift_pixels": SHIFT_PIXELS,
                "stroke_variation": STROKE_VARIATION,
                "line_remnant_share": LINE_REMNANT_SHARE,
                "stroke_gap_share": STROKE_GAP_SHARE,
                "low_resolution_share": LOW_RESOLUTION_SHARE,
                "low_resolution_box_pixels": list(LOW_RESOLUTION_BOX),
            } if args.augment else None,
            "seed": args.seed,
            "init": {"path": str(args.init), "sha256": sha256_of(args.init)} if args.init else None,
            "seconds": training_seconds,
            "calibration": {"method": "temperature scaling of the digit probabilities on the validation "
                                      "split's digits (log loss)",
                            "temperature": round(temperature, 4)},
            "history": {key: [round(v, 5) for v in values] for key, values in history.items()},
        },
        "validation": {key: validation[key] for key in ("images", "accuracy", "loss")},
        "test": test,
        "feedback": feedback,
        "latency": latency,
    }
    write_card(args.out / "model.json", card)
    plot_history(history, best_epoch, args.out / "history.png")
    plot_confusion(
        test["confusion_matrix"], args.out / "confusion.png",
        f"{args.arch} {card['version']}: test accuracy {test['accuracy']:.2%}",
    )
    print(f"wrote {model_path} (version {card['version']}), model.json, history.png, "
          f"confusion.png to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
