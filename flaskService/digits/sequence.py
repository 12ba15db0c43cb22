"""A line of handwritten digits -> the number model's input; its frame probabilities -> the digits.

The number model (modelTrain/number_model.py) reads a line of writing scaled to LINE_HEIGHT pixels
and left-aligned in a LINE_WIDTH-wide strip; for each frame (FRAME_WIDTH columns of the strip) it
gives the probabilities of a CTC blank and the ten digits. Decoding is greedy: the likeliest class
per frame, repeats merged, blanks dropped. A number read unsurely is read a second time, smaller.

Pure functions on numpy arrays: training, evaluation and the service share them.
"""
from collections import namedtuple

import numpy as np
from PIL import Image

from . import preprocess
from .errors import ImageError
from .model import NUMBERS

LINE_HEIGHT, LINE_WIDTH = NUMBERS.input_shape[:2]
(FRAMES, CLASSES), = NUMBERS.output_shapes
MARGIN = 2  # px of the strip left empty above, below and before the writing
FRAME_WIDTH = LINE_WIDTH // FRAMES  # strip columns per output frame: the network pools the width by 4
BLANK = 0  # CTC's blank is class 0 (keras.ops.ctc_loss's mask_index); digit d is class d + 1
THRESHOLD = 0.25  # ink level above which a pixel belongs to a stroke (the extent of the writing)
# Two lines of writing, one above the other, are apart by empty rows at least this share of the
# tallest run of inked rows (about a line's height). A stroke broken across a digit mostly leaves
# less: of the 34,345 MNIST digits, 3 alone in an image are taken for two lines (two 3s in pieces, a 1
# whose top is a dot); of 4,500 composed numbers, none.
LINE_GAP = 0.35
# A number read with less confidence than SECOND_LOOK is read again from its strip shrunk to
# SECOND_LOOK_SHARE. In training a line's tallest digit sets its height and most digits are smaller,
# so the two looks err apart; the text the two sets of frames find likelier together wins.
SECOND_LOOK = 0.9
SECOND_LOOK_SHARE = 0.9

Line = namedtuple("Line", "input factor left top")
Line.__doc__ = """The model's (LINE_HEIGHT, LINE_WIDTH) float32 input and where it came from: strip
column c shows ink column left + (c - MARGIN) / factor (and rows likewise from top)."""
Read = namedtuple("Read", "digit probabilities start stop")
Read.__doc__ = """One decoded digit: its class probabilities (ten, given that it is a digit) at its
most confident frame, and its frames [start, stop)."""


