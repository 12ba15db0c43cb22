"""A decoded image of a handwritten number -> its digits, left to right, each with its box and the
28x28 input the model saw: segmentation plus the digit classifier.

1. preprocess.find_ink gives the ink and where it lies in the uploaded image; it is scaled so the
   writing is about WORK_HEIGHT pixels tall (enough for a 20x20 MNIST box, cheap to search).
2. Connected strokes are components; specks are dropped, and a component lying over another
   (a 5's detached bar, a broken 4) joins it: each group holds one or more whole digits.
3. Each group is classified whole. The digit model (12 outputs) says how likely an image is exactly
   one digit (digit_score), which digit, and whether it is several digits or no digit at all; a
   group narrower than its height that is confidently one digit is read as it is.
4. Any other group is over-segmented by seams: top-to-bottom paths of least ink, one per band of
   columns (drifting a column per row at a small cost, so they follow slant and thread between
   strokes that overlap); seams that split the ink the same way are one. Every run of pieces between
   two seams, up to WIDEST, is classified in one batch, and dynamic programming picks the cuts whose
   pieces are each most likely one digit: a piece scores the model's raw probability of its best
   digit (digit_score times the renormalised confidence), so squashed pairs ("several digits") and
   halves of digits ("not a digit") lose. A piece the model says is no digit (a dash, a smudge) may
   be left out instead of read.

Pure functions: a Pillow image and a `classify` function in, numbers out; no Flask.
"""
from collections import namedtuple

import numpy as np
from PIL import Image
import cc3d

from . import preprocess
from .errors import ApiError

WORK_HEIGHT = 48  # px: the height a digit of the writing is scaled to (only ever down)
THRESHOLD = 0.25  # ink level above which a pixel belongs to a stroke
SPECK = 0.04  # components with less than this share of the largest one's ink are noise
MINOR = 0.6  # a component shorter than this share of the writing's height is part of a digit, if it lies over one
COVERED = 0.8  # two tall components whose columns overlap this much (of the narrower) are one digit
SPLIT_ASPECT = 1.0  # a group narrower than this times its height is one digit: no seams searched
SEAM_DRIFT = 0.2  # cost of a seam moving one column sideways, against 1.0 for crossing a pixel of full ink
SEAM_SPACING = 0.2  # seams closer than this share of the height are one candidate
MAX_SEAMS = 96  # bands per group; more is a group wider than ~19 touching digits (a long rule): 422
SAME_SEAM = 1.5  # px: seams this close on average (work pixels) are one candidate cut
SAME_SPLIT = 0.02  # ... and so are seams whose left sides hold ink within this share of the group's
SURE = 0.9  # a group narrower than SPLIT_ASPECT is one digit when the model's raw probability of its digit is this
CUT_PENALTY = 0.4  # log-probability a cut costs: a half 0 reads as a confident 1, two of them must not beat one 0
SEAM_INK = 0.5  # ... and this much per stroke width of ink it crosses (two neighbours touch at one stroke; a 0 is cut through two)
SHARED = 1  # px (work image) of ink beyond each seam that both pieces either side of it keep
WIDEST = 1.1  # no digit is wider than this times its group's height: wider runs are not classified (but the whole group)
# Width over height of each digit's ink in MNIST's training split, the median: a piece read as a 4
# but 1.3 times as wide as tall is more likely two digits squashed (a 10-output model cannot say so) ...
ASPECTS = (0.9, 0.4, 0.95, 0.8, 0.8, 0.95, 0.7, 0.8, 0.75, 0.7)
ASPECT_SLACK = 0.15  # ... when it is wider than its digit's median by more than this,
ASPECT_PENALTY = 4.0  # ... costing this much log-probability per unit of aspect beyond
FRAGMENT = 0.45  # a piece shorter than this share of its group's height is a fragment ...
FRAGMENT_PENALTY = 4.0  # ... left out at a cost of this much log-probability
SKIP_PENALTY = 3.0  # log-probability it costs to leave out a piece the model says is not a digit
FRAGMENT_PIECE = "fragment"  # a candidate that is a fragment, in place of a _Piece
CHUNKS = (64, 16, 4)  # batch sizes the predictor's interpreters are built for (predictor.BATCH_SIZES)
MAX_DIGITS = 32  # more pieces than this is not a number: 422 rather than seconds of work

