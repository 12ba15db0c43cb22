"""preprocess_image gives bit-identical answers after changes made only for speed.

A few thousand varied uploads (MNIST test digits as PNG, JPEG, RGB, RGBA, LA, palette and small
sizes, the user-style renders, digits on printed backgrounds, drawing canvases, blank and faint
images) go through preprocess_image; the sha256 over every 28x28 output (or every error's status
and code) must equal the digest the code gave before those changes. A change that is meant to move
answers (better preprocessing) updates DIGEST in the same commit, with the reason.

DIGEST was last computed after line removal learnt that a printed line ends at a line across it or
at the image's edge (preprocess._anchored), with:
    MNIST_NPZ=/work/shared/data/mnist.npz .venv/bin/python -m tests.flaskService.test_preprocess_identical
"""
import hashlib

import numpy as np
from PIL import Image, ImageDraw

from flaskService.digits import preprocess
from flaskService.digits.errors import ImageError
from modelTrain.evalsets.renders import KINDS, MEDIA, STYLES, render, render_background
from tests.helpers import image_bytes

DIGEST = "262747314cdb4ff015311c46d54cda402749d14a6ad9cb2376083c2b97ca6196"


def uploads(digits):
    """(name, bytes) of every upload the digest covers, the same on every run (fixed seeds)."""
    rng = np.random.default_rng(17)
    for i, digit in enumerate(digits[:1500]):  # the MNIST-sized uploads /predict mostly gets
        yield f"mnist {i}", image_bytes(digit)
    for i, digit in enumerate(digits[1500:1800]):
        variant = i % 10
        if variant == 0:
            yield f"inverted {i}", image_bytes(255 - digit)
        elif variant == 1:
            yield f"jpeg {i}", image_bytes(digit, "JPEG", quality=int(rng.integers(60, 95)))
        elif variant == 2:
            yield f"rgb {i}", image_bytes(np.dstack([digit, digit // 2, 255 - digit]))
        elif variant == 3:  # ink in the opacity, as a drawing canvas exports it
            yield f"rgba canvas {i}", image_bytes(np.dstack([np.zeros_like(digit)] * 3 + [digit]))
        elif variant == 4:
            yield f"la {i}", image_bytes(Image.fromarray(np.dstack([255 - digit, digit]), "LA"))
        elif variant == 5:
            yield f"palette {i}", image_bytes(Image.fromarray(digit).convert("P"), "GIF")
        elif variant == 6:  # a digit cut out tight and blown up, faint paper noise
            noisy = np.clip(digit.astype(np.int16) + rng.integers(-6, 7, digit.shape), 0, 255).astype(np.uint8)
            yield f"noisy {i}", image_bytes(noisy)
        elif variant == 7:  # small sizes on either side of DENOISE_MIN_SIDE and the 128x128 frame shortcut
            side = int(rng.choice([14, 20, 40, 63, 64, 90, 128, 129]))
            yield f"sized {side} {i}", image_bytes(Image.fromarray(255 - digit).resize((side, side)))
        elif variant == 8:
            yield f"off-centre {i}", image_bytes(np.roll(digit, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), (0, 1)))
        else:  # faint ink: near MIN_CONTRAST, some blank
            yield f"faint {i}", image_bytes((digit * rng.uniform(0.05, 0.3)).astype(np.uint8))
    for i, digit in enumerate(digits[1800:2400]):
        yield f"render {i}", render(digit, STYLES[i % len(STYLES)], rng)
    combos = [(kind, medium) for kind in KINDS for medium in MEDIA]
    for i, digit in enumerate(digits[2400:2820]):
        kind, medium = combos[i % len(combos)]
        yield f"background {kind} {medium} {i}", render_background(digit, kind, medium, rng)
    for i, digit in enumerate(digits[2820:2900]):  # strokes drawn on a 280x280 canvas, as the page does
        canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        ys, xs = np.nonzero(digit > 128)
        points = list(zip((xs * 10 + int(rng.integers(0, 40))).tolist(), (ys * 10).tolist()))
        ImageDraw.Draw(canvas).line(points[::3], fill=(0, 0, 0, 255), width=int(rng.integers(8, 24)))
        yield f"canvas {i}", image_bytes(canvas)
    for level in (0, 30, 255):  # blank pages
        yield f"blank {level}", image_bytes(np.full((28, 28), level, np.uint8))


def digest(digits):
    """sha256 over each upload's name and its 28x28 output (or error status and code)."""
    sha = hashlib.sha256()
    for name, data in uploads(digits):
        try:
            out = preprocess.preprocess_image(data)
            sha.update(f"{name}:ok:".encode() + out.astype(np.float32).tobytes())
        except ImageError as e:
            sha.update(f"{name}:{e.status}:{e.code}".encode())
    return sha.hexdigest()


def test_outputs_are_those_of_the_code_before_the_speed_work(mnist):
    assert digest(mnist["x_test"]) == DIGEST


if __name__ == "__main__":
    import os
    print(digest(np.load(os.environ["MNIST_NPZ"])["x_test"]))