def line_input(pixels):
    """(h, w) float32 ink in [0, 1], white on black (preprocess.find_ink's pixels) -> Line, or None
    when nothing in it reaches THRESHOLD."""
    rows, cols = np.flatnonzero(pixels.max(axis=1) > THRESHOLD), np.flatnonzero(pixels.max(axis=0) > THRESHOLD)
    if len(rows) == 0:
        return None
    top, left = rows[0], cols[0]
    writing = pixels[top:rows[-1] + 1, left:cols[-1] + 1]
    height, width = writing.shape
    # Scale the writing to the strip's height, unless that makes it too wide: then to its width.
    factor = min((LINE_HEIGHT - 2 * MARGIN) / height, (LINE_WIDTH - 2 * MARGIN) / width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    strip, row = _in_strip(writing, size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR)
    return Line(strip, factor, int(left), int(top) - (row - MARGIN) / factor)


def lines_of_writing(pixels):
    """The rows [start, stop) of each line of writing, top to bottom, in ink (as for line_input):
    groups of inked rows split by LINE_GAP, each at least half as tall as the tallest run. A dot, a
    dash or a speck standing apart above or below the digits is no line: too short."""
    starts, stops = preprocess.row_runs(pixels > THRESHOLD)
    if not len(starts):
        return []
    tallest = (stops - starts).max()
    apart = np.flatnonzero(starts[1:] - stops[:-1] >= LINE_GAP * tallest)
    groups = zip(starts[np.r_[0, apart + 1]], stops[np.r_[apart, len(starts) - 1]])
    return [(int(start), int(stop)) for start, stop in groups if stop - start >= tallest / 2]


def shrunk(line, share):
    """The Line with its strip's writing shrunk to `share` of its size, still left-aligned and centred
    in height. (Shrinking the strip, not scaling the ink anew, softens the strokes a little: on the
    held-out numbers the second look then errs apart from the first more often.)"""
    inked = np.flatnonzero(line.input.max(axis=0) > THRESHOLD)
    writing = line.input[MARGIN:LINE_HEIGHT - MARGIN, MARGIN:inked[-1] + 1]
    height = max(1, round(writing.shape[0] * share))
    scale = height / writing.shape[0]
    strip, row = _in_strip(writing, (max(1, round(writing.shape[1] * scale)), height), Image.Resampling.BILINEAR)
    factor = line.factor * scale
    return Line(strip, factor, line.left, line.top - (row - MARGIN) / factor)


def _in_strip(writing, size, method):
    """`writing` resized to `size` (width, height) on an empty strip, MARGIN columns in from the left
    and centred in height -> (strip, the row its top is at)."""
    scaled = np.asarray(Image.fromarray(np.ascontiguousarray(writing, np.float32), "F").resize(size, method))
    strip = np.zeros((LINE_HEIGHT, LINE_WIDTH), np.float32)
    row = (LINE_HEIGHT - size[1]) // 2
    strip[row:row + size[1], MARGIN:MARGIN + size[0]] = np.clip(scaled, 0, 1)
    return strip, row


def greedy_decode(probabilities):
    """(FRAMES, CLASSES) frame probabilities -> [Read]: the likeliest class of each frame, a run of
    the same digit read once, blanks between runs dropped (so "0 _ 0" is two zeros)."""
    best = probabilities.argmax(axis=1)
    changes = np.flatnonzero(np.diff(best)) + 1
    starts = np.concatenate(([0], changes))
    stops = np.concatenate((changes, [len(best)]))
    reads = []
    for start, stop in zip(starts, stops):
        label = best[start]
        if label == BLANK:
            continue
        peak = start + int(probabilities[start:stop, label].argmax())
        digits = probabilities[peak, 1:]
        reads.append(Read(int(label) - 1, digits / max(digits.sum(), np.finfo(np.float32).tiny),
                          int(start), int(stop)))
    return reads


def text_probability(probabilities, digits):
    """The probability of the text `digits` under (FRAMES, CLASSES) frame probabilities: CTC's, the
    sum over every way the frames can spell it (Graves et al. 2006, the forward pass). Unlike the
    digits' own confidences, it falls when a read digit may be a mark, a stray stroke or half of
    its neighbour, so it is the chance that the whole number is right."""
    path = np.full(2 * len(digits) + 1, BLANK)  # blank, first digit, blank, ..., last digit, blank
    path[1::2] = np.asarray(digits, np.int64) + 1
    # A digit may follow the digit before it straight away, without a blank, unless they are equal.
    jump = np.zeros(len(path), bool)
    jump[3::2] = path[3::2] != path[1:-2:2]
    alpha = np.zeros(len(path))
    alpha[:2] = probabilities[0, path[:2]]
    for frame in probabilities[1:, path]:
        before = np.concatenate(([0.0, 0.0], alpha))  # alpha moved one and two steps along the path
        alpha = (alpha + before[1:-1] + jump * before[:-2]) * frame
    return float(alpha[-2:].sum())


def text_of(probabilities):
    """The digits greedy decoding reads, as a string."""
    return "".join(str(read.digit) for read in greedy_decode(probabilities))


Digit = namedtuple("Digit", "digit confidence probabilities digit_score is_digit reason box input")
Digit.__doc__ = """A digit of a number, as /read answers it: `box` [x, y, w, h] in the uploaded image's
pixels; `input` the columns of the strip the model read it from."""
Reading = namedtuple("Reading", "text confidence digits")
Reading.__doc__ = """A number as /read answers it: `confidence` is the probability of the whole text
(text_probability) under the frames it was read from, calibrated with the model's temperature."""


def read_number(image, frames_of, min_digit_score):
    """A decoded Pillow image -> Reading. `frames_of`: (N, LINE_HEIGHT, LINE_WIDTH) float32 -> (N,
    FRAMES, CLASSES) probabilities (the number model's Predictor.predict). Raises ImageError 422
    (blank_image, no_digits) when there is no number to read, several_lines when there is more than one."""
    ink = preprocess.find_ink(image)
    lines = lines_of_writing(ink.pixels)
    if not lines:
        raise ImageError(422, "blank_image", "No digit found: the image is blank or has no visible ink.")
    if len(lines) > 1:
        raise ImageError(422, "several_lines", f"The image holds {len(lines)} lines of writing, one above the "
                                             "other; /read reads one: send each line as an image of its own.")
    # Specks standing apart above or below the line are left out: they would shrink it in the strip.
    start, stop = lines[0]
    line = line_input(ink.pixels[start:stop])
    line = line._replace(top=line.top + start)
    look = _look(line, frames_of)
    if not look.reads:
        raise ImageError(422, "no_digits", "No digit found: the image holds only specks, lines or marks "
                                         "that are not digits.")
    if look.confidence < SECOND_LOOK:
        other = _look(shrunk(line, SECOND_LOOK_SHARE), frames_of)
        if other.reads and _digits(other.reads) != _digits(look.reads) and _joint(other, look) > _joint(look, other):
            look = other
    line, probabilities, reads = look.line, look.probabilities, look.reads
    # A digit owns the columns from halfway to its left neighbour's frames to halfway to its right one's.
    edges = [0] + [FRAME_WIDTH * (a.stop + b.start) // 2 for a, b in zip(reads, reads[1:])] + [LINE_WIDTH]
    digits = []
    for read, left, right in zip(reads, edges, edges[1:]):
        columns = line.input[:, left:right]
        box = _ink_box(columns, left, (FRAME_WIDTH * read.start, FRAME_WIDTH * read.stop))
        x, y, w, h = box
        # Strip -> ink -> uploaded image pixels.
        ink_x, ink_y = line.left + (x - MARGIN) / line.factor, line.top + (y - MARGIN) / line.factor
        upload = [round((ink.left + ink_x) / ink.scale), round((ink.top + ink_y) / ink.scale),
                  max(1, round(w / line.factor / ink.scale)), max(1, round(h / line.factor / ink.scale))]
        digit_score = float(1 - probabilities[read.start:read.stop, BLANK].min())
        is_digit = digit_score >= min_digit_score
        digits.append(Digit(read.digit, float(read.probabilities[read.digit]), read.probabilities, digit_score,
                            is_digit, None if is_digit else "not_a_digit", upload, line.input[:, x:x + w]))
    return Reading("".join(str(d.digit) for d in digits), look.confidence, digits)


Look = namedtuple("Look", "line probabilities reads confidence")
Look.__doc__ = """One reading of a Line: its frame probabilities, the digits greedy decoding reads in them
and the probability of their text."""


def _look(line, frames_of):
    probabilities = frames_of(line.input[None])[0]
    reads = greedy_decode(probabilities)
    return Look(line, probabilities, reads, text_probability(probabilities, _digits(reads)))


def _digits(reads):
    return [read.digit for read in reads]


def _joint(look, other):
    """The log-probability of `look`'s text under both looks' frames (a product of experts)."""
    tiny = np.finfo(np.float64).tiny
    return np.log(max(look.confidence, tiny)) + np.log(max(text_probability(other.probabilities, _digits(look.reads)), tiny))


def _ink_box(columns, left, frames):
    """[x, y, w, h] in the strip of the digit's ink in `columns` (which start at strip column `left`):
    the runs of inked columns that reach the digit's frames (strip columns [start, stop)), or the
    nearest run, so that a separate neighbour's edge inside the columns is left out; the columns
    themselves when they hold no ink."""
    inked = columns.max(axis=0) > THRESHOLD
    if not inked.any():
        return [left, MARGIN, columns.shape[1], LINE_HEIGHT - 2 * MARGIN]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], inked.view(np.int8), [0]))))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2])]  # [start, stop) of each run of inked columns
    start, stop = frames[0] - left, frames[1] - left

    def distance(run):
        return max(0, run[0] - stop, start - run[1])

    nearest = min(map(distance, runs))
    kept = [run for run in runs if distance(run) == nearest]
    first, last = kept[0][0], kept[-1][1]
    rows = np.flatnonzero(columns[:, first:last].max(axis=1) > THRESHOLD)
    return [left + int(first), int(rows[0]), int(last - first), int(rows[-1] - rows[0] + 1)]
