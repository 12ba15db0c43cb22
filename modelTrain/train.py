"""
Title: Handwritten digit classifier for flaskService
Description: Trains the convnet the service loads, on MNIST or on a folder of digit images, and
writes the model, its card and two plots.

Run from the repository root. By default it trains our architecture and refreshes the model the
service ships (`flaskService/`, its plots in `docs/images/`); without `--data` it downloads MNIST.
The shipped model is:

    python modelTrain/train.py --data ../shared/data/mnist.npz --seed 1

`--data` takes a mnist .npz or a folder of digit images, which go through the service's own
preprocessing: the model learns from exactly what it will be served. `--help` lists the rest.
"""

"""
## Setup
"""

import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

# Run as `python modelTrain/train.py`: put the repository root on the path so that the service's
# package (flaskService.digits.preprocess) is importable; image preprocessing has one implementation.
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
# The shipped model goes where the service loads it; its plots go where docs/model.md shows them,
# out of the service's image.
SHIPPED = REPO_ROOT / "flaskService"
DOC_IMAGES = REPO_ROOT / "docs" / "images"

# Keras (and TensorFlow under it) is imported inside the functions that need it, once the
# arguments and the data have been checked: its start-up takes seconds and writes a banner to
# stderr, and a mistyped option should fail at once with one line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES  # noqa: E402  (the service's contract)
from modelTrain import synthetic  # noqa: E402  (what is not one digit: the two extra classes)
from modelTrain.card import (digit_accuracy, digit_card, evaluate, measure_latency, plot_confusion,  # noqa: E402
                             plot_history, save_model, training_record, write_card)
from modelTrain.cli import (ArgumentParser, InputError, make_folders, model_to_fine_tune,  # noqa: E402
                            non_negative_int, positive_int)
from modelTrain.data import (build_augmenter, load_data, rejection_class_counts, require_enough_images,  # noqa: E402
                             split_validation, with_rejection_classes)

"""
## Prepare the data

Every source (a mnist .npz, a folder of digit images, MNIST downloaded) becomes float32 arrays of
shape (n, 28, 28, 1) in [0, 1], white ink on black, MNIST-centred: the served model's input
(modelTrain/data.py's `load_data`). Beside the digits go made-up images of the two extra classes,
"not a digit" and "several digits" (data.py's `with_rejection_classes`); with `--feedback`, the
corrections people sent through POST /feedback, a share held out (modelTrain/corrections.py).
"""

# Share of the training images held out for validation (best-epoch choice); never the test set.
VALIDATION_FRACTION = 0.1
# Corrections are few, and exactly what the model got wrong: each is seen this many times per epoch.
FEEDBACK_WEIGHT = 10

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


"""
## Train the model

People do not write like MNIST's writers: training batches are distorted (data.py's `build_augmenter`)
in the input pipeline, not in the model, which stays pure inference.
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

A network trained to low loss is over-confident on what it gets wrong. One temperature T divides
every logit, fitted on the validation split's digits to minimise the log loss of the ten digits'
softmax (the service's `probabilities` and `confidence`; temperature scaling, Guo et al. 2017): it
changes no answer, only how sure the answer says it is. The saved model carries T in its
`temperature` layer, so every copy of it is calibrated.
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
## Command line: evaluate the trained model, save it and its card

`run` evaluates on the validation and test digits with modelTrain/card.py, as evaluate.py does.
"""


