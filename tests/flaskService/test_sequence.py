"""flaskService/digits/sequence.py: a line of ink -> the number model's strip, frame probabilities -> digits."""
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from flaskService.digits import sequence


def frames(labels, floor=0.001):
    """One-hot frame probabilities for a list of classes (0 blank, d + 1 digit d), `floor` for the others."""
    probabilities = np.full((sequence.FRAMES, sequence.CLASSES), floor, np.float64)
    for frame, label in enumerate(labels):
        probabilities[frame, label] = 1.0
    probabilities[len(labels):, sequence.BLANK] = 1.0
    return probabilities / probabilities.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("labels", "text"), (
    ([0, 2, 2, 0, 3, 0], "12"),
    ([2, 2, 2], "1"),
    ([1, 0, 1], "00"),  # a blank between two runs of the same digit: two digits
    ([1, 1, 2, 2, 10, 0], "019"),
    ([], ""),
))
def test_greedy_decoding_merges_repeats_and_drops_blanks(labels, text):
    assert sequence.text_of(frames(labels)) == text


def test_each_read_digit_has_its_frames_and_ten_probabilities():
    reads = sequence.greedy_decode(frames([0, 4, 4, 0, 0, 8]))
    assert [(r.digit, r.start, r.stop) for r in reads] == [(3, 1, 3), (7, 5, 6)]
    for read in reads:
        assert read.probabilities.shape == (10,) and read.probabilities.argmax() == read.digit
        assert read.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def every_alignments_probability(probabilities, digits):
    """The text's probability the long way: every sequence of frame classes that greedy decoding
    turns into `digits`, its frames' probabilities multiplied, summed."""
    total = 0.0
    for path in itertools.product(range(probabilities.shape[1]), repeat=len(probabilities)):
        runs = [label for label, _ in itertools.groupby(path)]
        if [label - 1 for label in runs if label != sequence.BLANK] == list(digits):
            total += np.prod(probabilities[np.arange(len(path)), path])
    return total


@pytest.mark.parametrize("digits", ([], [0], [1, 1], [0, 2], [2, 2, 1], [1, 0, 1]))
def test_text_probability_sums_every_alignment_of_the_text(digits):
    probabilities = np.random.default_rng(len(digits)).dirichlet(np.ones(4), 7)  # blank and digits 0-2, 7 frames
    assert sequence.text_probability(probabilities, digits) == pytest.approx(
        every_alignments_probability(probabilities, digits), rel=1e-9)


def test_a_digit_that_may_be_no_digit_lowers_the_numbers_confidence_not_its_own():
    sure = frames([0, 2, 2, 0, 3, 0], floor=1e-6)
    unsure = sure.copy()
    unsure[4] = 0.0
    unsure[4, [sequence.BLANK, 3]] = 0.45, 0.55  # the 2 may be a blank: "1" or "12"
    reads = sequence.greedy_decode(unsure)
    assert [r.digit for r in reads] == [1, 2] and reads[1].probabilities[2] > 0.99
    assert sequence.text_probability(sure, [1, 2]) > 0.99
    assert sequence.text_probability(unsure, [1, 2]) == pytest.approx(0.55, abs=0.01)
    assert sequence.text_probability(unsure, [1]) == pytest.approx(0.45, abs=0.01)


def test_a_line_is_scaled_to_the_strip_height_and_left_aligned():
    ink = np.zeros((100, 300), np.float32)
    ink[20:80, 50:200] = 1.0  # 60 px of writing, 150 wide
    line = sequence.line_input(ink)
    assert line.input.shape == (sequence.LINE_HEIGHT, sequence.LINE_WIDTH) and line.input.dtype == np.float32
    rows = np.flatnonzero(line.input.max(axis=1) > 0.5)
    cols = np.flatnonzero(line.input.max(axis=0) > 0.5)
    assert rows[0] == sequence.MARGIN and rows[-1] == sequence.LINE_HEIGHT - sequence.MARGIN - 1
    assert cols[0] == sequence.MARGIN and cols[-1] - cols[0] + 1 == pytest.approx(150 * line.factor, abs=1)
    # Strip columns map back to the ink's: the writing starts at ink column 50.
    assert line.left + (cols[0] - sequence.MARGIN) / line.factor == pytest.approx(50, abs=1)


def test_a_long_line_is_scaled_to_the_strip_width():
    ink = np.ones((20, 2000), np.float32)
    line = sequence.line_input(ink)
    cols = np.flatnonzero(line.input.max(axis=0) > 0.5)
    assert cols[-1] <= sequence.LINE_WIDTH - sequence.MARGIN
    assert np.flatnonzero(line.input.max(axis=1) > 0.5).size < sequence.LINE_HEIGHT - 2 * sequence.MARGIN


def test_faint_haze_alone_is_no_line():
    assert sequence.line_input(np.full((40, 40), 0.1, np.float32)) is None


