"""
Title: Evaluate a trained digit classifier
Description: Accuracy, a per-digit table and a confusion-matrix image for any model the service
can load, on MNIST's test split or on a folder of digit images.

Run from the repository root:

    python modelTrain/evaluate.py flaskService/model.h5 --data ../shared/data/mnist.npz

`--data` is read as by train.py: a mnist .npz (its test split is used), a folder with `train/` and
`test/` (its test split), or a folder of digit sub-folders 0..9 (all of its images). Without
`--data`, MNIST is downloaded.

For a model that can say an image is not one digit (12 outputs), `--rejection` goes on to ask
how well it does: real digits (the test split, and the same digits re-rendered as people send
them) against things that are not one digit (modelTrain/evalsets/nondigits.py: letters,
symbols, doodles, scribbles, hatching, photos, noise, Fashion-MNIST, several digits side by side),
all through the service's own preprocessing and LiteRT model. It reports how many real digits
are accepted, how many of each kind are flagged, the AUROC, the accuracy among accepted digits and
the calibration (expected calibration error, 15 bins) with a reliability diagram; `--card` writes
it all into the model card.
"""

import sys
from pathlib import Path

# Run as `python modelTrain/evaluate.py`: put the repository root on the path so that the
# service's model loader and the data loading train.py uses (modelTrain/data.py) are importable
# (one of each).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import json  # noqa: E402

import numpy as np  # noqa: E402

from flaskService.digits.model import ModelLoadError, check_model_file, load_model, sha256_of  # noqa: E402
from modelTrain.card import evaluate, plot_confusion, write_card  # noqa: E402
from modelTrain.cli import ArgumentParser, InputError, make_folders, positive_int  # noqa: E402
from modelTrain.data import DIGITS, download_mnist, load_folder, load_npz  # noqa: E402

REJECTION_PER_KIND = 300
RENDERED_DIGITS = 1800  # test digits re-rendered in the user styles of modelTrain/evalsets/renders.py
CALIBRATION_BINS = 15


def load_test_data(source):
    """Test images, labels and a description of where they came from."""
    if source is None:
        return *download_mnist()[1], "keras.datasets.mnist, test split"
    if source.is_dir():
        if (source / "train").is_dir() and (source / "test").is_dir():
            return *load_folder(source / "test"), f"{source / 'test'}"
        return *load_folder(source), f"{source}, all images"
    if source.is_file():
        return *load_npz(source)[1], f"{source}, test split"
    raise InputError(f"{source}: no such file or directory")


