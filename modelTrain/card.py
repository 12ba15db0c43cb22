"""Evaluation of a digit model and its card, shared by train.py (which writes the card) and
evaluate.py (which reports on any model the service can load): accuracy, loss, per-digit accuracy
and confusion matrix on digits, the training history plot and the confusion-matrix plot; the
model's speed through LiteRT and its size in multiply-adds; the input and output contracts the card
states, the record of a training run, and writing the model and its card.
"""

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # Files only: no display on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES, sha256_of  # noqa: E402
from flaskService.digits.predictor import to_tflite  # noqa: E402  (the conversion the service serves)
from modelTrain import synthetic  # noqa: E402
from modelTrain.data import AUGMENTATION, DIGITS  # noqa: E402


def evaluate(model, x, y):
    """On digits: loss, accuracy of the digit answer (the likeliest of the ten digits, as the
    service answers it), per-class accuracy and confusion matrix (rows: true, columns: predicted)."""
    probabilities = model.predict(x, batch_size=1000, verbose=0)
    predicted = probabilities[:, :NUM_CLASSES].argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype="int64")
    np.add.at(confusion, (y, predicted), 1)
    per_class = {
        digit: (float(confusion[i, i] / row.sum()) if row.sum() else None)
        for i, (digit, row) in enumerate(zip(DIGITS, confusion))
    }
    true_probabilities = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1)
    return {
        "images": int(len(y)),
        "accuracy": float((predicted == y).mean()),
        "loss": float(-np.log(true_probabilities).mean()),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
    }


def digit_accuracy(model, x, y):
    """Share of `x` read as `y`, from the ten digit outputs (a model may have more), or None if empty."""
    if not len(y):
        return None
    return float((model.predict(x, verbose=0)[:, :NUM_CLASSES].argmax(axis=1) == y).mean())


def plot_history(history, best_epoch, path):
    """Accuracy and loss (log scale) per epoch, training and validation, the kept epoch marked."""
    epochs = range(1, len(history["loss"]) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        axis.plot(epochs, history[metric], marker=".", label="training (augmented)")
        axis.plot(epochs, history[f"val_{metric}"], marker=".", label="validation")
        axis.axvline(best_epoch, color="grey", linestyle=":", label=f"kept: epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        if metric == "loss":
            axis.set_yscale("log")  # The last epochs differ in the third decimal.
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion(confusion, path, title):
    """Confusion matrix with counts; colour on a log scale so that the few errors stand out."""
    confusion = np.asarray(confusion)
    figure, axis = plt.subplots(figsize=(6.5, 5.5))
    image = axis.imshow(np.log1p(confusion), cmap="Blues")
    for (row, column), count in np.ndenumerate(confusion):
        dark = image.norm(np.log1p(count)) > 0.6
        axis.text(column, row, count, ha="center", va="center", fontsize=8,
                  color="white" if dark else "black")
    axis.set_xticks(range(NUM_CLASSES), DIGITS)
    axis.set_yticks(range(NUM_CLASSES), DIGITS)
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


"""
## Speed and size
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
## The model file and its card
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


def digit_card(model, path, architecture, **sections):
    """The card of `model`, saved at `path`: its version (the file's sha256), framework, size and
    contracts, then `sections` (data, training, evaluation figures) in the order given."""
    import keras
    import tensorflow as tf

    digest = sha256_of(path)
    return {
        "name": "digit-classifier",
        "version": digest[:12],
        "sha256": digest,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "framework": {"keras": keras.__version__, "tensorflow": tf.__version__},
        "architecture": {
            "name": architecture,
            "parameters": model.count_params(),
            "multiply_adds": multiply_adds(model),
        },
        "input": INPUT_CONTRACT,
        "output": OUTPUT_CONTRACT,
        **sections,
    }


def training_record(args, command, history, best_epoch, seconds, temperature, *, peak_learning_rate, patience):
    """The card's `training` section for a train.py run with arguments `args`: how it trained (its
    `command`, optimizer, early stopping, augmentation), how it was calibrated, its history."""
    return {
        "command": command,
        "epochs": args.epochs,
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
        "batch_size": args.batch_size,
        "optimizer": f"adam, {peak_learning_rate} peak, 1 epoch warm-up, cosine decay",
        "early_stopping": f"val_loss, patience {patience}, best epoch restored",
        "augmentation": AUGMENTATION if args.augment else None,
        "seed": args.seed,
        "init": {"path": str(args.init), "sha256": sha256_of(args.init)} if args.init else None,
        "seconds": seconds,
        "calibration": {"method": "temperature scaling of the digit probabilities on the validation "
                                  "split's digits (log loss)",
                        "temperature": round(temperature, 4)},
        "history": {key: [round(v, 5) for v in values] for key, values in history.items()},
    }


def write_card(path, card):
    path.write_text(json.dumps(card, indent=2) + "\n")
