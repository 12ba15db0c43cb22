"""
Title: Evaluate a trained digit classifier
Description: Accuracy, a per-digit table and a confusion-matrix image for any model the service
can load, on MNIST's test split or on a folder of digit images.

Run from the repository root:

    python modelTrain/evaluate.py flaskService/model.h5 --data ../shared/data/mnist.npz

`--data` is read as by train.py: a mnist .npz (its test split is used), a folder with `train/` and
`test/` (its test split), or a folder of digit sub-folders 0..9 (all of its images). Without
`--data`, MNIST is downloaded.
"""

import sys
from pathlib import Path

# Run as `python modelTrain/evaluate.py`: put the repository root on the path so that the
# service's model loader and train.py's data loading are importable (one of each).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flaskService.model import ModelLoadError, check_model_file, load_model, sha256_of  # noqa: E402
from modelTrain.train import (  # noqa: E402
    DIGITS,
    ArgumentParser,
    InputError,
    download_mnist,
    evaluate,
    load_folder,
    load_npz,
    plot_confusion,
)


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
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {args.out}: {error.strerror}") from None
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


if __name__ == "__main__":
    sys.exit(main())