def print_report(model_path, version, source, results):
    confusion = results["confusion_matrix"]
    print(f"model     {model_path} (version {version})")
    print(f"data      {source}: {results['images']} images")
    print(f"accuracy  {results['accuracy']:.2%}   loss {results['loss']:.4f}")
    print()
    print("digit  images  correct  accuracy")
    for row, digit in enumerate(DIGITS):
        images, correct = sum(confusion[row]), confusion[row][row]
        accuracy = results["per_class_accuracy"][digit]
        shown = f"{accuracy:.2%}" if accuracy is not None else "-"
        print(f"{digit:>5}  {images:>6}  {correct:>7}  {shown:>8}")


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="evaluate.py",
        description="Print a model's accuracy and per-digit table; write its confusion matrix.",
    )
    parser.add_argument("model", type=Path, help="model file (.h5 or .keras)")
    parser.add_argument(
        "--data", type=Path, metavar="PATH",
        help="mnist .npz or folder of digit sub-folders 0..9 (default: download MNIST)",
    )
    parser.add_argument("--out", type=Path, default=Path("confusion.png"), metavar="PNG",
                        help="confusion matrix image (default: confusion.png)")
    parser.add_argument("--rejection", type=positive_int, metavar="N", nargs="?", const=REJECTION_PER_KIND,
                        help="also measure is_digit: N images of each kind that is not one digit "
                        f"(default {REJECTION_PER_KIND}), the test digits and their re-renderings")
    parser.add_argument("--min-digit-score", type=float, default=None, metavar="P",
                        help="operating point for is_digit (default: the service's MIN_DIGIT_SCORE)")
    parser.add_argument("--card", type=Path, metavar="JSON",
                        help="write the figures into this model card (e.g. flaskService/model.json)")
    parser.add_argument("--reliability", type=Path, default=Path("reliability.png"), metavar="PNG",
                        help="reliability diagram with --rejection (default: reliability.png)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (InputError, ModelLoadError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    return 0


def run(args):
    # Check the model file and the data before TensorFlow starts: bad input fails at once.
    check_model_file(args.model)
    make_folders(("--out", args.out.parent))
    x, y, source = load_test_data(args.data)

    model = load_model(args.model)
    results = evaluate(model, x, y)
    version = sha256_of(args.model)[:12]
    print_report(args.model, version, source, results)
    plot_confusion(
        results["confusion_matrix"], args.out,
        f"{args.model.name} {version}: accuracy {results['accuracy']:.2%}",
    )
    print(f"\nconfusion matrix written to {args.out}")
    if args.rejection:
        figures = measure_rejection(args, x, y)
        print_rejection(figures)
        plot_reliability(figures, args.reliability)
        print(f"reliability diagram written to {args.reliability}")
        if args.card:
            card = json.loads(args.card.read_text()) if args.card.is_file() else {}
            card["evaluation"] = figures
            write_card(args.card, card)
            print(f"figures written to {args.card}")


"""
## Is it one digit?
"""


def measure_rejection(args, x, y):
    """The figures of is_digit, measured through the service's preprocessing and predictor."""
    from flaskService.digits import preprocess
    from flaskService.config import SETTINGS
    from flaskService.digits.errors import ImageError
    from flaskService.digits.predictor import Predictor
    from modelTrain.evalsets import nondigits
    from modelTrain.evalsets.renders import STYLES, render

    predictor = Predictor.from_path(args.model)
    if predictor.outputs == len(DIGITS):
        raise InputError(f"{args.model} has no 'not a digit' outputs: --rejection needs a 12-output model")
    threshold = args.min_digit_score if args.min_digit_score is not None else SETTINGS["MIN_DIGIT_SCORE"][0]
    rng = np.random.default_rng(2026)
    test_digits = (x[..., 0] * 255).round().astype(np.uint8)
    chosen = rng.choice(len(y), size=min(RENDERED_DIGITS, len(y)), replace=False)
    renders = [render(test_digits[i], STYLES[k % len(STYLES)], rng) for k, i in enumerate(chosen)]

    def classify_bytes(images):
        """As /predict answers each image; one it answers 422 (no ink found) is never a digit."""
        arrays = []
        for data in images:
            try:
                arrays.append(preprocess.preprocess_image(data))
            except ImageError as error:
                arrays.append(None)
                assert error.status == 422, error.message
        found = [a for a in arrays if a is not None]
        answers = predictor.classify(np.stack(found), threshold) if found else None
        return Unreadable.merge(answers, [a is not None for a in arrays])

    real = {"mnist_test": (predictor.classify(preprocess.centre_batch(x[..., 0]), threshold), y),
            "rendered": (classify_bytes(renders), y[chosen])}
    others = {kind: classify_bytes(images)
              for kind, images in nondigits.evaluation_set(test_digits, args.rejection).items()}
    figures = {"min_digit_score": threshold, "digits": {}, "not_one_digit": {}}
    for name, (answers, labels) in real.items():
        right = answers.digits == labels
        figures["digits"][name] = {
            "images": int(len(labels)),
            "accuracy": float(right.mean()),
            "accepted": float(answers.is_digit.mean()),
            "accuracy_among_accepted": float(right[answers.is_digit].mean()),
            "ece": expected_calibration_error(answers.confidence, right),
            "reliability": reliability(answers.confidence, right),
        }
    for kind, answers in others.items():
        reasons = [r for r in answers.reasons if r]
        figures["not_one_digit"][kind] = {
            "images": len(answers.reasons),
            "flagged": float(1 - answers.is_digit.mean()),
            "reasons": {reason: reasons.count(reason) for reason in sorted(set(reasons))},
        }
    flagged = [f["flagged"] for kind, f in figures["not_one_digit"].items() if kind != "several_digits"]
    figures["not_a_digit_flagged"] = float(np.mean(flagged))
    real_scores = np.concatenate([answers.digit_score for answers, _ in real.values()])
    other_scores = np.concatenate([answers.digit_score for answers in others.values()])
    figures["auroc"] = auroc(real_scores, other_scores)
    return figures


class Unreadable:
    """A Classification's arrays with the images the service could not read (422) put back in
    their places: no digit (-1), confidence and digit score 0, not a digit, reason "blank"."""

    @staticmethod
    def merge(answers, readable):
        readable = np.array(readable)
        merged = Unreadable()
        merged.digits = np.full(len(readable), -1)
        merged.confidence = np.zeros(len(readable))
        merged.digit_score = np.zeros(len(readable))
        merged.is_digit = np.zeros(len(readable), bool)
        merged.reasons = ["blank"] * len(readable)
        if answers is not None:
            for name in ("digits", "confidence", "digit_score", "is_digit"):
                getattr(merged, name)[readable] = getattr(answers, name)
            for index, reason in zip(np.flatnonzero(readable), answers.reasons):
                merged.reasons[index] = reason
        return merged


def expected_calibration_error(confidence, right, bins=CALIBRATION_BINS):
    """Σ over equal-width confidence bins of (share of images in the bin) x |accuracy - mean confidence|."""
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - confidence[inside].mean())
    return float(total)


def reliability(confidence, right, bins=CALIBRATION_BINS):
    """Per bin with images in it: [mean confidence, accuracy, images]."""
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    return [[float(confidence[index == b].mean()), float(right[index == b].mean()), int((index == b).sum())]
            for b in range(bins) if (index == b).any()]


def auroc(positive, negative):
    """Probability that a random positive scores above a random negative (ties count half): the
    Mann-Whitney U statistic from average ranks."""
    values, inverse, counts = np.unique(np.concatenate([positive, negative]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]
    n, m = len(positive), len(negative)
    return float((ranks[:n].sum() - n * (n + 1) / 2) / (n * m))


def print_rejection(figures):
    print(f"\nis_digit at min_digit_score {figures['min_digit_score']}")
    print("real digits      images  accuracy  accepted  acc. among accepted  ECE")
    for name, f in figures["digits"].items():
        print(f"{name:<15} {f['images']:>7}  {f['accuracy']:>8.2%}  {f['accepted']:>8.2%}  "
              f"{f['accuracy_among_accepted']:>19.2%}  {f['ece']:.2%}")
    print("not one digit    images  flagged  reasons")
    for kind, f in figures["not_one_digit"].items():
        reasons = ", ".join(f"{reason} {count}" for reason, count in f["reasons"].items())
        print(f"{kind:<15} {f['images']:>7}  {f['flagged']:>7.2%}  {reasons}")
    print(f"non-digits flagged (mean over kinds) {figures['not_a_digit_flagged']:.2%}   AUROC {figures['auroc']:.4f}")


def plot_reliability(figures, path):
    """Accuracy against confidence per bin, for the test digits and the re-rendered ones."""
    from modelTrain.card import plt

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, f in figures["digits"].items():
        confidence, accuracy, _ = zip(*f["reliability"])
        axis.plot(confidence, accuracy, marker="o", label=f"{name} (ECE {f['ece']:.2%})")
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_title("reliability")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
