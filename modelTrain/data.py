"""The data the models train on, and the digits evaluate.py tests the digit model on.

Digits (train.py, evaluate.py): MNIST or a folder of digit images as the digit model's input,
float32 (n, 28, 28, 1) in [0, 1], white ink on black; folder images go through the service's own
preprocess_image. Also the test split carved out of a folder that has none, the validation split, the
made-up images of the two extra classes ("not a digit", "several digits") that go beside the digits,
and the augmenter that distorts training batches.

Lines of digits (number_model.py): lines of handwriting composed on the fly from MNIST *training*
digits, painted the ways people send them, and read back through the service's own find_ink (line
removal included) and sequence.line_input, so training sees what serving sees. The evaluation set
(modelTrain/evalsets/numbers.py and renders.py) is built from the *test* digits by other code, with
its own layouts and styles: nothing here is shared with it.
"""
import functools
import io
import zipfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from flaskService.digits import preprocess, sequence
from flaskService.digits.errors import ImageError
from flaskService.digits.model import INPUT_SHAPE, NUM_CLASSES
from modelTrain import synthetic
from modelTrain.cli import InputError

"""
## Digits: the digit model's data (train.py, evaluate.py)
"""

DIGITS = [str(digit) for digit in range(NUM_CLASSES)]

# Share of each digit's images set aside for testing when a folder has no test split of its own.
FOLDER_TEST_FRACTION = 0.2


def load_npz(path):
    """Train and test arrays from a .npz in Keras's mnist layout."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz]
            if missing:
                raise InputError(
                    f"{path}: missing {', '.join(missing)} (expected Keras's mnist.npz layout)"
                )
            arrays = {key: npz[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),) or not len(x):
            raise InputError(
                f"{path}: x_{split} {x.shape} and y_{split} {y.shape} are not n 28x28 images "
                "with n labels"
            )
        if x.dtype != np.uint8:
            raise InputError(f"{path}: x_{split} is {x.dtype}; expected uint8 pixels 0..255")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= NUM_CLASSES:
            raise InputError(f"{path}: y_{split} holds labels other than the integers 0..9")
    return (
        (as_model_input(arrays["x_train"] / 255), arrays["y_train"].astype("int64")),
        (as_model_input(arrays["x_test"] / 255), arrays["y_test"].astype("int64")),
    )


def load_folder(path):
    """All images of a folder with one sub-folder per digit, preprocessed like served images."""
    missing = [digit for digit in DIGITS if not (path / digit).is_dir()]
    if len(missing) == NUM_CLASSES:
        raise InputError(f"{path}: no digit sub-folders 0..9 (nor train/ and test/ holding them)")
    if missing:
        raise InputError(f"{path}: no sub-folder for digit(s) {', '.join(missing)}")
    files = {
        digit: sorted(
            f for f in (path / digit).iterdir() if f.is_file() and not f.name.startswith(".")
        )
        for digit in DIGITS
    }
    empty = [digit for digit in DIGITS if not files[digit]]
    if empty:
        raise InputError(f"{path}: no images for digit(s) {', '.join(empty)}")

    images, labels = [], []
    for digit in DIGITS:
        for file in files[digit]:
            try:
                images.append(preprocess.preprocess_image(file.read_bytes()))
            except (ImageError, OSError) as error:
                raise InputError(f"{file}: {error}") from None
            labels.append(int(digit))
    return as_model_input(np.stack(images)), np.array(labels, dtype="int64")


def as_model_input(images):
    """(n, 28, 28) images in [0, 1] as the model's (n, 28, 28, 1) float32 input."""
    return images.astype("float32")[..., np.newaxis]


def carve_test_split(x, y, fraction, seed):
    """Stratified split: `fraction` of each digit's images, at random, become the test set."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for digit in range(NUM_CLASSES):
        indices = np.flatnonzero(y == digit)
        test[rng.permutation(indices)[: round(len(indices) * fraction)]] = True
    return (x[~test], y[~test]), (x[test], y[test])


def download_mnist():
    """Train and test arrays of the full MNIST, downloaded (and cached) by Keras."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    # keras.utils.get_file reports every network failure as a bare Exception.
    except Exception as error:
        raise InputError(f"cannot download MNIST ({error}); pass --data PATH/mnist.npz") from None
    return (
        (as_model_input(x_train / 255), y_train.astype("int64")),
        (as_model_input(x_test / 255), y_test.astype("int64")),
    )


