"""Handwritten numbers composed from MNIST *test* digits, rendered the way people send them: the
evaluation set for POST /read (modelTrain/evaluate_numbers.py, tests/flaskService/test_read.py).

Each number has 2-8 digits of one kind:
- separate: a random gap between neighbours' boxes (1 px to 60% of a digit's height, at MNIST scale);
- touching: each digit pushed left until its ink touches its neighbour's in some row;
- overlapping: pushed a little further (1 px to a sixth of its width), so the strokes cross;
- uneven: separate, but digits of different sizes (0.7-1.15x) on a wandering baseline;
- slant: separate, the whole number sheared as by a slanted hand.
Then it is scaled up 2-5x onto a page with margins and painted in one of the user styles of
renders.py (paper, photo JPEG, canvas, coloured pen, scan, white on black). Every number has
its own seed, (SEED, index), so any one of them can be rebuilt alone.

The printed numbers (printed_set) are 3-8 digits set as text in the evaluation fonts, which
training never uses (a meter's counter, an amount on a receipt), painted in the same styles.
"""
from collections import namedtuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modelTrain.evalsets.nondigits import eval_fonts
from modelTrain.evalsets.renders import STYLES, paint

KINDS = ("separate", "touching", "overlapping", "uneven", "slant")
SEED = 15
PRINTED_SEED = 16
MARGIN = 6  # px around the composed digits, at MNIST scale

Number = namedtuple("Number", "data text kind style boxes")  # boxes: [x, y, w, h] per digit, in the image's pixels


