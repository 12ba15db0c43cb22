"""MNIST digits re-rendered the way people actually send them: on paper, photographed, on a
transparent canvas, in coloured pen, noisy, off-centre, 3-10x larger and slightly rotated."""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES = ("paper_png", "photo_jpeg", "canvas_png", "coloured_pen", "noisy_scan", "white_on_black_jpeg")
PENS = ((20, 40, 160), (180, 20, 30), (20, 120, 40), (60, 60, 60))


def image_bytes(picture, fmt="PNG", **options):
    """The bytes of an image file: `picture` (a PIL image, or an array as Image.fromarray reads it)
    saved as `fmt`, with Image.save's format options (quality=, transparency=, save_all=, ...)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def render(digit, style, rng):
    """A 28x28 uint8 MNIST digit -> encoded image bytes in the given style."""
    scale = rng.uniform(3, 10)
    size = int(28 * scale)
    ink = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    ink = ink.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC)
    # A page larger than the digit, the digit anywhere on it (off-centre, as people draw).
    page_w, page_h = int(size * rng.uniform(1.2, 2.5)), int(size * rng.uniform(1.2, 2.5))
    x, y = int(rng.integers(0, page_w - size + 1)), int(rng.integers(0, page_h - size + 1))
    mask = Image.new("L", (page_w, page_h), 0)
    mask.paste(ink, (x, y))
    return paint(mask, style, rng)


def paint(mask, style, rng):
    """An "L" image of ink (255 = full ink) the size of the page -> encoded image bytes in the given style."""
    page_w, page_h = mask.size
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0

    if style == "canvas_png":
        colour = PENS[rng.integers(len(PENS))]
        rgba = np.zeros((page_h, page_w, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = np.asarray(mask)
        return image_bytes(Image.fromarray(rgba, "RGBA"))
    if style == "white_on_black_jpeg":
        paper, pen = np.array([0, 0, 0]), np.array([255, 255, 255])
    elif style == "coloured_pen":
        paper, pen = np.array([250, 250, 245]), np.array(PENS[rng.integers(len(PENS))])
    else:
        paper, pen = np.array([rng.uniform(215, 255)] * 3) * np.array([1, 0.98, 0.93]), np.array([25, 25, 35])
    picture = paper * (1 - alpha) + pen * alpha
    if style in ("photo_jpeg", "noisy_scan"):
        # Uneven lighting across the page and sensor noise.
        ys, xs = np.mgrid[0:page_h, 0:page_w]
        light = 1 - 0.25 * (xs / page_w) * rng.uniform(0.3, 1) - 0.15 * (ys / page_h) * rng.uniform(0.3, 1)
        picture = picture * light[..., None] + rng.normal(0, 8 if style == "noisy_scan" else 4, picture.shape)
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    if style == "photo_jpeg":
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return image_bytes(image, "JPEG", quality=80) if style.endswith("jpeg") else image_bytes(image)


# Backgrounds digits are written on (issue 14): each kind comes as a clean PNG page (a tablet app's
# template), a photo (uneven light, noise, slight blur, JPEG) or a transparent canvas whose template
# lines are drawn in their own colour.
KINDS = ("box", "comb", "ruled", "squared", "tianzige", "low_resolution", "tight_crop")
MEDIA = ("page_png", "photo_jpeg", "canvas_png")
LINE_COLOURS = {"blue": (90, 130, 210), "grey": (150, 150, 150), "red": (215, 70, 70),
                "green": (70, 165, 100), "black": (35, 35, 35)}
INKS = ((25, 25, 35), (20, 40, 160), (40, 40, 40))  # dark pens: black, blue ballpoint, pencil-grey


def render_background(digit, kind, medium, rng):
    """A 28x28 uint8 MNIST digit -> encoded image bytes: written on a background of this kind."""
    if kind == "low_resolution":
        return _low_resolution_scan(digit, rng)
    scale = rng.uniform(3, 8)
    size = int(28 * scale)
    ink = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    ink = np.asarray(ink.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BICUBIC), np.float32) / 255
    # the digit's own box inside its 28x28 field (MNIST leaves a 4 px margin)
    rows, cols = np.flatnonzero(ink.max(1) > 0.3), np.flatnonzero(ink.max(0) > 0.3)
    digit_box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) if len(rows) else (0, 0, size, size)  # or an empty form
    if kind == "tight_crop":
        page_w, page_h, (x, y) = digit_box[2] - digit_box[0], digit_box[3] - digit_box[1], (-digit_box[0], -digit_box[1])
        lines = Image.new("L", (page_w, page_h), 0)
    else:
        page_w, page_h, (x, y), lines = _template(kind, size, digit_box, scale, rng)
    ink_layer = np.zeros((page_h, page_w), np.float32)
    _paste(ink_layer, ink, x, y)
    colour = LINE_COLOURS[list(LINE_COLOURS)[rng.integers(len(LINE_COLOURS))]]
    if kind == "tianzige" and rng.uniform() < 0.7:
        colour = LINE_COLOURS["red"]  # the usual practice-book red
    pen = np.array(INKS[rng.integers(len(INKS))], np.float32)
    line_alpha = np.asarray(lines, np.float32)[..., None] / 255
    ink_alpha = ink_layer[..., None]
    medium = "page_png" if kind == "tight_crop" and medium == "canvas_png" else medium
    if medium == "canvas_png":
        # Pen over the template, both opaque where they are drawn, the rest see-through.
        rgb = np.array(colour, np.float32) * (1 - ink_alpha) + pen * ink_alpha
        alpha = np.maximum(line_alpha, ink_alpha)[..., 0]
        rgba = np.dstack([rgb, alpha * 255]).round().astype(np.uint8)
        return image_bytes(Image.fromarray(rgba, "RGBA"))
    paper = np.array([rng.uniform(225, 255)] * 3) * np.array([1, 0.985, 0.95])
    picture = paper * (1 - line_alpha) + np.array(colour) * line_alpha
    picture = picture * (1 - ink_alpha) + pen * ink_alpha  # ink lies on the printed lines
    if medium == "page_png":
        return image_bytes(Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB"))
    ys, xs = np.mgrid[0:page_h, 0:page_w]
    light = 1 - 0.25 * (xs / page_w) * rng.uniform(0.2, 1) - 0.15 * (ys / page_h) * rng.uniform(0.2, 1)
    picture = picture * light[..., None] + rng.normal(0, 4, picture.shape)
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    return image_bytes(image, "JPEG", quality=int(rng.integers(70, 92)))


def _template(kind, size, digit_box, scale, rng):
    """(page width, height, where the digit's 28x28 field goes, the printed lines as an L image)."""
    left, top, right, bottom = digit_box
    width = max(1, int(round(rng.uniform(0.15, 0.7) * scale)))  # 1 px up to a thick printed rule
    if kind in ("ruled", "squared"):
        spacing = rng.uniform(0.45, 0.8) * size if kind == "ruled" else rng.uniform(0.3, 0.6) * size
        page_w, page_h = int(size * rng.uniform(1.2, 2.0)), int(size * rng.uniform(1.2, 2.0))
        lines = Image.new("L", (page_w, page_h), 0)
        draw = ImageDraw.Draw(lines)
        offset = rng.uniform(0, spacing)
        for y in np.arange(offset, page_h, spacing):
            draw.rectangle([0, int(y), page_w, int(y) + width - 1], fill=255)
        if kind == "squared":
            for x in np.arange(rng.uniform(0, spacing), page_w, spacing):
                draw.rectangle([int(x), 0, int(x) + width - 1, page_h], fill=255)
        x, y = int(rng.integers(0, page_w - size + 1)), int(rng.integers(0, page_h - size + 1))
        return page_w, page_h, (x, y), lines
    # A row of cells (form boxes, a comb, practice squares); the digit sits in one of them.
    margin = rng.uniform(0.0, 0.25) * size  # 0: the digit touches (or crosses) its box
    cell_w = int(right - left + 2 * margin + width)
    cell_h = int(bottom - top + 2 * margin + width)
    if kind == "tianzige":
        cell_w = cell_h = max(cell_w, cell_h)
    else:  # printed cells are as wide as the form makes them, not as narrow as a 1
        cell_w = max(cell_w, int(cell_h * rng.uniform(0.7, 1.1)))
    pad = int(rng.uniform(0.05, 0.6) * cell_w)  # how much of the neighbouring cells the image shows
    page_w, page_h = cell_w + 2 * pad, cell_h + int(2 * rng.uniform(0.05, 0.4) * cell_h)
    cell_left, cell_top = pad, (page_h - cell_h) // 2
    lines = Image.new("L", (page_w, page_h), 0)
    draw = ImageDraw.Draw(lines)
    for offset in (-cell_w, 0, cell_w):  # this cell and its neighbours
        x0, x1 = cell_left + offset, cell_left + offset + cell_w
        if kind in ("box", "tianzige"):
            draw.rectangle([x0, cell_top, x1, cell_top + cell_h], outline=255, width=width)
        if kind == "tianzige":  # a dashed cross through the middle, thinner than the square
            mid_x, mid_y, thin = (x0 + x1) // 2, cell_top + cell_h // 2, max(1, width // 2)
            dashed_line(draw, (x0, mid_y), cell_w, thin, cell_w, horizontal=True)
            dashed_line(draw, (mid_x, cell_top), cell_w, thin, cell_w, horizontal=False)
        if kind == "comb":  # an underline with ticks between the cells
            base = cell_top + cell_h
            tick = int(rng.uniform(0.2, 0.45) * cell_h)
            draw.rectangle([x0 - cell_w, base, x1 + cell_w, base + width - 1], fill=255)
            draw.rectangle([x0, base - tick, x0 + width - 1, base], fill=255)
    # the digit's box inside its cell, where the cell's margin puts it
    x = int(cell_left + (cell_w - (right - left)) / 2 - left + rng.uniform(-0.5, 0.5) * margin)
    y = int(cell_top + (cell_h - (bottom - top)) / 2 - top + rng.uniform(-0.5, 0.5) * margin)
    return page_w, page_h, (x, y), lines


def dashed_line(draw, start, length, thin, cell, horizontal):
    """A printed dashed line as a 田字格 cell `cell` px wide has it (dashes a 16th of the cell, gaps a
    24th, `thin` px thick, lighter than the solid lines), from `start` (x, y) on for `length` px."""
    dash, gap = max(2, cell // 16), max(2, cell // 24)
    x, y = start
    for t in range(0, length, dash + gap):
        box = [x + t, y, x + t + dash - 1, y + thin - 1] if horizontal else [x, y + t, x + thin - 1, y + t + dash - 1]
        draw.rectangle(box, fill=160)


def _paste(layer, ink, x, y):
    """Lay `ink` on `layer` with its top-left corner at (x, y), clipped to the layer."""
    h, w = ink.shape
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + h, layer.shape[0]), min(x + w, layer.shape[1])
    layer[top:bottom, left:right] = np.maximum(layer[top:bottom, left:right],
                                               ink[top - y:bottom - y, left - x:right - x])


def _low_resolution_scan(digit, rng):
    """An old scan: the digit cut out tight (ink touching the edges), 8-16 px tall on grey paper,
    blown up 6-20x by whatever the viewer used, sometimes saved as JPEG."""
    rows, cols = np.flatnonzero(digit.max(1) > 40), np.flatnonzero(digit.max(0) > 40)
    crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32) / 255
    small_h = int(rng.integers(8, 17))
    small_w = max(3, int(round(small_h * crop.shape[1] / crop.shape[0])))
    small = np.asarray(Image.fromarray(crop, "F").resize((small_w, small_h), Image.Resampling.BOX), np.float32)
    paper, ink = rng.uniform(150, 225), rng.uniform(20, 90)
    grey = paper * (1 - np.clip(small, 0, 1)) + ink * np.clip(small, 0, 1) + rng.normal(0, 3, small.shape)
    image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")
    factor = rng.uniform(6, 20)
    resample = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)[rng.integers(3)]
    image = image.resize((int(small_w * factor), int(small_h * factor)), resample)
    return image_bytes(image, "JPEG", quality=85) if rng.uniform() < 0.5 else image_bytes(image)
