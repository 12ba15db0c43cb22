"""
Title: Evaluate the number reader (POST /read) against Tesseract
Description: Whole-number exact match per kind, length and style, per-digit accuracy and CPU time
of the number reader (flaskService.digits.sequence with the number model) on handwritten numbers composed
from MNIST *test* digits (modelTrain/evalsets/numbers.py), and on printed numbers set in fonts
training never uses, with Tesseract OCR reading the same images in the same run. Writes the card
modelTrain/cards/number.json.

Run from the repository root:

    python modelTrain/evaluate_numbers.py flaskService/number_model.h5 --data ../shared/data/mnist.npz

`--split heldout` composes the numbers from the MNIST training digits that number_model.py held
out of its training lines (with `--seed`, its seed): the set to tune on, so the test split stays
unseen. `--split train` takes all training digits, most of which training saw. Tesseract is Debian's
`tesseract-ocr` (5.x), called as a user would: a digits whitelist and `--psm 7` (one text line).
"""

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# Run as `python modelTrain/evaluate_numbers.py`: the repository root holds the service (one reader,
# one preprocessing) and modelTrain/evalsets/ (the evaluation sets, which training never imports).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flaskService.digits import preprocess, sequence  # noqa: E402
from flaskService.digits.errors import ImageError  # noqa: E402
from flaskService.config import SETTINGS  # noqa: E402
from flaskService.digits.predictor import Predictor  # noqa: E402
from modelTrain import data as training_data  # noqa: E402
from modelTrain.evalsets.numbers import KINDS, evaluation_set, printed_set  # noqa: E402

CARD = REPO_ROOT / "modelTrain" / "cards" / "number.json"
TESSERACT = ["tesseract", "stdin", "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=0123456789"]
TIMING_LENGTH = 4  # CPU time is reported for numbers of this many digits
CONFIDENCE_LEVELS = (0.5, 0.9, 0.99)  # numbers' confidences a caller might take a reading at without a look
TARGETS = {"separate": 0.98, "touching": 0.95, "overlapping": 0.95, "per_digit": 0.995, "ms_per_4_digits": 5.0}


def read_all(numbers, read_number):
    """`read_number`'s text and confidence for each number (an error's confidence is 0), and CPU
    seconds per number (decoding included)."""
    texts, confidences, seconds = [], [], []
    for number in numbers:
        started = time.process_time()
        try:
            reading = read_number(preprocess.decode_image(number.data))
            texts.append(reading.text)
            confidences.append(reading.confidence)
        except ImageError as e:
            texts.append(f"<{e.code}>")
            confidences.append(0.0)
        seconds.append(time.process_time() - started)
    return texts, confidences, seconds


def tesseract(data):
    done = subprocess.run(TESSERACT, input=data, capture_output=True, timeout=60)
    return "".join(ch for ch in done.stdout.decode(errors="replace") if ch.isdigit())


def tesseract_version():
    done = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0]


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def score(numbers, texts):
    """Exact match overall, per kind, per length and per style; per-digit accuracy, counted as
    1 - (edit distance / true length) so a missed or extra digit costs one digit, not the rest."""
    by = {"kind": defaultdict(list), "length": defaultdict(list), "style": defaultdict(list)}
    digits_right = digits_total = 0
    for number, text in zip(numbers, texts):
        exact = text == number.text
        by["kind"][number.kind].append(exact)
        by["length"][str(len(number.text))].append(exact)
        by["style"][number.style].append(exact)
        digits_total += len(number.text)
        digits_right += max(0, len(number.text) - edit_distance(number.text, text))
    exact = [t == n.text for n, t in zip(numbers, texts)]
    return {
        "exact_match": round(float(np.mean(exact)), 4),
        "per_digit": round(digits_right / digits_total, 4),
        **{f"per_{name}": {key: round(float(np.mean(values)), 4) for key, values in sorted(table.items())}
           for name, table in by.items()},
    }


def by_confidence(numbers, texts, confidences):
    """The numbers' confidence against their being read exactly: its mean beside the exact share
    (the two agree when it is calibrated) and, for a caller who takes a reading only at or above
    each of CONFIDENCE_LEVELS and sends the rest to a person, the share taken and how many of those
    are exact."""
    exact = np.array([text == number.text for number, text in zip(numbers, texts)])
    confidences = np.asarray(confidences, np.float64)
    taken = {}
    for level in CONFIDENCE_LEVELS:
        kept = confidences >= level
        taken[f"{level:g}"] = {"share": round(float(kept.mean()), 4),
                               "exact": round(float(exact[kept].mean()), 4) if kept.any() else None}
    return {"mean": round(float(confidences.mean()), 4), "exact": round(float(exact.mean()), 4),
            "at_least": taken}