def evaluation_set(mnist, count=1200, lengths=(2, 8)):
    """`count` numbers, the kinds and styles taken in turn, lengths uniform in `lengths` (inclusive)."""
    return [number(mnist, index, KINDS[index % len(KINDS)], STYLES[(index // len(KINDS)) % len(STYLES)],
                   lengths) for index in range(count)]


def number(mnist, index, kind, style, lengths=(2, 8)):
    """Number `index` of the set: its digits drawn from MNIST's test split with the seed (SEED, index)."""
    rng = np.random.default_rng((SEED, index))
    length = int(rng.integers(lengths[0], lengths[1] + 1))
    picks = rng.integers(0, len(mnist["y_test"]), length)
    layers = compose([mnist["x_test"][i] for i in picks], kind, rng)
    data, boxes = render(layers, style, rng)
    return Number(data, "".join(str(int(mnist["y_test"][i])) for i in picks), kind, style, boxes)


def compose(digits, kind, rng):
    """28x28 uint8 digits -> one float32 layer per digit (all the same size, ink in [0, 1]), placed
    left to right as `kind` says."""
    pieces, tops = [], []
    for digit in digits:
        ink = _crop(digit.astype(np.float32) / 255)
        if kind == "uneven":
            factor = rng.uniform(0.7, 1.15)
            size = (max(1, round(ink.shape[1] * factor)), max(1, round(ink.shape[0] * factor)))
            ink = np.clip(np.asarray(Image.fromarray(ink, "F").resize(size, Image.Resampling.BILINEAR)), 0, 1)
            tops.append(round(rng.uniform(-0.15, 0.15) * 20 + (20 - ink.shape[0]) * rng.uniform(0.3, 0.7)))
        else:
            tops.append(0)
        pieces.append(ink)
    tops = np.array(tops) - min(tops) + MARGIN
    lefts = [MARGIN]
    for previous, piece, previous_top, top, previous_left in zip(pieces, pieces[1:], tops, tops[1:], lefts):
        lefts.append(_next_left(previous, previous_top, previous_left, piece, top, kind, rng))
    height = max(t + p.shape[0] for t, p in zip(tops, pieces)) + MARGIN
    width = max(left + p.shape[1] for left, p in zip(lefts, pieces)) + MARGIN
    shear = rng.uniform(-0.2, 0.35) if kind == "slant" else 0.0
    extra = int(np.ceil(abs(shear) * height))  # room for the shear
    layers = np.zeros((len(pieces), height, width + extra), np.float32)
    for layer, piece, top, left in zip(layers, pieces, tops, lefts):
        layer[top:top + piece.shape[0], left + (extra if shear < 0 else 0):][:, :piece.shape[1]] = piece
    if shear:
        # x' = x - shear * (y - height): the bottom stays, the top leans right for shear > 0.
        matrix = (1, shear, -shear * height, 0, 1, 0)
        layers = np.stack([np.asarray(Image.fromarray(layer, "F").transform(
            layer.shape[::-1], Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR)) for layer in layers])
    return layers


def _crop(ink):
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _next_left(previous, previous_top, previous_left, piece, top, kind, rng):
    """Where the next digit's box starts, for the spacing of `kind`."""
    box_right = previous_left + previous.shape[1]
    if kind not in ("touching", "overlapping"):
        return box_right + int(rng.integers(1, 13))
    # Rows both digits have ink in: the right digit may come as close as its ink allows, row by row.
    shared = range(max(top, previous_top), min(top + piece.shape[0], previous_top + previous.shape[0]))
    reach = [previous_left + np.flatnonzero(previous[r - previous_top] > 0.3)[-1] + 1
             - np.flatnonzero(piece[r - top] > 0.3)[0]
             for r in shared if (previous[r - previous_top] > 0.3).any() and (piece[r - top] > 0.3).any()]
    touching = max(reach) if reach else box_right
    if kind == "touching":
        return int(touching)
    return int(touching - rng.integers(1, max(2, piece.shape[1] // 6 + 1)))


def render(layers, style, rng):
    """Digit layers -> (encoded image bytes in `style`, each digit's [x, y, w, h] in its pixels)."""
    ink = layers.max(axis=0)
    factor = rng.uniform(2, 5)
    height, width = ink.shape
    size = (round(width * factor), round(height * factor))
    big = Image.fromarray(np.round(ink * 255).astype(np.uint8), "L").resize(size, Image.Resampling.BICUBIC)
    pad_x, pad_y = (int(rng.uniform(0.05, 0.4) * size[1]) for _ in range(2))
    page = Image.new("L", (size[0] + 2 * pad_x, size[1] + 2 * pad_y), 0)
    page.paste(big, (pad_x, pad_y))
    boxes = []
    for layer in layers:
        rows, cols = np.flatnonzero((layer > 0.3).any(axis=1)), np.flatnonzero((layer > 0.3).any(axis=0))
        boxes.append([round(pad_x + cols[0] * factor), round(pad_y + rows[0] * factor),
                      round((cols[-1] + 1 - cols[0]) * factor), round((rows[-1] + 1 - rows[0]) * factor)])
    return paint(page, style, rng), boxes


def printed_set(count=300, lengths=(3, 8)):
    """`count` printed numbers, the styles taken in turn, lengths uniform in `lengths` (inclusive)."""
    return [printed_number(index, STYLES[index % len(STYLES)], lengths) for index in range(count)]


def printed_number(index, style, lengths=(3, 8)):
    """Printed number `index`: random digits set in an evaluation font at 24-120 px, turned by up
    to 3 degrees, with the seed (PRINTED_SEED, index)."""
    rng = np.random.default_rng((PRINTED_SEED, index))
    text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(lengths[0], lengths[1] + 1))))
    fonts = eval_fonts()
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), int(rng.integers(24, 121)))
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = (int(rng.uniform(0.1, 0.6) * (bottom - top)) + 2 for _ in range(2))
    mask = Image.new("L", (right - left + 2 * pad_x, bottom - top + 2 * pad_y), 0)
    ImageDraw.Draw(mask).text((pad_x - left, pad_y - top), text, fill=255, font=font)
    mask = mask.rotate(rng.uniform(-3, 3), resample=Image.Resampling.BICUBIC)
    return Number(paint(mask, style, rng), text, "printed", style, [])
