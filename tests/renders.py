"""MNIST digits re-rendered the way people actually send them: on paper, photographed, on a
transparent canvas, in coloured pen, noisy, off-centre, 3-10x larger and slightly rotated."""
import numpy as np
from PIL import Image, ImageFilter

from tests.conftest import image_bytes

STYLES = ("paper_png", "photo_jpeg", "canvas_png", "coloured_pen", "noisy_scan", "white_on_black_jpeg")
PENS = ((20, 40, 160), (180, 20, 30), (20, 120, 40), (60, 60, 60))


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