def error_kinds(numbers, texts):
    """How the reader's wrong answers went wrong, per kind of number: a digit misread (right count),
    digits merged (too few), split (too many), or nothing read."""
    counts = defaultdict(lambda: defaultdict(int))
    for number, text in zip(numbers, texts):
        if text == number.text:
            continue
        if text.startswith("<"):
            error = "no_answer"
        elif len(text) == len(number.text):
            error = "misread"
        else:
            error = "too_few" if len(text) < len(number.text) else "too_many"
        counts[number.kind][error] += 1
    return {kind: dict(counts[kind]) for kind in KINDS if kind in counts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("number_model", type=Path, help="the number model (flaskService/number_model.h5)")
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist.npz")
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--printed", type=int, default=300, help="printed numbers, beside the handwritten ones")
    parser.add_argument("--split", choices=("test", "heldout", "train"), default="test")
    parser.add_argument("--seed", type=int, default=1, help="the number model's training seed (--split heldout)")
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--card", type=Path, default=CARD, help="where to write the card ('-' for none)")
    parser.add_argument("--errors", type=int, default=15, help="wrong readings to print")
    args = parser.parse_args(argv)

    # The set: modelTrain/evalsets/numbers.py composes from the split it is given; the test split by default.
    source = "test" if args.split == "test" else "train"
    with np.load(args.data) as data:
        x, y = data[f"x_{source}"], data[f"y_{source}"]
    if args.split == "heldout":
        _, held_out = training_data.split_digits(y, training_data.HELD_OUT_FRACTION, args.seed)
        x, y = x[held_out], y[held_out]
    mnist = {"x_test": x, "y_test": y}
    numbers = evaluation_set(mnist, args.count)
    printed = printed_set(args.printed)
    number_predictor = Predictor.from_path(args.number_model, contract=sequence.NUMBERS)
    number_predictor.warm_up()
    min_digit_score = SETTINGS["MIN_DIGIT_SCORE"][0]
    readers = {"sequence": lambda image: sequence.read_number(image, number_predictor.predict, min_digit_score)}

    # Read: each reader one number at a time, as the service does; Tesseract on two threads (it is
    # a separate process, and by far the slowest).
    results, all_texts = {}, {}
    for name, read_number in readers.items():
        texts, confidences, seconds = read_all(numbers, read_number)
        all_texts[name] = texts
        results[name] = score(numbers, texts)
        results[name]["errors"] = error_kinds(numbers, texts)
        results[name]["confidence"] = by_confidence(numbers, texts, confidences)
        results[name]["printed"] = score(printed, read_all(printed, read_number)[0])["exact_match"]
        timed = [s for n, s in zip(numbers, seconds) if len(n.text) == TIMING_LENGTH]
        results[name]["cpu_ms_per_4_digit_number"] = {"median": round(1000 * float(np.median(timed)), 2),
                                                      "p90": round(1000 * float(np.percentile(timed, 90)), 2)}
    if not args.no_tesseract:
        with ThreadPoolExecutor(2) as pool:
            tesseract_texts = list(pool.map(tesseract, (n.data for n in numbers)))
            tesseract_printed = list(pool.map(tesseract, (n.data for n in printed)))
        results["tesseract"] = {"version": tesseract_version(), "command": " ".join(TESSERACT),
                                **score(numbers, tesseract_texts),
                                "printed": score(printed, tesseract_printed)["exact_match"]}

    print(f"{len(numbers)} numbers from MNIST {args.split} digits; number model {args.number_model} "
          f"({number_predictor.version})")
    print(f"{'':>12} " + " ".join(f"{name:>10}" for name in results))
    rows = [("all", "exact_match", None), ("per digit", "per_digit", None)]
    rows += [(kind, "per_kind", kind) for kind in KINDS] + [("printed", "printed", None)]
    rows += [(f"{length} digits", "per_length", length) for length in sorted(results["sequence"]["per_length"], key=int)]
    rows += [(style, "per_style", style) for style in sorted(results["sequence"]["per_style"])]
    for label, key, sub in rows:
        values = [r[key] if sub is None else r[key][sub] for r in results.values()]
        print(f"{label:>12} " + " ".join(f"{v:>10.2%}" for v in values))
    for name in readers:
        print(f"{name}: CPU ms per {TIMING_LENGTH}-digit number {results[name]['cpu_ms_per_4_digit_number']}; "
              f"wrong readings per kind {results[name]['errors']}")
        confidence = results[name]["confidence"]
        print(f"{name}: mean confidence {confidence['mean']:.2%} for {confidence['exact']:.2%} exact; " + "; ".join(
            f"at {level} or more {taken['share']:.2%} of numbers"
            + (f", {taken['exact']:.2%} of them exact" if taken["exact"] is not None else "")
            for level, taken in confidence["at_least"].items()))
        wrong = [(n, t) for n, t in zip(numbers, all_texts[name]) if t != n.text]
        for number, text in wrong[:args.errors]:
            print(f"  {number.kind:>11} {number.style:>19} {number.text:>9} -> {text}")

    if str(args.card) != "-":
        card = {
            "name": "number-readers",
            "readers": {"sequence": "the number model (CNN + CTC) on the whole line, greedy decoding; unsure readings read again from the strip shrunk"},
            "number_model": {"path": str(args.number_model), "version": number_predictor.version,
                             "sha256": number_predictor.sha256},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "data": {"source": str(args.data), "split": args.split, **({"seed": args.seed} if args.split == "heldout" else {}),
                     "numbers": len(numbers), "printed_numbers": len(printed),
                     "generator": "modelTrain/evalsets/numbers.py", "kinds": list(KINDS)},
            "targets": TARGETS,
            "command": "python modelTrain/evaluate_numbers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            **results,
        }
        args.card.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote {args.card}")


if __name__ == "__main__":
    main()
