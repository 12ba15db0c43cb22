"""The evaluation set of images that are not one digit: what the service must answer is_digit=false.

Generators of its own, none of which training uses (modelTrain/synthetic.py draws its own): letters
and symbols in fonts training never sees (Liberation, FreeFont, Comic Neue), capitals drawn as pen
strokes, doodles (faces, stars, houses, spirals, suns, hearts), scribbles, hatching, photos (the
sample pictures matplotlib ships), noise, Fashion-MNIST (Debian's dataset-fashion-mnist, its test
split), and several MNIST *test* digits side by side. Each comes as a user sends it: on paper,
photographed, on a canvas, in coloured pen (renders.py).
"""
import gzip
import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modelTrain.evalsets.renders import STYLES, image_bytes, render
from modelTrain.synthetic import CONFUSABLE

KINDS = ("font_letters", "stroke_letters", "symbols", "doodles", "scribbles", "hatching", "photos", "noise",
         "fashion_mnist")
FONT_GLOBS = ("/usr/share/fonts/truetype/liberation*/*.ttf", "/usr/share/fonts/truetype/freefont/*.ttf",
              "/usr/share/fonts/opentype/comic-neue/*.otf")
LETTERS = "".join(c for c in "ACEFHKMNPRUVWXYacdefhkmnprtuvwxyz" if c not in CONFUSABLE)
SYMBOLS = "#%&@+=*$?<>{}§€£"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"
SIDE = 112  # drawings are made on a square this size, white ink on black, then rendered like digits

# Capitals as a person draws them: strokes through points of a unit box (x right, y down).
STROKE_LETTERS = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "R": [[(0, 1), (0, 0), (0.8, 0), (1, 0.2), (0.8, 0.45), (0, 0.45)], [(0.4, 0.45), (1, 1)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.4), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
}


def eval_fonts():
    fonts = sorted(f for pattern in FONT_GLOBS for f in Path("/").glob(pattern.lstrip("/")))
    assert fonts, f"no evaluation fonts ({FONT_GLOBS}): apt-get install fonts-liberation fonts-freefont-ttf fonts-comic-neue"
    return fonts


def _canvas():
    image = Image.new("L", (SIDE, SIDE), 0)
    return image, ImageDraw.Draw(image)


def _set(text, rng):
    fonts = eval_fonts()
    image, draw = _canvas()
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), 72)
    draw.text((SIDE / 2, SIDE / 2), text, fill=255, font=font, anchor="mm")
    return image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR)


def _pen(rng):
    return int(rng.integers(5, 11))


def _jitter(points, rng, amount=0.05, box=(16, 16, 80, 80)):
    x0, y0, w, h = box
    return [(x0 + w * (x + rng.uniform(-amount, amount)), y0 + h * (y + rng.uniform(-amount, amount)))
            for x, y in points]


def stroke_letter(rng):
    image, draw = _canvas()
    width = rng.uniform(48, 80)
    box = (SIDE / 2 - width / 2, 16, width, 80)
    pen = _pen(rng)
    for stroke in STROKE_LETTERS[list(STROKE_LETTERS)[rng.integers(len(STROKE_LETTERS))]]:
        draw.line(_jitter(stroke, rng, box=box), fill=255, width=pen, joint="curve")
    return image.transform(image.size, Image.Transform.AFFINE, (1, rng.uniform(-0.25, 0.25), 0, 0, 1, 0),
                           resample=Image.Resampling.BILINEAR)


def _circle(draw, centre, radius, pen, fill=None):
    x, y = centre
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=255, width=pen, fill=fill)


def doodle(rng):
    image, draw = _canvas()
    pen = _pen(rng)
    kind = rng.integers(6)
    c = SIDE / 2
    if kind == 0:  # a smiley
        _circle(draw, (c, c), 44, pen)
        for dx in (-16, 16):
            _circle(draw, (c + dx, c - 12), 5, pen, fill=255)
        draw.arc((c - 24, c - 10, c + 24, c + 26), 20, 160, fill=255, width=pen)
    elif kind == 1:  # a five-pointed star in one stroke
        angles = -np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        draw.line([(c + 46 * np.cos(a), c + 46 * np.sin(a)) for a in angles], fill=255, width=pen, joint="curve")
    elif kind == 2:  # a house
        draw.rectangle((24, 52, 88, 100), outline=255, width=pen)
        draw.line([(18, 56), (56, 14), (94, 56)], fill=255, width=pen, joint="curve")
        draw.rectangle((48, 72, 64, 100), outline=255, width=pen)
    elif kind == 3:  # a spiral
        t = np.linspace(0, rng.uniform(4, 8) * np.pi, 120)
        r = 4 + 40 * t / t[-1]
        draw.line([(c + ri * np.cos(ti), c + ri * np.sin(ti)) for ri, ti in zip(r, t)], fill=255, width=pen)
    elif kind == 4:  # a sun
        _circle(draw, (c, c), 20, pen)
        for a in np.arange(8) * np.pi / 4:
            draw.line([(c + 28 * np.cos(a), c + 28 * np.sin(a)), (c + 50 * np.cos(a), c + 50 * np.sin(a))],
                      fill=255, width=pen)
    else:  # a heart
        t = np.linspace(0, 2 * np.pi, 100)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        draw.line([(c + 2.6 * xi, c - 2.6 * yi) for xi, yi in zip(x, y)], fill=255, width=pen)
    return image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR)