def load_data(source, seed):
    """(x_train, y_train), (x_test, y_test) and a description of the data for the card."""
    if source is None:
        train, test = download_mnist()
        description = {"source": "keras.datasets.mnist", "format": "npz", "test_split": "provided"}
    elif source.is_dir():
        if (source / "train").is_dir() and (source / "test").is_dir():
            train, test = load_folder(source / "train"), load_folder(source / "test")
            test_split = "provided (test/)"
        else:
            train, test = carve_test_split(*load_folder(source), FOLDER_TEST_FRACTION, seed)
            test_split = (
                f"carved out of the folder: {FOLDER_TEST_FRACTION:.0%} of each digit's images, "
                f"seed {seed}"
            )
        # Files are read digit by digit; shuffle so that --limit and validation see every digit.
        order = np.random.default_rng(seed).permutation(len(train[1]))
        train = train[0][order], train[1][order]
        description = {"source": str(source), "format": "folder", "test_split": test_split}
    elif source.is_file():
        train, test = load_npz(source)
        description = {"source": str(source), "format": "npz", "test_split": "provided"}
    else:
        raise InputError(f"{source}: no such file or directory")
    return train, test, description


def require_enough_images(y_train, y_test, source):
    """At least ten training images and one test image, or an InputError saying what is short."""
    if len(y_train) < 10:
        raise InputError(f"only {len(y_train)} training images; at least 10 are needed")
    if not len(y_test):
        raise InputError(f"{source}: no test images; give each digit at least 3 images")


def split_validation(x, y, fraction, seed):
    """Random (train, validation) split of the training images (split_digits: the number model, with
    the same fraction and seed, holds out the same digits)."""
    train, validation = split_digits(y, fraction, seed)
    return (x[train], y[train]), (x[validation], y[validation])


"""
### Beside the digits: what is not one digit (train.py)

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


def rejection_class_counts(train_labels, validation_labels):
    """For the card: how many made-up images of each extra class the two splits hold."""
    def count(labels, label):
        return int((labels == label).sum())

    return {"not_a_digit": {"train": count(train_labels, synthetic.NOT_A_DIGIT),
                            "validation": count(validation_labels, synthetic.NOT_A_DIGIT),
                            "kinds": synthetic.NON_DIGIT_KINDS},
            "several_digits": {"train": count(train_labels, synthetic.SEVERAL_DIGITS),
                               "validation": count(validation_labels, synthetic.SEVERAL_DIGITS)}}


"""
### Augmentation (train.py)

Random distortions of the training batches, in the input pipeline: the model itself stays pure
inference.
"""

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

# What the card records of the augmentation (card.py's training_record puts it in model.json).
AUGMENTATION = {
    "rotation_degrees": ROTATION_DEGREES,
    "zoom_fraction": ZOOM_FRACTION,
    "shift_pixels": SHIFT_PIXELS,
    "stroke_variation": STROKE_VARIATION,
    "line_remnant_share": LINE_REMNANT_SHARE,
    "stroke_gap_share": STROKE_GAP_SHARE,
    "low_resolution_share": LOW_RESOLUTION_SHARE,
    "low_resolution_box_pixels": list(LOW_RESOLUTION_BOX),
}


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
## Lines of digits: the number model's data (number_model.py)
"""

