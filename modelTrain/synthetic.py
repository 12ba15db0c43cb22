"""
Title: Images that are not one digit, made in code
Description: The training examples of the classifier's two extra classes, "not a digit" and
"several digits", so that it can say so instead of naming the nearest digit (outlier exposure).

Nothing here is downloaded: letters and symbols are set in the fonts Debian installs (DejaVu and
the URW base 35), strokes, shapes, figures, silhouettes, hatching and noise are drawn with Pillow
and numpy, and several
digits are MNIST *training* digits side by side. Every image ends as the service makes its model
input: ink (white on black, any size) through `flaskService.digits.preprocess.centre_like_mnist`.

The evaluation set (modelTrain/evalsets/nondigits.py) has generators of its own, other fonts
and kinds of drawing that nothing here makes: the figures it gives are for things training never saw.
"""

import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from flaskService.digits.errors import ImageError
from flaskService.digits.model import NOT_A_DIGIT, OUTPUT_WIDTHS, SEVERAL_DIGITS  # noqa: F401  (the classes made here)
from flaskService.digits.preprocess import centre_like_mnist

CLASSES = OUTPUT_WIDTHS[-1]  # ten digits, not a digit, several digits

# Letters that handwriting makes the same shape as a digit (O and 0, l and 1, S and 5, Z and 2,
# B and 8, b and 6, g and q and 9), and the single strokes a 1 is made of (| / \\ ( ) [ ] !), are
# left out: calling them "not a digit" would teach the model to turn away real digits.
CONFUSABLE = set("OoQDIiJjlLSsZzBbGgqTt")
CHARACTERS = "".join(c for c in string.ascii_letters + "#%&@+=?*$<>{}^~§€£¥" if c not in CONFUSABLE)

