"""Evaluation of a digit model and the figures on its card, shared by train.py (which writes the
card) and evaluate.py (which reports on any model the service can load): accuracy, loss, per-digit
accuracy and confusion matrix on digits, the training history plot and the confusion-matrix plot.
"""

import matplotlib

matplotlib.use("Agg")  # Files only: no display on servers and in CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from flaskService.digits.model import NUM_CLASSES  # noqa: E402
from modelTrain.data import DIGITS  # noqa: E402


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