MAX_DIGITS = 12
# Lengths 1-8 (meter values, postcodes, amounts) twice as often as each of 9-12, whose lines the strip
# squeezes to fit its width.
LENGTH_WEIGHTS = np.array([1.0] * 8 + [0.5] * (MAX_DIGITS - 8))
# How neighbours sit: apart (a gap), touching (ink meets in some row), crossing (pushed further).
GAPS = {"separate": 0.4, "touching": 0.3, "overlapping": 0.3}
SEPARATE_GAP = (1, 14)  # px at MNIST scale (a digit is ~20 px tall)
WIDE_GAP_SHARE = 0.1  # ... and this share of gaps much wider, up to a digit's height
OVERLAP = (1, 0.25)  # px beyond touching: 1 to this share of the narrower neighbour's width
SIZE_JITTER = 0.25  # each digit scaled by 1 +- up to this ...
# Each digit's own shape, so that ~22,000 training digits look like more: narrower or wider, and
# turned a little (degrees).
WIDTH_JITTER = 0.2
ROTATION = 8
BASELINE_JITTER = 3  # ... and moved up or down by up to this many px
# How much a line's digits vary in size, turn and baseline is drawn per line, from none to the most above:
# with none, every digit fills the strip's height, as a number written along a ruler does.
SLANT = (-0.3, 0.4)  # shear of the whole line (x moves by slant * height)
SLANT_SHARE = 0.35
STROKE_SHARE = 0.3  # share of lines drawn with a thicker or thinner pen
# Marks that are no digit, beside or between the digits, read as nothing (CTC blanks): a dash, a
# smudge, a letter or symbol, a doodle. Some lines hold only marks, and their label is empty.
MARKED_SHARE = 0.2
ONLY_MARKS_SHARE = 0.04
MARK_KINDS = {"dash": 0.25, "disc": 0.05, "dot": 0.15, "glyph": 0.2, "shapes": 0.1, "figures": 0.1, "blob": 0.05, "hatching": 0.05,
              "noise": 0.05}
# Lines whose digits are printed, not handwritten (a meter's counter, an amount on a receipt, a
# form's printed number): set in one training font, as 28x28 digits that then go where MNIST's would.
PRINTED_SHARE = 0.1
PRINTED_HEIGHT = 20  # px in the 28x28 field, as tall as an MNIST digit
PRINTED_GAPS = {"separate": 0.8, "touching": 0.2, "overlapping": 0.0}  # type sits apart, or just touches when bold
STYLED_SHARE = 0.6  # share of lines painted as an upload and read back with find_ink; the rest stay clean
# A painted line whose inked columns, read back, match the clean line's less than this (intersection
# over union) lost a digit to line removal (a 1 beside a box's edge): its label would be wrong.
SAME_COLUMNS = 0.85

PENS = ((15, 15, 20), (25, 35, 150), (150, 20, 25), (30, 100, 45), (70, 70, 75))
PAPERS = ((250, 250, 250), (240, 236, 225), (225, 228, 232), (255, 253, 240))
RULES = ((140, 170, 220), (170, 170, 170), (220, 120, 120), (120, 120, 120))


# Share of the MNIST training digits held out from the number model's training lines: they compose its
# validation lines, and the numbers `evaluate_numbers.py --split heldout` tunes on.
HELD_OUT_FRACTION = 0.1


def split_digits(y, validation_fraction, seed):
    """Indices of the MNIST training digits for training and for validation, disjoint."""
    order = np.random.default_rng(seed).permutation(len(y))
    cut = max(1, round(len(y) * validation_fraction))
    return order[cut:], order[:cut]


def crop(digit):
    """A 28x28 uint8 digit -> float32 ink in [0, 1] cut to its box."""
    return crop_ink(digit.astype(np.float32) / 255)


def crop_ink(ink):
    """Float32 ink cut to the box of its pixels above 0.1."""
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _resized(ink, factor):
    size = (max(1, round(ink.shape[1] * factor)), max(1, round(ink.shape[0] * factor)))
    return np.asarray(Image.fromarray(ink, "F").resize(size, Image.Resampling.BILINEAR))


def _reshaped(ink, rng, wander):
    """A digit's ink scaled by 1 +- wander * SIZE_JITTER, its width by a further 1 +- WIDTH_JITTER,
    and turned by up to wander * ROTATION degrees; cut to its box."""
    factor = 1 + wander * rng.uniform(-SIZE_JITTER, SIZE_JITTER)
    size = (max(1, round(ink.shape[1] * factor * (1 + rng.uniform(-WIDTH_JITTER, WIDTH_JITTER)))),
            max(1, round(ink.shape[0] * factor)))
    image = Image.fromarray(ink, "F").resize(size, Image.Resampling.BILINEAR)
    turned = np.asarray(image.rotate(wander * rng.uniform(-ROTATION, ROTATION), Image.Resampling.BILINEAR, expand=True))
    return np.clip(crop_ink(turned), 0, 1)