def parse_args(argv=None):
    parser = ArgumentParser(prog="train.py", description="Train the digit classifier and write model.h5, "
                            "model.json, history.png and confusion.png.")
    parser.add_argument("--data", type=Path, metavar="PATH",
                        help="mnist .npz (x_train, y_train, x_test, y_test) or folder of digit sub-folders "
                        "0..9 (default: download MNIST with keras.datasets)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="compact",
                        help="network: compact (ours, default) or seed (the original 2020 one)")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS, help=f"maximum epochs (default {EPOCHS})")
    parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                        help=f"images per training step (default {BATCH_SIZE})")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--seed", type=non_negative_int, default=1,
                        help="seed for splits, shuffling, initialisation, augmentation (default 1)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="train on the images as they are")
    parser.add_argument("--feedback", metavar="SOURCE",
                        help="also train on corrections sent to the service: its FEEDBACK_DB URL, or "
                        "the zip (or unzipped folder) GET /feedback/export returns")
    parser.add_argument("--feedback-weight", type=positive_int, default=FEEDBACK_WEIGHT, metavar="N",
                        help=f"each correction is seen N times per epoch (default {FEEDBACK_WEIGHT})")
    parser.add_argument("--init", type=Path, metavar="MODEL",
                        help="fine-tune this model (e.g. flaskService/model.h5) instead of starting "
                        f"from scratch, at a peak learning rate of {FINE_TUNE_LEARNING_RATE}")
    parser.add_argument("--out", type=Path, default=SHIPPED, metavar="DIR",
                        help="output folder (default: flaskService/, the shipped model)")
    parser.add_argument("--plots", type=Path, metavar="DIR",
                        help="folder for history.png and confusion.png (default: --out; docs/images/ "
                        "for the shipped model)")
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
    plots = args.plots or (DOC_IMAGES if args.out.resolve() == SHIPPED else args.out)
    make_folders(("--out", args.out), ("--plots", plots))

    (x_train, y_train), (x_test, y_test), data = load_data(args.data, args.seed)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    require_enough_images(y_train, y_test, args.data)
    train_digits, validation_digits = split_validation(x_train, y_train, VALIDATION_FRACTION, args.seed)
    feedback = None
    if args.feedback:
        from modelTrain import corrections  # only with --feedback: it loads the feedback store's SQLAlchemy

        train_digits, feedback = corrections.mix_in(train_digits, args.feedback, args.feedback_weight, args.seed)
    train_data = with_rejection_classes(*train_digits, seed=args.seed)
    validation_data = with_rejection_classes(*validation_digits, seed=args.seed + 1000)
    data.update(train=len(train_digits[1]), validation=len(validation_digits[1]), test=len(y_test),
                **rejection_class_counts(train_data[1], validation_data[1]))
    print(f"data: {data}")

    import keras
    import tensorflow as tf

    # Same seed, same model: seeded initialisation, splits, shuffling and augmentation, and
    # TensorFlow's deterministic kernels (multi-threaded reductions otherwise vary run to run).
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    model = model_to_fine_tune(args.init, synthetic.CLASSES) if args.init else ARCHITECTURES[args.arch]()
    model.summary()
    if feedback:
        feedback["held_out_accuracy_before"] = digit_accuracy(model, *feedback["held_out"]) if args.init else None

    started = time.monotonic()
    history, best_epoch = train(model, train_data, validation_data, args.epochs, args.batch_size, args.augment,
                                args.seed, FINE_TUNE_LEARNING_RATE if args.init else PEAK_LEARNING_RATE)
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
    print(f"validation accuracy {validation['accuracy']:.4f}, test accuracy {test['accuracy']:.4f} "
          f"({test['images']} images), LiteRT {latency['median_ms']} ms/image")

    model_path = args.out / "model.h5"
    save_model(model, model_path)
    card = digit_card(
        model, model_path, args.arch,
        data={**data, "limit": args.limit},
        training=training_record(args, command, history, best_epoch, training_seconds, temperature,
                                 peak_learning_rate=PEAK_LEARNING_RATE, patience=PATIENCE),
        validation={key: validation[key] for key in ("images", "accuracy", "loss")},
        test=test,
        feedback=feedback,
        latency=latency,
    )
    write_card(args.out / "model.json", card)
    plot_history(history, best_epoch, plots / "history.png")
    plot_confusion(test["confusion_matrix"], plots / "confusion.png",
                   f"{args.arch} {card['version']}: test accuracy {test['accuracy']:.2%}")
    print(f"wrote {model_path} (version {card['version']}) and model.json to {args.out}, "
          f"history.png and confusion.png to {plots}")


if __name__ == "__main__":
    sys.exit(main())
