"""Readiness means "answers right", not just "is up": before a worker reports ready it draws a few
digits the way a person would (dark pen, light paper, off-centre), encodes them as PNG and sends them
through the same decode -> preprocess -> predict path as a request. The number model reads the same
strokes written side by side as one number."""
import io

import numpy as np
from PIL import Image, ImageDraw

from .model import NUM_CLASSES, NUMBERS
from .preprocess import decode_image, preprocess_image

# Strokes on a 100x100 page, chosen to be unambiguous for any decent MNIST model.
DIGITS = {
    0: [[(50, 12), (32, 20), (26, 50), (32, 80), (50, 88), (68, 80), (74, 50), (68, 20), (50, 12)]],
    1: [[(52, 10), (50, 50), (48, 90)]],
    7: [[(25, 15), (75, 15), (55, 50), (42, 90)]],
}


def drawn_digit(strokes, width=9):
    return drawn_number([strokes], width)


def drawn_number(digits, width=9):
    """Each digit's strokes in its own 100 px column of one page, off-centre on purpose."""
    page = Image.new("RGB", (40 + 100 * len(digits), 120), "white")
    draw = ImageDraw.Draw(page)
    for column, strokes in enumerate(digits):
        for stroke in strokes:
            points = [(x + 30 + 100 * column, y + 10) for x, y in stroke]
            draw.line(points, fill="navy", width=width, joint="curve")
    buffer = io.BytesIO()
    page.save(buffer, "PNG")
    return buffer.getvalue()


def run(predictor):
    """None if the model reads every drawn digit right (the number model: the drawn number), else a
    sentence saying what it read."""
    if predictor.contract == NUMBERS:
        return _run_number(predictor)
    arrays = np.stack([preprocess_image(drawn_digit(strokes)) for strokes in DIGITS.values()])
    read = predictor.predict(arrays)[:, :NUM_CLASSES].argmax(axis=1)
    wrong = [f"{d} as {r}" for d, r in zip(DIGITS, read) if d != r]
    return f"self-check failed: the model read {', '.join(wrong)}" if wrong else None


def _run_number(predictor):
    from .errors import ImageError
    from .sequence import read_number

    expected = "".join(str(d) for d in DIGITS)
    try:
        text = read_number(decode_image(drawn_number(list(DIGITS.values()))), predictor.predict, 0.0).text
    except ImageError as e:
        text = f"nothing ({e.code})"
    return None if text == expected else f"self-check failed: the number model read {expected} as {text}"