def _touching_left(canvas, piece, top):
    """The leftmost column where `piece` can start at row `top` without its ink (> 0.3) overlapping
    the canvas's in any row: where its ink touches its left neighbour's."""
    reach = 0
    for r in range(piece.shape[0]):
        mine = np.flatnonzero(piece[r] > 0.3)
        theirs = np.flatnonzero(canvas[top + r] > 0.3)
        if len(mine) and len(theirs):
            reach = max(reach, theirs[-1] + 1 - mine[0])
    return reach


@functools.cache
def _fonts():
    return synthetic.training_fonts()


def _disc(rng):
    """A filled disc or oval: a blot, a stamp, a full stop drawn big. A 0 has a hole."""
    image = Image.new("L", (64, 64), 0)
    width, height = rng.uniform(24, 60, 2)
    ImageDraw.Draw(image).ellipse((32 - width / 2, 32 - height / 2, 32 + width / 2, 32 + height / 2), fill=255)
    return image


def printed_digits(labels, rng):
    """The digits `labels` set in one training font (sometimes bold), each as a 28x28 uint8 image
    like an MNIST digit's: PRINTED_HEIGHT px tall, centred."""
    fonts = _fonts()
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), 64)
    bold = int(rng.integers(0, 3))
    images = []
    for label in labels:
        image = Image.new("L", (128, 128), 0)
        ImageDraw.Draw(image).text((64, 64), str(label), fill=255, font=font, anchor="mm", stroke_width=bold, stroke_fill=255)
        ink = crop_ink(np.asarray(image, np.float32) / 255)
        factor = PRINTED_HEIGHT / ink.shape[0]
        if ink.shape[1] * factor > INPUT_SHAPE[1] - 2:  # a wide digit in a wide font: as wide as the field allows
            factor = (INPUT_SHAPE[1] - 2) / ink.shape[1]
        ink = np.clip(_resized(ink, factor), 0, 1)
        field = np.zeros(INPUT_SHAPE[:2], np.float32)
        top, left = (INPUT_SHAPE[0] - ink.shape[0]) // 2, (INPUT_SHAPE[1] - ink.shape[1]) // 2
        field[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
        images.append(np.round(field * 255).astype(np.uint8))
    return images


def mark(rng):
    """Ink of a mark that is no digit, cut to its box, about a digit's size (a dash or dot smaller)."""
    kind = rng.choice(list(MARK_KINDS), p=list(MARK_KINDS.values()))
    if kind in ("dash", "dot"):
        length = rng.uniform(6, 16) if kind == "dash" else rng.uniform(2, 5)
        thick = rng.uniform(1.5, 3.5) if kind == "dash" else length
        ink = np.zeros((int(thick) + 2, int(length) + 2), np.float32)
        ink[1:-1, 1:-1] = 1.0
        return ink
    makers = {"disc": lambda: _disc(rng), "glyph": lambda: synthetic.glyph(rng, _fonts()), "shapes": lambda: synthetic.shapes(rng),
              "figures": lambda: synthetic.figures(rng), "blob": lambda: synthetic.blob(rng),
              "hatching": lambda: synthetic.hatching(rng), "noise": lambda: synthetic.noise(rng)}
    for _ in range(10):
        ink = np.asarray(makers[kind](), np.float32) / 255
        if (ink > 0.3).any():
            ink = crop_ink(ink)
            return np.clip(_resized(ink, rng.uniform(12, 24) / max(ink.shape)), 0, 1)
    return np.ones((3, 10), np.float32)


def compose(digits, rng, marks=(), gaps=GAPS):
    """28x28 uint8 MNIST digits -> one float32 line of ink (white on black, [0, 1]) holding them left
    to right, spaced (`gaps`: how often neighbours sit apart, touch or cross), sized and slanted at
    random; `marks` (ink) go at random places among them."""
    wander = rng.uniform(0, 1)
    pieces = [_reshaped(crop(d), rng, wander) for d in digits]
    is_mark = [False] * len(pieces)
    for ink in marks:  # apart from its neighbours: a mark touching a digit could be part of it
        at = int(rng.integers(0, len(pieces) + 1))
        pieces.insert(at, ink)
        is_mark.insert(at, True)
    baseline = round(wander * BASELINE_JITTER)
    height = max(p.shape[0] for p in pieces) + 2 * baseline + 4
    width = sum(p.shape[1] for p in pieces) + len(pieces) * (SEPARATE_GAP[1] + 28) + 8
    canvas = np.zeros((height, width), np.float32)
    left = 2
    for index, piece in enumerate(pieces):
        top = int(np.clip((height - piece.shape[0]) // 2 + rng.integers(-baseline, baseline + 1),
                          0, height - piece.shape[0]))
        if index:
            apart = is_mark[index] or is_mark[index - 1]
            kind = "separate" if apart else rng.choice(list(gaps), p=list(gaps.values()))
            right_edge = int(np.flatnonzero(canvas.max(axis=0) > 0)[-1]) + 1
            if kind == "separate":
                wide = rng.random() < WIDE_GAP_SHARE
                left = right_edge + int(rng.integers(*(SEPARATE_GAP if not wide else (SEPARATE_GAP[1], 28))))
            else:
                left = _touching_left(canvas, piece, top)
                if kind == "overlapping":
                    narrower = min(piece.shape[1], pieces[index - 1].shape[1])
                    left -= int(rng.integers(OVERLAP[0], max(2, round(narrower * OVERLAP[1]) + 1)))
                left = max(left, 0)
        region = canvas[top:top + piece.shape[0], left:left + piece.shape[1]]
        np.maximum(region, piece[:, :region.shape[1]], out=region)
    cols = np.flatnonzero(canvas.max(axis=0) > 0)
    line = canvas[:, :cols[-1] + 3]
    if rng.random() < SLANT_SHARE:
        line = _sheared(line, rng.uniform(*SLANT))
    if rng.random() < STROKE_SHARE:
        line = _pen(line, rng)
    return line


def _sheared(line, shear):
    height, width = line.shape
    extra = int(np.ceil(abs(shear) * height))
    wide = np.zeros((height, width + extra), np.float32)
    wide[:, extra if shear < 0 else 0:][:, :width] = line
    # x' = x - shear * (y - height): the bottom stays, the top leans right for shear > 0.
    matrix = (1, shear, -shear * height, 0, 1, 0)
    return np.asarray(Image.fromarray(wide, "F").transform(wide.shape[::-1], Image.Transform.AFFINE, matrix,
                                                           Image.Resampling.BILINEAR))


def _pen(line, rng):
    """A thicker (3x3 maximum) or thinner (3x3 minimum) pen, blended in by a random share."""
    image = Image.fromarray(line, "F")
    other = image.filter(ImageFilter.MaxFilter(3) if rng.random() < 0.6 else ImageFilter.MinFilter(3))
    share = rng.uniform(0.3, 1)
    return (1 - share) * line + share * np.asarray(other)


def paint(line, rng):
    """A line of ink -> encoded image bytes as an upload: enlarged onto a page of paper, a photo, a
    transparent canvas or white-on-black, in some pen, sometimes on ruled or boxed paper."""
    factor = rng.uniform(1.5, 4.0)
    size = (max(1, round(line.shape[1] * factor)), max(1, round(line.shape[0] * factor)))
    ink = Image.fromarray(np.round(np.clip(line, 0, 1) * 255).astype(np.uint8), "L").resize(
        size, Image.Resampling.BICUBIC)
    pad_x, pad_y = int(rng.uniform(0.05, 0.3) * size[1]) + 2, int(rng.uniform(0.1, 0.5) * size[1]) + 2
    mask = Image.new("L", (size[0] + 2 * pad_x, size[1] + 2 * pad_y), 0)
    mask.paste(ink, (pad_x, pad_y))
    style = rng.choice(("paper", "photo", "canvas", "dark", "ruled", "boxed"), p=(0.25, 0.2, 0.15, 0.1, 0.15, 0.15))
    pen = PENS[rng.integers(len(PENS))]
    if style == "canvas":
        rgba = Image.new("RGBA", mask.size, pen + (0,))
        rgba.putalpha(mask)
        return _encoded(rgba, "PNG")
    paper = (0, 0, 0) if style == "dark" else PAPERS[rng.integers(len(PAPERS))]
    if style == "dark":
        pen = (255, 255, 255)
    page = Image.new("RGB", mask.size, paper)
    if style in ("ruled", "boxed"):
        _rules(page, (pad_x, pad_y, pad_x + size[0], pad_y + size[1]), style, size[1] / line.shape[0], rng)
    page.paste(Image.new("RGB", mask.size, pen), (0, 0), mask)
    if style == "photo":
        pixels = np.asarray(page, np.float32)
        h, w = pixels.shape[:2]
        light = 1 - rng.uniform(0, 0.3) * np.linspace(0, 1, w)[None, :] - rng.uniform(0, 0.2) * np.linspace(0, 1, h)[:, None]
        pixels = pixels * light[..., None] + rng.normal(0, rng.uniform(2, 8), pixels.shape)
        page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").filter(
            ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return _encoded(page, "JPEG" if style in ("photo", "dark") or rng.random() < 0.3 else "PNG")


def _rules(page, writing, style, scale, rng):
    """Ruled lines under the writing, or a row of boxes around it (one per ~digit width)."""
    draw = ImageDraw.Draw(page)
    colour = RULES[rng.integers(len(RULES))]
    thick = max(1, round(scale * rng.uniform(0.3, 0.8)))
    left, top, right, bottom = writing
    if style == "ruled":
        spacing = (bottom - top) * rng.uniform(1.1, 1.5)
        base = bottom + rng.uniform(-0.1, 0.15) * (bottom - top)
        y = base
        while y > 0:
            draw.line((0, y, page.width, y), fill=colour, width=thick)
            y -= spacing
        return
    margin = rng.uniform(0.05, 0.3) * (bottom - top)
    y0, y1 = top - margin, bottom + margin
    draw.rectangle((max(0, left - margin), max(0, y0), min(page.width - 1, right + margin), min(page.height - 1, y1)),
                   outline=colour, width=thick)
    cell = (y1 - y0) * rng.uniform(0.7, 1.0)
    x = left - margin + cell
    while x < right + margin - cell / 3:
        draw.line((x, y0, x, y1 if rng.random() < 0.5 else y0 + (y1 - y0) * 0.3), fill=colour, width=thick)
        x += cell


def _encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 85} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def number_line(x, y, indices, rng):
    """One training example from digits `x[indices]` (and, in some, marks that are no digit): (the
    model's input as uint8, its label), or None when the service's preprocessing would find no
    writing in it."""
    marks = [mark(rng) for _ in range(int(rng.integers(1, 3)))] if rng.random() < MARKED_SHARE or not len(indices) else []
    printed = len(indices) and rng.random() < PRINTED_SHARE
    digits = printed_digits(y[indices], rng) if printed else [x[i] for i in indices]
    strip = sequence.line_input(compose(digits, rng, marks, PRINTED_GAPS if printed else GAPS))
    if strip is None or not (strip.input > sequence.THRESHOLD).any():  # a thinner pen left only faint ink
        return None
    if rng.random() < STYLED_SHARE:
        clean = strip.input.max(axis=0) > sequence.THRESHOLD
        writing = strip.input[:, :np.flatnonzero(clean)[-1] + 1 + sequence.MARGIN]
        try:
            strip = sequence.line_input(preprocess.find_ink(preprocess.decode_image(paint(writing, rng))).pixels)
        except ImageError:
            return None
        if strip is None:
            return None
        read = strip.input.max(axis=0) > sequence.THRESHOLD
        if (clean & read).sum() < SAME_COLUMNS * (clean | read).sum():
            return None
    return np.round(strip.input * 255).astype(np.uint8), [int(y[i]) for i in indices]


def number_lines(x, y, pool, count, seed):
    """`count` examples composed from the digits `pool` (indices into x, y): uint8 strips
    (count, LINE_HEIGHT, LINE_WIDTH) and labels (count, MAX_DIGITS) padded with -1."""
    rng = np.random.default_rng(seed)
    strips = np.zeros((count, sequence.LINE_HEIGHT, sequence.LINE_WIDTH), np.uint8)
    labels = np.full((count, MAX_DIGITS), -1, np.int32)
    made = tries = 0
    while made < count:
        tries += 1
        length = 0 if rng.random() < ONLY_MARKS_SHARE else 1 + rng.choice(MAX_DIGITS, p=LENGTH_WEIGHTS / LENGTH_WEIGHTS.sum())
        example = number_line(x, y, pool[rng.integers(0, len(pool), length)], rng)
        if example is None:
            continue
        strips[made], labels[made, :length] = example[0], example[1]
        made += 1
    number_lines.rejected = 1 - count / tries
    return strips, labels