# What the model says of a piece (as Predictor.classify does of an image): the digit, its calibrated
# confidence and the ten probabilities given that the piece is one digit, the probability that it is
# (None from a digits-only model, which cannot tell), whether that clears MIN_DIGIT_SCORE and if not, why not.
Classes = namedtuple("Classes", "digit confidence probabilities digit_score is_digit reason")
Digit = namedtuple("Digit", Classes._fields + ("box", "input"))  # box: [x, y, w, h] in the uploaded image's px
Reading = namedtuple("Reading", "text confidence digits")


def read_number(image, classify):
    """A decoded Pillow image -> Reading. `classify`: (N, 28, 28) float32 -> a predictor.Classification
    (Predictor.classify). Raises ApiError 422 (blank_image, no_digits, too_many_digits) when there is
    no number to read."""
    return read_ink(preprocess.find_ink(image), classify)


def read_ink(ink, classify):
    """preprocess.find_ink's Ink -> Reading (read_number without the search for the ink)."""
    work, factor = _work_scale(ink.pixels)
    groups = _groups(work)
    # First each group whole: most are one digit, which the model says confidently, and need no cut.
    _classify(groups, classify)
    searched = [_candidates(group) if _needs_cutting(group) else ({(0, 1): group}, [0.0, 0.0]) for group in groups]
    # Every candidate piece of every group that needs cutting is classified in one batch: one call.
    _classify(list({id(piece): piece for candidates, _ in searched for piece in candidates.values()
                    if piece is not FRAGMENT_PIECE and piece.classes is None}.values()), classify)
    pieces = [piece for group, (candidates, costs) in zip(groups, searched)
              for piece in _best_cuts(candidates, costs, group.writing)]
    if pieces and not any(piece.classes.is_digit for piece in pieces):
        pieces = []  # marks of which none looks like a digit (a star, a cross) are not a number
    if not pieces:
        raise ApiError(422, "no_digits", "No digit found: the image holds only specks, lines or marks "
                                         "that are not digits.")
    if len(pieces) > MAX_DIGITS:
        raise _too_many()
    pieces.sort(key=lambda piece: piece.left + piece.pixels.shape[1] / 2)
    digits = []
    for piece in pieces:
        x, y, w, h = piece.box
        box = [round((ink.left + x / factor) / ink.scale), round((ink.top + y / factor) / ink.scale),
               max(1, round(w / factor / ink.scale)), max(1, round(h / factor / ink.scale))]
        digits.append(Digit(*piece.classes, box, piece.input))
    text = "".join(str(d.digit) for d in digits)
    return Reading(text, float(np.prod([d.confidence for d in digits])), digits)


def _chunks(count):
    """[start, stop) of calls into the model for `count` pieces. The predictor pads a batch up to
    its next interpreter size (19 -> 64, 65 -> 256), and its cost grows with the padded size: so
    the pieces go in the largest sizes that they fill, the last few padded to 4 at most."""
    start = 0
    for size in CHUNKS:
        while count - start >= size:
            yield start, start + size
            start += size
    if start < count:
        yield start, count


def _classify(pieces, classify):
    """Centre each piece as MNIST digits are and classify them all in one call."""
    if not pieces:
        return
    inputs = np.stack([preprocess.centre_like_mnist(piece.pixels) for piece in pieces])
    for start, stop in _chunks(len(pieces)):
        answers = classify(inputs[start:stop])
        for index, piece in enumerate(pieces[start:stop]):
            piece.input = inputs[start + index]
            piece.classes = Classes(int(answers.digits[index]), float(answers.confidence[index]),
                                    answers.probabilities[index],
                                    None if answers.digit_score is None else float(answers.digit_score[index]),
                                    bool(answers.is_digit[index]), answers.reasons[index])


class _Piece:
    """Ink of one digit candidate: `pixels` (its own ink only, others' zeroed) at `left`, `top` in the work image."""

    def __init__(self, pixels, left, top):
        rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
        self.pixels = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        self.left, self.top = left + cols[0], top + rows[0]
        self.box = (self.left, self.top, self.pixels.shape[1], self.pixels.shape[0])
        self.input = self.classes = None