# Training fonts only; the evaluation set uses Liberation, FreeFont and Comic Neue.
FONT_GLOBS = ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", "/usr/share/fonts/opentype/urw-base35/*.otf")
CANVAS = 64  # strokes and shapes are drawn on a square this size, then cut to their ink


def training_fonts():
    fonts = sorted(f for pattern in FONT_GLOBS for f in Path("/").glob(pattern.lstrip("/"))
                   if "Symbol" not in f.name and "D050000L" not in f.name and "Math" not in f.name)
    if not fonts:
        raise RuntimeError(f"no training fonts found ({', '.join(FONT_GLOBS)}): "
                           "apt-get install fonts-dejavu-core fonts-urw-base35")
    return fonts


def glyph(rng, fonts):
    """A letter or symbol set in a random training font, at a slant, sometimes emboldened."""
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), 48)
    character = CHARACTERS[rng.integers(len(CHARACTERS))]
    image = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(image).text((48, 48), character, fill=255, font=font, anchor="mm",
                               stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
    return image.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR)


def _points(rng, count, margin=6):
    return [tuple(rng.uniform(margin, CANVAS - margin, 2)) for _ in range(count)]


def strokes(rng):
    """Two to four free pen strokes: smooth curves and zig-zags, a scribble. (One stroke alone can
    be a 1 or a 7, so it is never drawn alone.)"""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 5)):
        if rng.random() < 0.5:  # a quadratic Bezier through random control points
            a, b, c = (np.array(p) for p in _points(rng, 3))
            t = np.linspace(0, 1, 24)[:, None]
            line = [tuple(p) for p in (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t ** 2 * c]
        else:
            line = _points(rng, int(rng.integers(4, 9)))
        draw.line(line, fill=255, width=int(rng.integers(2, 7)), joint="curve")
    return image


def shapes(rng):
    """Geometric figures, outlined or filled, two or three of them: circles, boxes, triangles, stars.
    (One ellipse or box alone is how many people write a 0.)"""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 4)):
        (x0, y0), (x1, y1) = sorted(_points(rng, 2))
        box = (x0, min(y0, y1), max(x1, x0 + 8), max(y0, y1, min(y0, y1) + 8))
        width = int(rng.integers(2, 6))
        fill = 255 if rng.random() < 0.25 else None
        kind = rng.integers(4)
        if kind == 0:
            draw.ellipse(box, outline=255, fill=fill, width=width)
        elif kind == 1:
            draw.rectangle(box, outline=255, fill=fill, width=width)
        elif kind == 2:
            draw.polygon(_points(rng, 3), outline=255, fill=fill, width=width)
        else:
            centre, radius = np.array(_points(rng, 1, margin=20)[0]), rng.uniform(10, 24)
            spikes = int(rng.integers(4, 9))
            angles = np.linspace(0, 2 * np.pi, 2 * spikes, endpoint=False) + rng.uniform(0, np.pi)
            radii = np.where(np.arange(2 * spikes) % 2, radius * rng.uniform(0.3, 0.6), radius)
            star = [tuple(centre + r * np.array([np.cos(a), np.sin(a)])) for a, r in zip(angles, radii)]
            draw.polygon(star, outline=255, fill=fill, width=width)
    return image


def figures(rng):
    """What people draw instead of a digit: a loop with marks inside (a face) or rays around it (a
    sun, a flower), a heart, a spiral, or outlines nested in each other."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(2, 5))
    centre = CANVAS / 2 + rng.uniform(-4, 4, 2)
    kind = rng.integers(4)
    if kind == 3:  # a heart: two round lobes, lines from their outer sides down to a point
        radius = rng.uniform(8, 13)
        tip = (centre[0], centre[1] + rng.uniform(1.6, 2.4) * radius)
        for side, (start, end) in ((-1, (135, 360)), (1, (180, 405))):
            x, y = centre[0] + side * radius, centre[1] - 0.4 * radius
            draw.arc((x - radius, y - radius, x + radius, y + radius), start, end, fill=255, width=width)
            outer = np.radians(start if side < 0 else end)
            draw.line([(x + radius * np.cos(outer), y + radius * np.sin(outer)), tip], fill=255, width=width)
    elif kind == 0:
        radii = rng.uniform(12, 24, 2)
        draw.ellipse((*(centre - radii), *(centre + radii)), outline=255, width=width)
        if rng.random() < 0.6:  # marks inside: dots, dashes, a curve
            for _ in range(rng.integers(2, 5)):
                point = centre + rng.uniform(-0.55, 0.55, 2) * radii
                if rng.random() < 0.5:
                    dot = rng.uniform(1.5, 3.5)
                    draw.ellipse((*(point - dot), *(point + dot)), fill=255)
                else:
                    draw.line([tuple(point), tuple(point + rng.uniform(-8, 8, 2))], fill=255, width=width)
        else:  # rays or petals around it
            count = int(rng.integers(5, 11))
            for angle in np.linspace(0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, np.pi):
                direction = np.array([np.cos(angle), np.sin(angle)])
                draw.line([tuple(centre + 1.15 * radii * direction), tuple(centre + 1.5 * radii * direction)],
                          fill=255, width=width)
    elif kind == 1:
        turns = rng.uniform(2, 4)
        t = np.linspace(0, turns * 2 * np.pi, int(turns * (24 if rng.random() < 0.7 else 4)) + 1)
        r = 2 + rng.uniform(20, 28) * t / t[-1]
        draw.line([tuple(centre + ri * np.array([np.cos(ti), np.sin(ti)])) for ri, ti in zip(r, t)],
                  fill=255, width=width, joint="curve")
    else:
        outer = rng.uniform(18, 28, 2)
        for share in np.linspace(1, rng.uniform(0.2, 0.45), int(rng.integers(2, 4))):
            box = (*(centre - share * outer), *(centre + share * outer))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, outline=255, width=width)
    return image


def hatching(rng):
    """Parallel lines at any angle, sometimes crossed by a second set: shading, a grid, a barcode."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    for _ in range(1 if rng.random() < 0.6 else 2):
        angle, spacing = rng.uniform(0, np.pi), rng.uniform(4, 12)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        width = int(rng.integers(1, 4))
        for offset in np.arange(-CANVAS, CANVAS, spacing):
            middle = CANVAS / 2 + offset * normal
            draw.line([tuple(middle - 2 * CANVAS * direction), tuple(middle + 2 * CANVAS * direction)],
                      fill=255, width=width)
    # Cut the pattern to a random patch, so it does not always fill the frame.
    (x0, y0), (x1, y1) = sorted(_points(rng, 2, margin=0))
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle((x0, min(y0, y1), max(x1, x0 + 16), max(y0, y1, min(y0, y1) + 16)), fill=255)
    return Image.composite(image, mask, mask) if rng.random() < 0.5 else image


def blob(rng):
    """A filled silhouette with texture inside: a thing photographed against a plain background (a
    bag, a garment, a stone), not a stroke."""
    count = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(10, 28, count) * rng.uniform(0.5, 1, 2)[:, None].repeat(count, axis=1)[rng.integers(2)]
    centre = CANVAS / 2 + rng.uniform(-4, 4, 2)
    outline = [tuple(centre + r * np.array([np.cos(a), np.sin(a)])) for a, r in zip(angles, radii)]
    mask = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2)))
    texture = rng.uniform(0.35, 1.0) + rng.normal(0, rng.uniform(0.02, 0.2), (CANVAS, CANVAS))
    pixels = np.clip(texture, 0, 1) * np.asarray(mask, np.float32)
    return Image.fromarray(pixels.astype(np.uint8), "L")


def noise(rng):
    """Sensor noise, speckle, smooth blotches or a texture: what a camera sends when there is no digit."""
    kind = rng.integers(4)
    if kind == 0:
        pixels = rng.random((CANVAS, CANVAS))
    elif kind == 1:
        pixels = (rng.random((CANVAS, CANVAS)) < rng.uniform(0.02, 0.3)).astype(float)
    elif kind == 2:
        coarse = rng.random(tuple(rng.integers(3, 12, 2)))
        pixels = np.asarray(Image.fromarray(coarse.astype(np.float32), "F").resize((CANVAS, CANVAS), Image.Resampling.BICUBIC))
    else:
        ys, xs = np.mgrid[:CANVAS, :CANVAS] / CANVAS
        pixels = np.sin(rng.uniform(5, 40) * xs + rng.uniform(0, 6)) * np.sin(rng.uniform(5, 40) * ys)
        pixels = pixels + rng.normal(0, 0.3, pixels.shape)
    pixels = np.clip(pixels, 0, 1) if pixels.max() <= 1 else pixels / pixels.max()
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "L")
    return image.filter(ImageFilter.BoxBlur(1)) if rng.random() < 0.3 else image


NON_DIGIT_KINDS = {"glyph": 0.3, "strokes": 0.15, "shapes": 0.12, "figures": 0.15, "blob": 0.08, "hatching": 0.1,
                   "noise": 0.1}


def non_digits(count, seed):
    """`count` (28, 28) model inputs of things that are not digits, in NON_DIGIT_KINDS' shares."""
    rng = np.random.default_rng(seed)
    fonts = training_fonts()
    makers = {"glyph": lambda: glyph(rng, fonts), "strokes": lambda: strokes(rng), "shapes": lambda: shapes(rng),
              "figures": lambda: figures(rng), "blob": lambda: blob(rng), "hatching": lambda: hatching(rng),
              "noise": lambda: noise(rng)}
    kinds = rng.choice(list(NON_DIGIT_KINDS), size=count, p=list(NON_DIGIT_KINDS.values()))
    return np.stack([_model_input(lambda: makers[kind]()) for kind in kinds])


def several_digits(x, y, count, seed):
    """`count` (28, 28) model inputs each holding 2-4 of the MNIST digits `x` (uint8 or [0, 1]) side by side,
    with gaps, touching or overlapping a little, sizes and baselines uneven: what a number becomes
    when it is squashed into one digit's box."""
    rng = np.random.default_rng(seed)
    x = x.reshape(-1, 28, 28).astype(np.float32)
    x = x / 255 if x.max() > 1 else x
    return np.stack([_model_input(lambda: _side_by_side(x, rng), thin=True) for _ in range(count)])


def _side_by_side(x, rng):
    digits = [x[i] for i in rng.integers(len(x), size=int(rng.choice([2, 2, 2, 3, 3, 4])))]
    height = 48
    pieces = []
    for digit in digits:
        size = int(28 * rng.uniform(0.8, 1.2))
        piece = np.asarray(Image.fromarray(digit, "F").resize((size, size), Image.Resampling.BILINEAR))
        columns = np.flatnonzero(piece.max(axis=0) > 0.1)  # trim MNIST's empty margin left and right
        pieces.append(piece[:, columns[0]:columns[-1] + 1] if len(columns) else piece)
    gaps = rng.integers(-5, 10, size=len(pieces))  # negative: the next digit overlaps this one
    width = sum(p.shape[1] for p in pieces) + int(max(gaps.sum(), 0)) + 8
    canvas = np.zeros((height, width), np.float32)
    left = 4
    for piece, gap in zip(pieces, gaps):
        top = int(rng.integers(0, height - piece.shape[0] + 1))
        region = canvas[top:top + piece.shape[0], left:left + piece.shape[1]]
        region[...] = np.maximum(region, piece[:, :region.shape[1]])
        left = max(0, left + piece.shape[1] + int(gap))
    return Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8), "L")


# Ink at least this wide for its height (and the other way round): anything thinner is a stroke
# that reads as a 1, whatever drew it.
MIN_ASPECT = 0.3


def _model_input(make, thin=False):
    """Draw until the result has ink (and, unless `thin` may be, is not a lone thin stroke), then
    centre it as the service does."""
    for _ in range(20):
        ink = np.asarray(make(), np.float32) / 255
        rows, columns = np.flatnonzero(ink.max(axis=1) > 0.2), np.flatnonzero(ink.max(axis=0) > 0.2)
        if not len(rows):
            continue
        height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
        if not thin and min(height, width) < MIN_ASPECT * max(height, width):
            continue
        try:
            return centre_like_mnist(ink)
        except ImageError:  # blank
            continue
    raise RuntimeError("twenty drawings in a row were blank or a lone stroke")