def scribble(rng):
    """A pen that wanders with momentum: a tangle, crossing itself."""
    image, draw = _canvas()
    position, velocity = np.array([SIDE / 2, SIDE / 2]), rng.normal(0, 4, 2)
    path = []
    for _ in range(int(rng.integers(80, 160))):
        velocity = 0.7 * velocity + rng.normal(0, 4, 2)
        position = np.clip(position + velocity, 10, SIDE - 10)
        path.append(tuple(position))
    draw.line(path, fill=255, width=_pen(rng), joint="curve")
    return image


def hatch(rng):
    """Shading drawn by hand: 5-10 roughly parallel strokes, sometimes crossed."""
    image, draw = _canvas()
    pen = max(3, _pen(rng) - 3)
    for angle in [rng.uniform(0, np.pi)] + ([rng.uniform(0, np.pi)] if rng.random() < 0.5 else []):
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        count = int(rng.integers(5, 11))
        for offset in np.linspace(-40, 40, count):
            middle = SIDE / 2 + offset * normal + rng.normal(0, 2, 2)
            draw.line([tuple(middle - 40 * direction), tuple(middle + 40 * direction)], fill=255, width=pen)
    return image


def fashion_mnist():
    """Fashion-MNIST's 10,000 test images (uint8, 28x28, bright on black like MNIST)."""
    with gzip.open(FASHION_MNIST) as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def _photo_sources():
    hopper = Image.open(SAMPLE_DATA / "grace_hopper.jpg").convert("RGB")
    pack = Image.open(SAMPLE_DATA / "Minduka_Present_Blue_Pack.png").convert("RGB")
    with np.load(SAMPLE_DATA / "topobathy.npz") as data:
        terrain = data["topo"] if "topo" in data.files else data[data.files[0]]
    terrain = (terrain - terrain.min()) / max(np.ptp(terrain), 1e-9)
    return [hopper, pack, Image.fromarray((terrain * 255).astype(np.uint8), "L").convert("RGB")]


def photo(rng, sources):
    """A random part of a real photo (a face, a parcel, a relief map), at a random size, as a JPEG."""
    source = sources[rng.integers(len(sources))]
    w, h = source.size
    side = int(min(w, h) * rng.uniform(0.2, 0.9))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    crop = source.crop((x, y, x + side, y + side)).resize((int(rng.integers(64, 400)),) * 2)
    return image_bytes(crop, "JPEG", quality=int(rng.integers(60, 95)))


def noise(rng):
    """A picture of nothing: sensor noise on grey, coloured static or salt and pepper."""
    side = int(rng.integers(48, 300))
    kind = rng.integers(3)
    if kind == 0:
        pixels = rng.normal(rng.uniform(80, 200), rng.uniform(15, 60), (side, side, 1)).repeat(3, axis=2)
    elif kind == 1:
        pixels = rng.uniform(0, 255, (side, side, 3))
    else:
        pixels = np.full((side, side, 3), 235.0)
        specks = rng.random((side, side)) < rng.uniform(0.01, 0.2)
        pixels[specks] = 20
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image_bytes(picture, "JPEG", quality=85) if rng.random() < 0.5 else image_bytes(picture)


def several_digits(x, rng):
    """2-4 MNIST test digits side by side with gaps, as one image: is_digit=false, reason several_digits."""
    count = int(rng.integers(2, 5))
    strip = np.zeros((28, 28 * count + 8 * (count - 1)), np.uint8)
    for k, index in enumerate(rng.integers(len(x), size=count)):
        left = k * 36 + int(rng.integers(-3, 4)) + 3
        left = min(max(left, 0), strip.shape[1] - 28)
        strip[:, left:left + 28] = np.maximum(strip[:, left:left + 28], x[index])
    side = strip.shape[1]
    square = np.zeros((side, side), np.uint8)  # renders.render scales a square; the strip sits in the middle
    top = (side - 28) // 2
    square[top:top + 28] = strip
    return render(square, STYLES[rng.integers(len(STYLES))], rng)


def non_digit(kind, rng, photo_sources=None, fashion=None):
    """One encoded image of `kind` (one of KINDS), in a random user style."""
    if kind == "photos":
        return photo(rng, photo_sources or _photo_sources())
    if kind == "noise":
        return noise(rng)
    if kind == "fashion_mnist":
        images = fashion if fashion is not None else fashion_mnist()
        drawing = images[rng.integers(len(images))]
    else:
        make = {"font_letters": lambda: _set(LETTERS[rng.integers(len(LETTERS))], rng),
                "symbols": lambda: _set(SYMBOLS[rng.integers(len(SYMBOLS))], rng),
                "stroke_letters": lambda: stroke_letter(rng), "doodles": lambda: doodle(rng),
                "scribbles": lambda: scribble(rng), "hatching": lambda: hatch(rng)}[kind]
        drawing = np.asarray(make())
    return render(drawing, STYLES[rng.integers(len(STYLES))], rng)


def evaluation_set(x_test, per_kind, seed=2026):
    """{kind: [encoded image, ...]} for every non-digit kind and "several_digits", `per_kind` each."""
    rng = np.random.default_rng(seed)
    sources, fashion = _photo_sources(), fashion_mnist()
    images = {kind: [non_digit(kind, rng, sources, fashion) for _ in range(per_kind)] for kind in KINDS}
    images["several_digits"] = [several_digits(x_test, rng) for _ in range(per_kind)]
    return images


def preview(images, path, columns=16):
    """A contact sheet of encoded images, for a person to look at."""
    tiles = [Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64)) for data in images]
    sheet = Image.new("RGB", (64 * columns, 64 * -(-len(tiles) // columns)), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (64 * (i % columns), 64 * (i // columns)))
    sheet.save(path)
