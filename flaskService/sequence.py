"""A line of handwritten digits -> the number model's input; its frame probabilities -> the digits.

The number model (modelTrain/number_model.py) reads a line of writing scaled to LINE_HEIGHT pixels
and left-aligned in a LINE_WIDTH-wide strip; for each frame (FRAME_WIDTH columns of the strip) it
gives the probabilities of a CTC blank and the ten digits. Decoding is greedy: the likeliest class
per frame, repeats merged, blanks dropped.

Pure functions on numpy arrays: training, evaluation and the service share them.
"""
from collections import namedtuple

import numpy as np
from PIL import Image

LINE_HEIGHT = 32
LINE_WIDTH = 256
MARGIN = 2  # px of the strip left empty above, below and before the writing
FRAME_WIDTH = 4  # strip columns per output frame: the network pools the width by 4
FRAMES = LINE_WIDTH // FRAME_WIDTH
BLANK = 0  # CTC's blank is class 0 (keras.ops.ctc_loss's mask_index); digit d is class d + 1
CLASSES = 11
THRESHOLD = 0.25  # ink level above which a pixel belongs to a stroke (the extent of the writing)

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
    method = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    scaled = np.asarray(Image.fromarray(np.ascontiguousarray(writing, np.float32), "F").resize(size, method))
    strip = np.zeros((LINE_HEIGHT, LINE_WIDTH), np.float32)
    row = (LINE_HEIGHT - size[1]) // 2
    strip[row:row + size[1], MARGIN:MARGIN + size[0]] = np.clip(scaled, 0, 1)
    return Line(strip, factor, int(left), int(top) - (row - MARGIN) / factor)


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


def text_of(probabilities):
    """The digits greedy decoding reads, as a string."""
    return "".join(str(read.digit) for read in greedy_decode(probabilities))