def _rows(*bands, width=60):
    """Ink with a bar over the rows [start, stop) of each band."""
    pixels = np.zeros((max(stop for _, stop in bands) + 3, width), np.float32)
    for start, stop in bands:
        pixels[start:stop, 5:width - 5] = 1.0
    return pixels


def test_lines_of_writing_are_told_apart_by_the_empty_rows_between_them():
    assert sequence.lines_of_writing(np.zeros((20, 20), np.float32)) == []
    assert sequence.lines_of_writing(_rows((2, 22))) == [(2, 22)]
    assert sequence.lines_of_writing(_rows((0, 20), (28, 48))) == [(0, 20), (28, 48)]  # 8 rows apart: 40% of a line
    assert len(sequence.lines_of_writing(_rows((0, 20), (28, 48), (56, 70)))) == 3
    # A gap a fifth of the line's height (a stroke broken across a digit) is inside the line.
    assert sequence.lines_of_writing(_rows((0, 20), (24, 44))) == [(0, 44)]
    # A dot or a dash standing apart above or below is no line.
    assert sequence.lines_of_writing(_rows((0, 3), (20, 40))) == [(20, 40)]
    assert sequence.lines_of_writing(_rows((0, 20), (40, 44))) == [(0, 20)]


def test_a_shrunk_strip_keeps_its_writing_left_aligned_centred_and_mapped():
    ink = np.zeros((100, 300), np.float32)
    ink[20:80, 50:200] = 1.0
    line = sequence.line_input(ink)
    small = sequence.shrunk(line, 0.5)
    rows = np.flatnonzero(small.input.max(axis=1) > 0.5)
    cols = np.flatnonzero(small.input.max(axis=0) > 0.5)
    height = sequence.LINE_HEIGHT - 2 * sequence.MARGIN
    assert len(rows) == pytest.approx(height / 2, abs=1) and rows[0] == pytest.approx(sequence.LINE_HEIGHT - 1 - rows[-1], abs=1)
    assert cols[0] == sequence.MARGIN and len(cols) == pytest.approx(150 * line.factor / 2, abs=1)
    # Its strip still maps back to the ink: the writing's corners are at ink (50, 20) and (200, 80).
    assert small.left + (cols[0] - sequence.MARGIN) / small.factor == pytest.approx(50, abs=2)
    assert small.left + (cols[-1] + 1 - sequence.MARGIN) / small.factor == pytest.approx(200, abs=3)
    assert small.top + (rows[0] - sequence.MARGIN) / small.factor == pytest.approx(20, abs=2)
    assert small.top + (rows[-1] + 1 - sequence.MARGIN) / small.factor == pytest.approx(80, abs=3)


class Looks:
    """frames_of for read_number that answers each look with the frames given, in turn, and counts the looks."""

    def __init__(self, *answers):
        self.answers, self.inputs = list(answers), []

    def __call__(self, lines):
        self.inputs.append(lines[0])
        return self.answers[len(self.inputs) - 1][None]


@pytest.fixture
def two_strokes():
    page = Image.new("L", (200, 80), 255)
    draw = ImageDraw.Draw(page)
    draw.line([(40, 10), (40, 70)], fill=0, width=6)
    draw.line([(100, 10), (100, 70)], fill=0, width=6)
    return page


def sure_of(labels):
    return frames(labels, floor=1e-6)


def unsure_between_1_and_12():
    probabilities = sure_of([0, 2, 2, 0, 3, 0])
    probabilities[4] = 0.0
    probabilities[4, [sequence.BLANK, 3]] = 0.45, 0.55
    return probabilities


def test_a_sure_reading_takes_one_look(two_strokes):
    looks = Looks(sure_of([0, 2, 0, 3, 0]))
    reading = sequence.read_number(two_strokes, looks, 0.5)
    assert reading.text == "12" and reading.confidence > sequence.SECOND_LOOK
    assert len(looks.inputs) == 1


def test_an_unsure_reading_takes_a_second_look_at_a_smaller_strip(two_strokes):
    looks = Looks(unsure_between_1_and_12(), sure_of([0, 2, 2, 0]))
    reading = sequence.read_number(two_strokes, looks, 0.5)
    # "12" is likelier at first (0.55), but "1" is far likelier under both looks together.
    assert reading.text == "1" and reading.confidence > 0.99
    first, second = (np.flatnonzero(strip.max(axis=1) > 0.5) for strip in looks.inputs)
    assert len(second) == pytest.approx(sequence.SECOND_LOOK_SHARE * len(first), abs=1)


def test_a_second_look_that_agrees_less_keeps_the_first_reading(two_strokes):
    second = sure_of([0, 2, 2, 0, 3, 0])
    second[1:3] = 0.0
    second[1:3, [sequence.BLANK, 2]] = 0.6, 0.4  # it reads "2", which the first look rules out
    looks = Looks(unsure_between_1_and_12(), second)
    reading = sequence.read_number(two_strokes, looks, 0.5)
    assert len(looks.inputs) == 2
    assert reading.text == "12" and reading.confidence == pytest.approx(0.55, abs=0.01)