def components(mask):
    """8-connected components of a boolean image: (labels, count, slices), numbered in raster order of
    each one's first pixel, slices[i] the (rows, columns) box of label i + 1 -- what
    scipy.ndimage.label and find_objects give (tests/flaskService/test_read.py checks it), from
    connected-components-3d, a 5 MB wheel where scipy would add 140 MB to the image."""
    labels = cc3d.connected_components(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    flat = labels.ravel()
    count = int(flat.max())
    if count == 0:
        return labels, 0, []
    where = np.flatnonzero(flat)
    first = np.empty(count + 1, np.int64)
    first[flat[where[::-1]]] = where[::-1]  # a label's pixels written last to first: its first pixel stays
    rank = np.zeros(count + 1, labels.dtype)
    rank[np.argsort(first[1:]) + 1] = np.arange(1, count + 1, dtype=labels.dtype)
    labels = rank[labels]
    return labels, count, [tuple(box) for box in cc3d.statistics(labels)["bounding_boxes"][1:]]


def _work_scale(pixels):
    """The ink scaled down so its writing is at most WORK_HEIGHT tall, and the factor used."""
    rows = np.flatnonzero(pixels.max(axis=1) > THRESHOLD)
    if len(rows) == 0:
        raise ApiError(422, "blank_image", "No digit found: the image is blank or has no visible ink.")
    # The writing's height: the tallest stroke's, not the span of all rows (specks, uneven baselines).
    _, count, slices = components(pixels > THRESHOLD)
    heights = [s[0].stop - s[0].start for s in slices]
    height = np.percentile(heights, 90) if count else len(rows)
    factor = min(1.0, WORK_HEIGHT / height)
    if factor == 1.0:
        return pixels, factor
    size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
    work = np.asarray(Image.fromarray(pixels, "F").resize(size, Image.Resampling.BOX), np.float32)
    return work, size[0] / pixels.shape[1]


def _groups(work):
    """Components of the work image, specks dropped and covered ones merged -> _Pieces, left to right."""
    labels, count, slices = components(work > THRESHOLD)
    if count == 0:
        return []
    masses = np.bincount(labels.ravel(), weights=work.ravel(), minlength=count + 1)[1:]
    kept = [i for i in range(count) if masses[i] >= SPECK * masses.max()]
    if len(kept) > MAX_DIGITS * 2:
        raise _too_many()
    height = max(slices[i][0].stop - slices[i][0].start for i in kept)
    spans = {i: [slices[i][1].start, slices[i][1].stop] for i in kept}
    members = {i: [i] for i in kept}
    # Join each short component to the tall one whose columns it overlaps most, then tall ones that
    # lie over each other (a broken stroke); longest first so a bar joins its digit, not a speck.
    for i in sorted(kept, key=lambda i: slices[i][0].stop - slices[i][0].start):
        own_height = slices[i][0].stop - slices[i][0].start
        best, best_overlap = None, 0.0
        for j in members:
            if j == i or i not in members:
                continue
            overlap = min(spans[i][1], spans[j][1]) - max(spans[i][0], spans[j][0])
            narrower = min(spans[i][1] - spans[i][0], spans[j][1] - spans[j][0])
            share = overlap / narrower
            if (share > best_overlap and (own_height < MINOR * height and share > 0.3 or share >= COVERED)):
                best, best_overlap = j, share
        if best is not None:
            members[best] += members.pop(i)
            spans[best] = [min(spans[best][0], spans[i][0]), max(spans[best][1], spans[i][1])]
    groups = []
    for owner, parts in members.items():
        rows = slice(min(slices[p][0].start for p in parts), max(slices[p][0].stop for p in parts))
        cols = slice(spans[owner][0], spans[owner][1])
        mask = np.isin(labels[rows, cols], np.asarray(parts) + 1)
        groups.append(_Piece(np.where(mask, work[rows, cols], 0.0), cols.start, rows.start))
    for group in groups:
        group.writing = height
    return sorted(groups, key=lambda g: g.left)


def _needs_cutting(group):
    """Whether a group may hold more than one digit: it is wider than a digit, or the model is not
    sure it is exactly one (it says several digits, or no digit it knows well)."""
    height, width = group.pixels.shape
    if width > SPLIT_ASPECT * height:
        return True
    if group.classes.reason == "not_a_digit" and height < MINOR * group.writing:
        return False  # a small mark that is no digit (a dot, a smudge): its halves would be read as 1s
    return _one_digit(group.classes) * group.classes.confidence < SURE


def _one_digit(classes):
    """The probability that a piece is one digit (a digits-only model assumes it is)."""
    return 1.0 if classes.digit_score is None else classes.digit_score


def _candidates(group):
    """One group -> its candidate pieces, {(first seam, last seam): _Piece}, and each seam's cost in
    strokes crossed. Seam 0 is the group's left edge, the last its right edge."""
    height, width = group.pixels.shape
    stroke = _stroke_width(group.pixels)
    seams, costs = _seams(group.pixels)
    seams = [np.full(height, -1)] + seams + [np.full(height, width - 1)]
    costs = [0.0] + [cost / stroke for cost in costs] + [0.0]
    candidates, same_ink = {}, {}
    for start in range(len(seams) - 1):
        for stop in range(start + 1, len(seams) - (start == 0)):
            if stop > start + 1 and seams[stop].min() - seams[start].max() > WIDEST * height:
                break
            # Each piece keeps SHARED columns of ink beyond a seam that cuts it: where the seam
            # crosses a stroke both neighbours may own it.
            piece = _between(group, np.maximum(seams[start] - SHARED * (start > 0), -1),
                             np.minimum(seams[stop] + SHARED * (stop < len(seams) - 1), width - 1))
            # A piece much shorter than its group is a fragment (a 4's bar, a sliver of a cut 0): it
            # is not worth classifying; the search may leave it out, at a cost.
            if piece is not None and piece.pixels.shape[0] < FRAGMENT * height:
                piece = FRAGMENT_PIECE
            elif piece is not None:
                # Seams that differ only where there is no ink cut the same piece: it is read once.
                piece = same_ink.setdefault((piece.box, piece.pixels.tobytes()), piece)
            if piece is not None:
                candidates[start, stop] = piece
    # The whole group is one candidate however wide (a wide 2 or 7 alone): it was read already.
    candidates[0, len(seams) - 1] = group
    return candidates, costs


def _stroke_width(ink):
    """The pen's width in pixels: ink mass per run of ink, across rows and down columns (the smaller:
    a run along a stroke is longer than the stroke is wide)."""
    mask = ink > THRESHOLD
    across = np.count_nonzero(mask[:, 1:] & ~mask[:, :-1]) + np.count_nonzero(mask[:, 0])
    down = np.count_nonzero(mask[1:] & ~mask[:-1]) + np.count_nonzero(mask[0])
    return max(1.0, float(ink.sum()) / max(across, down, 1))


def _seams(ink):
    """Top-to-bottom paths of least ink (a column per row), one per band of columns SEAM_SPACING of
    the height apart, each free to drift within its band -> (paths, ink each crosses). Bands keep
    the paths apart: unbounded, every path would flee to the same gap and leave a touching pair
    without a cut. Paths that come out (nearly) the same are one."""
    height, width = ink.shape
    spacing = max(2, round(SEAM_SPACING * height))
    margin = max(2, int(0.15 * height))
    centres = np.arange(margin, width - margin, spacing)
    if len(centres) == 0:
        return [], []
    if len(centres) > MAX_SEAMS:  # a long rule or a zigzag is not worth seconds of classifying
        raise _too_many()
    reach = spacing  # a band: its centre +- this many columns
    offsets = np.arange(-reach, reach + 1)
    columns = centres[:, None] + offsets  # (bands, band width)
    outside = (columns < 0) | (columns >= width)
    columns = np.clip(columns, 0, width - 1)
    cost = ink[:, columns].astype(np.float64)  # (rows, bands, band width)
    cost[:, outside] = np.inf
    cost += SEAM_DRIFT * np.abs(offsets) / reach * 0.5  # prefer the band's middle a little: fewer twins
    total = cost[0].copy()
    moves = np.zeros((height, len(centres), len(offsets)), np.int8)
    from_left, from_right = np.full_like(total, np.inf), np.full_like(total, np.inf)
    for row in range(1, height):
        # Each path comes from the column left of it, its own or the one right of it, whichever is
        # cheapest (on a tie the leftmost, as argmin over the three would choose).
        from_left[:, 1:] = total[:, :-1] + SEAM_DRIFT
        from_right[:, :-1] = total[:, 1:] + SEAM_DRIFT
        best, move = from_right.copy(), moves[row]
        move[:] = 1
        stay = total <= best
        best[stay], move[stay] = total[stay], 0
        left = from_left <= best
        best[left], move[left] = from_left[left], -1
        total = best + cost[row]
    ends = total.argmin(axis=1)
    bands = np.arange(len(centres))
    paths = np.empty((len(centres), height), np.int64)
    paths[:, -1] = ends
    for row in range(height - 1, 0, -1):
        paths[:, row - 1] = paths[:, row] + moves[row, bands, paths[:, row]]
    paths = columns[bands[:, None], paths]
    rows = np.arange(height)
    crossed = ink[rows, paths].sum(axis=1)
    # Seams that split the ink the same way (their left sides hold nearly the same ink) make the same
    # pieces: one of them, the cheapest, is enough.
    left_of = ink.cumsum(axis=1)[rows, paths].sum(axis=1)
    same = SAME_SPLIT * float(ink.sum())
    seams, costs, splits = [], [], []
    for path, ink_crossed, left in zip(paths, crossed, left_of):
        if seams and (np.abs(path - seams[-1]).mean() < SAME_SEAM or left - splits[-1] < same):
            if ink_crossed < costs[-1]:
                seams[-1], costs[-1], splits[-1] = path, float(ink_crossed), left
            continue
        seams.append(path)
        costs.append(float(ink_crossed))
        splits.append(left)
    return seams, costs


def _between(group, left_seam, right_seam):
    """The ink of `group` right of one seam and up to the other (inclusive), or None if there is none."""
    first, stop = max(0, int(left_seam.min()) + 1), int(right_seam.max()) + 1  # only the columns between
    columns = np.arange(first, stop)
    inside = (columns > left_seam[:, None]) & (columns <= right_seam[:, None])
    pixels = np.where(inside, group.pixels[:, first:stop], 0.0)
    if not pixels.size or pixels.max() <= THRESHOLD:
        return None
    return _Piece(pixels, group.left + first, group.top)


def _best_cuts(candidates, costs, writing):
    """Dynamic programming over the seams: the pieces from the first seam to the last with the best
    total score (the pieces' scores less each cut's cost). A piece the model says is not a digit may
    be left out (a dash, a smudge: not printed as a digit), at its probability of being no digit
    less SKIP_PENALTY; a digit cut from its neighbour often looks less like one than it is."""
    last = len(costs) - 1
    best = {0: (0.0, [])}
    for stop in range(1, last + 1):
        options = []
        for start in range(stop):
            if start not in best or (start, stop) not in candidates and stop > start + 1:
                continue
            score, chosen = best[start]
            piece = candidates.get((start, stop))
            if piece is FRAGMENT_PIECE:
                options.append((score - FRAGMENT_PENALTY, chosen))
            elif piece is None:  # no ink between these seams: nothing to read there
                options.append((score, chosen))
            else:
                cut = CUT_PENALTY + SEAM_INK * costs[start] if start else 0.0
                options.append((score + _score(piece) - cut, chosen + [piece]))
                # A short mark that is no digit (a dash, a dot, a smudge) may be left out. Not a tall
                # one: two overlapping digits squashed together often look like no digit to the model.
                if piece.classes.reason == "not_a_digit" and piece.pixels.shape[0] < MINOR * writing:
                    options.append((score + np.log(max(1.0 - piece.classes.digit_score, 1e-9)) - SKIP_PENALTY - cut,
                                    chosen))
        if options:
            best[stop] = max(options, key=lambda option: option[0])
    return best.get(last, (0.0, []))[1]


def _score(piece):
    """How much a piece looks like one digit: the log of the probability that it is one digit and
    that digit (the model's raw probability of its best digit: digit_score times the renormalised
    confidence), less shape penalties."""
    height, width = piece.pixels.shape
    classes = piece.classes
    score = np.log(max(_one_digit(classes) * classes.confidence, 1e-9))
    score -= ASPECT_PENALTY * max(0.0, width / height - ASPECTS[classes.digit] - ASPECT_SLACK)
    return score


def _too_many():
    return ApiError(422, "too_many_digits", f"The image holds more than {MAX_DIGITS} digit-like marks; "
                                            "that is not a number this service reads.")
