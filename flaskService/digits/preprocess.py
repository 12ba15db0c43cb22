"""Image bytes -> the 28x28 array the model reads, made the way MNIST itself was made.

MNIST digits are white ink on black, their bounding box scaled (keeping aspect) to fit 20x20, then
placed in a 28x28 field so that the centre of mass sits at the centre. People send dark ink on
light paper, transparent canvases, coloured pens, photos with noise, digits in a corner, at any
size. Each step below undoes one of those differences; the result is float32 in [0, 1].

Pure functions: bytes or arrays in, numpy out. The service and the training script (for folders of
images) both import this module, so what the model is trained on is what it is served.
"""
import functools
import io
import warnings
from collections import namedtuple

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .model import INPUT_SHAPE

SIZE = INPUT_SHAPE[0]  # the model's input is SIZE x SIZE
PIXEL_SHAPES = ((SIZE, SIZE), (SIZE, SIZE, 1), (SIZE * SIZE,))  # shapes one image's pixels may come in
BOX = 20  # MNIST fits the digit's bounding box into BOX x BOX ...
CENTRE = 14.0  # ... and puts its centre of mass here (measured on the MNIST training set)

ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
DEFAULT_MAX_PIXELS = 16_000_000
MAX_ASPECT = 50  # longest side over shortest; a tall "1" on a wide strip of paper is under 10

# Photos are decoded at most this large on their longest side: the digit ends up 20 px tall, so
# more pixels only cost time and memory (a 16 MP RGBA image is 256 MB as float32).
WORK_SIZE = 640
# A sheet photographed on a darker ground fills at least SHEET_AREA of the image; its edge (shadow,
# curl) is SHEET_EDGE of its size; writing covers SHEET_WRITING (least, most) of the rest.
SHEET_AREA = 0.25
SHEET_EDGE = 0.03
SHEET_WRITING = (0.002, 0.15)
MIN_CONTRAST = 0.12  # below this, the image holds nothing that differs from its background
DENOISE_MIN_SIDE = 64  # below this, strokes are too thin to smooth (MNIST-sized input)
MIXED_FRAME = 60  # a frame whose 10th and 90th percentiles lie this far apart (of 255) holds ink
CLEAN_PAPER = 6  # the paper's own variation (90th percentile, of 255) up to which it needs no cleaning
TRIM = 0.002  # share of the ink mass cut from each side when finding the digit's extent
# Up to this many pixels (a 28x28 upload), numpy counts an image's levels from its bytes faster than
# Pillow's histogram, a list, becomes an array; and the bytes are at hand to cut the ink from.
NUMPY_COUNTS = 64 * 64

# Printed lines: runs at least LINE_LENGTH of the image's width (or height) long, MIN_LINE pixels at
# least, at most 1/LINE_SLIMNESS of that thick; dashed lines are inked over DASH_DUTY of their length.
LINE_LENGTH = 0.5
MIN_LINE = 16
LINE_SLIMNESS = 8
DASH_DUTY = 0.5
# The closing that joins a dashed line's dashes joins the aligned tops of a row of digits just as well
# (the bars of 7s, the tops of 9s, 2s and 0s: twelve digits in a 640 px row stand some 50 px apart,
# and the closing bridges 40). What tells them apart is the line's own ink: a printed dash stands alone,
# paper on both sides across the line, but for the few dashes a stroke crosses; each digit's top runs
# on into its digit. (On the test renders and numbers no run of digit tops has a dash alone; a 田字格
# cross has several, unless the digit written over it touches every dash, about one in 300. How
# regular the dashes and gaps are told them apart less well.)
SOLID = 0.9  # a line inked over this share of its length is solid (photo noise nicks it) ...
FREE_DASHES = 1  # ... else dashed, and printed only if this many of its dashes stand alone
MIN_DASH = 2  # px: a shorter "dash" is a speck of noise by a stroke's edge
# The lines of a family are as long as each other (rules and grid lines cross the page, the sides of a
# row of boxes are all as tall); the bar of a 7 written in a box is a run as long as half the image too,
# but shorter than the box's top and bottom and stopping inside the page. (A faint rule in a photo
# fades out before one edge, but reaches the other.)
SIBLING = 0.8  # a line shorter than this share of the longest along the same axis ...
EDGE = 0.05  # ... that comes no nearer than this share of the image to either end is a stroke
ANCHOR_GAP = 0.12  # share of the image's short side by which a line's end may miss the line across (a
# blurred corner fades out of both runs)
WHOLE = 0.9  # a lone line must cross this much of the image ...
LONE_LEFT = 0.3  # ... and leave this share of the ink
MIN_INK = 16  # pixels: less ink than this left once the lines are gone is a blank form
TICK_LENGTH = 0.06  # the ticks of a comb field are at least this share of the image tall

# 0..255 (int64, float32), and the quantiles _paper_level reads: made once, not per image.
_LEVELS = np.arange(256)
_LEVELS_F32 = _LEVELS.astype(np.float32)
_PAPER_FRACTIONS = np.array([0.1, 0.5, 0.9])

# decode_image notes in image.info the scale a JPEG was decoded at (1/2, 1/4, 1/8 for big photos),
# so that find_ink's coordinates refer to the image as uploaded.
DECODED_SCALE = "digit_service_decoded_scale"

# Signatures of formats people try that we do not decode: answered 415, not "not an image".
_OTHER_FORMATS = ((b"%PDF", "PDF"), (b"<svg", "SVG"), (b"<?xml", "SVG/XML"), (b"II*\x00", "TIFF"),
                  (b"MM\x00*", "TIFF"))


def preprocess_image(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Encoded image bytes -> (28, 28) float32 in [0, 1], white ink on black, MNIST-centred."""
    return centre_like_mnist(ink_from_image(decode_image(data, max_pixels)))


def preprocess_pixels(pixels):
    """A 28x28 white-on-black array (0-255 or 0-1) -> the same array, MNIST-centred."""
    return centre_like_mnist(pixels_to_array(pixels))


def decode_image(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Bytes -> a loaded, upright Pillow image (first frame), or an ImageError saying what is wrong."""
    image = open_image(data, max_pixels)
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # a copy of every upright image otherwise
        return image
    except Exception:
        raise ImageError(400, "invalid_image",
                       f"The {image.format} image could not be decoded; it is truncated or corrupt.")


def open_image(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Bytes -> a Pillow image whose header is read and checked but nothing decoded yet; its size is
    what decoding it will make (a big JPEG at a fraction of its own), or an ImageError."""
    if not data:
        raise ImageError(400, "empty_image", "The image is empty (0 bytes).")
    try:
        # Pillow's decompression-bomb guard only warns below twice its limit; we refuse both.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(422, "decompression_bomb",
                       "The image declares far more pixels than any digit needs; refused as a decompression bomb.")
    except UnidentifiedImageError:
        raise _unsupported(data) from None
    except Exception:  # Pillow's header parsers raise all kinds of errors on hostile bytes
        raise ImageError(400, "invalid_image", "The image could not be decoded; the file is corrupt.")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(413, "too_many_pixels",
                       f"The image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                       f"the limit is {max_pixels / 1e6:.0f} megapixels.")
    if max(width, height) > MAX_ASPECT * min(width, height):
        # Nothing this narrow holds a digit, and a 1 x 16,000,000 PNG takes seconds to decode.
        raise ImageError(422, "implausible_image",
                       f"The image is {width}x{height}; no digit fits in an image this narrow.")
    try:
        # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: big photos cost a fraction to read.
        drafted = image.draft(image.mode, (WORK_SIZE, WORK_SIZE))
    except Exception:
        raise ImageError(400, "invalid_image", f"The {image.format} image could not be decoded; it is corrupt.")
    if drafted:  # (mode, (0, 0, width / s, height / s)) when decoded at 1/s
        image.info[DECODED_SCALE] = drafted[1][2] / width
    return image


def _unsupported(data):
    head = data[:256].lstrip().lower()
    for magic, name in _OTHER_FORMATS:
        if head.startswith(magic.lower()):
            return ImageError(415, "unsupported_image_format",
                            f"{name} images are not supported; send PNG, JPEG, GIF, BMP or WebP.")
    try:
        other = Image.open(io.BytesIO(data)).format  # a format Pillow knows but we do not serve
    except Exception:
        other = None
    if other:
        return ImageError(415, "unsupported_image_format",
                        f"{other} images are not supported; send PNG, JPEG, GIF, BMP or WebP.")
    return ImageError(400, "invalid_image", "The data is not an image (PNG, JPEG, GIF, BMP or WebP expected).")


Ink = namedtuple("Ink", "pixels left top scale")
Ink.__doc__ = """Ink found in an image: `pixels` float32 (h, w) in [0, 1], white on black; pixel (row, col)
covers the uploaded image's point ((left + col) / scale, (top + row) / scale)."""


def ink_from_image(image):
    """A decoded image -> (H, W) float32 ink in [0, 1] on 0, whatever its mode, colours or polarity."""
    return find_ink(image).pixels


def find_ink(image):
    """A decoded image -> its Ink: the ink (float32 (h, w) in [0, 1], white on black) cut to the box
    around it, and where that box lies in the uploaded image (upright, as EXIF orientation shows it).

    Works on 8-bit Pillow images throughout: each step is one pass in C over at most WORK_SIZE^2 pixels.
    """
    scale = image.info.get(DECODED_SCALE, 1.0)
    image = _common_mode(image)
    if max(image.size) > WORK_SIZE:
        longest = max(image.size)
        image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)
        scale *= max(image.size) / longest  # the longest side is the one thumbnail fits exactly
    ink = _ink_in(image, scale)
    sheet = _sheet(ink, image.size)
    if sheet is None:
        return ink
    # A sheet of paper photographed on a darker ground: the ground's colour framed the photo, so the
    # whole sheet came out as ink and the writing as holes in it. Read the sheet alone.
    left, top = ink.left + sheet[0], ink.top + sheet[1]
    inner = _ink_in(image.crop((left, top, ink.left + sheet[2], ink.top + sheet[3])), scale)
    return inner._replace(left=inner.left + left, top=inner.top + top)


def _sheet(ink, size):
    """The box (left, top, right, bottom in ink.pixels) inside a sheet of paper that fills most of
    the image and came out as ink, or None. Ink that is one solid block nearly filling its box, with
    writing (gaps) inside: strokes never fill their box so (a thick 1 has no gaps, a disc fills 79%)."""
    if min(size) < DENOISE_MIN_SIDE:  # an MNIST-sized upload, no photo
        return None
    solid = ink.pixels > 0.5
    rows, cols = np.flatnonzero(solid.any(axis=1)), np.flatnonzero(solid.any(axis=0))
    if not len(rows):
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if (bottom - top) * (right - left) < SHEET_AREA * size[0] * size[1]:
        return None
    margin = max(2, round(SHEET_EDGE * min(bottom - top, right - left)))
    inside = solid[top + margin:bottom - margin, left + margin:right - margin]
    if not inside.size or not SHEET_WRITING[0] <= 1 - inside.mean() <= SHEET_WRITING[1]:
        return None
    return left + margin, top + margin, right - margin, bottom - margin


def _ink_in(image, scale):
    """find_ink's work on an image of at most WORK_SIZE px a side."""
    if image.mode in ("LA", "RGBA"):
        alpha = image.getchannel("A")
        alpha_levels = alpha.histogram()  # one pass that answers three questions below
        if not any(alpha_levels[:128]):  # every pixel is opaque
            image = image.convert(image.mode[:-1])
        else:
            # See-through pixels: lay the image on a paper of our choosing, then read it like any
            # other. Strokes on a see-through canvas go on a paper that contrasts with their colour,
            # so their soft edges (in alpha or in grey levels) are kept; a picture with see-through
            # margins goes on its own paper colour.
            opaque = alpha.convert("1", dither=Image.Dither.NONE)  # alpha >= 128, as a 0/255 mask
            canvas = sum(alpha_levels[128:]) < 0.5 * image.width * image.height
            ink_box = alpha.getbbox()  # every pixel that is not fully transparent
            if ink_box is None:
                raise _blank()
            if canvas and _one_colour(image.crop(ink_box), opaque.crop(ink_box)):
                # Strokes of one colour (what a drawing canvas exports): the ink is the opacity,
                # exactly what compositing on a contrasting paper would give, at a fraction of the cost.
                return _ink(alpha, scale, alpha_levels)
            image = image.convert(image.mode[:-1])
            paper = _contrasting(image, opaque) if canvas else _paper_colour(image, opaque)
            image = Image.composite(image, Image.new(image.mode, image.size, paper), alpha)

    # Ink is whatever differs from the paper, so dark-on-light, light-on-dark and coloured pens
    # all come out as bright ink on black, with no polarity guess to get wrong.
    paper = _paper_colour(image)
    # (Black paper, as MNIST-style uploads have, differs from nothing: the image is its own difference.)
    difference = (image if paper in (0, (0, 0, 0))
                  else ImageChops.difference(image, Image.new(image.mode, image.size, paper)))
    if difference.mode == "RGB":
        red, green, blue = difference.split()
        difference = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    if min(difference.size) >= DENOISE_MIN_SIDE and _percentile(_frame_histogram(difference), 0.9) > CLEAN_PAPER:
        # Photos and scans, whose paper is not one flat colour: soften sensor noise and JPEG
        # speckle (strokes here are several pixels wide), then take out uneven lighting, which
        # shows up as a slow haze across the page. Clean drawings skip both and keep sharp strokes.
        difference = difference.filter(ImageFilter.BoxBlur(1))
        difference = ImageChops.subtract(difference, _haze(difference))
    if min(difference.size) >= DENOISE_MIN_SIDE:
        difference = _remove_lines(difference)
    return _ink(difference, scale)


def _common_mode(image):
    """Reduce Pillow's many modes to 8-bit L, LA, RGB or RGBA."""
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float32)
        # 16-bit files arrive as I;16 or I; values above 255 can only be a 16-bit scale.
        full_scale = 1.0 if mode == "F" and values.max() <= 1.0 else (65535.0 if values.max() > 255 else 255.0)
        return Image.fromarray(np.round(np.clip(values / full_scale, 0.0, 1.0) * 255).astype(np.uint8), "L")
    transparent = image.has_transparency_data
    grey = mode in ("1", "L", "LA", "La")
    target = ("LA" if transparent else "L") if grey else ("RGBA" if transparent else "RGB")
    return image if mode == target else image.convert(target)  # P, CMYK, YCbCr, RGBa, ...


def _paper_colour(image, mask=None):
    """The background colour: per band, the median of the image's outer frame, which ink rarely
    fills (or, with a 0/255 mask, the median of the masked-in pixels)."""
    histogram = _counts(image.histogram(mask)) if mask is not None else _frame_histogram(image)
    if len(histogram) == 256:  # one band: no tuple to build and take apart again
        return _paper_level(histogram)
    return tuple(_paper_level(band) for band in histogram.reshape(-1, 256))


def _paper_level(histogram):
    """The median of a band's histogram; but where ink fills much of the frame (a digit cut out
    tight, blown up and blurred) the median falls between paper and ink, and every stroke would
    come out as two thin outlines: there, the median of the larger of the two classes Otsu splits."""
    cumulative = histogram.cumsum()
    low, median, high = cumulative.searchsorted(_PAPER_FRACTIONS * cumulative[-1])
    if high - low < MIXED_FRAME:
        return int(median)
    split = _otsu(histogram) + 1
    dark, light = histogram[:split], histogram[split:]
    return _percentile(dark, 0.5) if dark.sum() >= light.sum() else split + _percentile(light, 0.5)


def _frame_histogram(image):
    """Histogram (256 per band) of the image's outer frame, 1/16 of its shorter side wide."""
    w, h = image.size
    k = max(1, min(w, h) // 16)
    if min(w, h) <= 2 * k:  # too small to have a frame: the whole image is its frame
        return _counts(image.histogram())
    if w * h <= 128 * 128:
        # Small images (MNIST-sized uploads, which come in few sizes): one call through a mask of
        # the frame instead of eight, and the pixels are few.
        return _counts(image.histogram(_frame_mask(w, h, k)))
    frame = ((0, 0, w, k), (0, h - k, w, h), (0, k, k, h - k), (w - k, k, w, h - k))
    return sum(_counts(image.crop(box).histogram()) for box in frame)


@functools.lru_cache(maxsize=64)
def _frame_mask(w, h, k):
    """A w x h mode "1" mask of the outer frame k pixels wide."""
    mask = Image.new("1", (w, h), 1)
    mask.paste(0, (k, k, w - k, h - k))
    return mask


def _counts(histogram):
    """Pillow's histogram (a list) -> int64 array; np.fromiter takes half the time np.asarray does."""
    return np.fromiter(histogram, np.int64, len(histogram))


def _percentile(histogram, fraction):
    """The level below which `fraction` of a 256-bin histogram's pixels lie."""
    return _level_at(np.cumsum(histogram), fraction)


def _level_at(cumulative, fraction):
    """_percentile from the histogram's cumulative sum."""
    return int(cumulative.searchsorted(fraction * cumulative[-1]))


def _one_colour(image, opaque):
    """Whether every opaque pixel of an LA or RGBA image has (nearly) the same colour, band by band."""
    colour_bands = np.asarray(image.histogram(opaque)).reshape(-1, 256)[:-1]
    return all(np.ptp(np.flatnonzero(band)) <= 2 for band in colour_bands if band.any())


def _contrasting(image, opaque):
    """White paper if any of the opaque strokes are dark (their darkest tenth), else black: then
    both solid ink and soft edges that fade towards the old background stand out from it."""
    dark = _percentile(image.convert("L").histogram(opaque), 0.1) < 128
    white = 255 if dark else 0
    return white if image.mode == "L" else (white,) * 3


def _haze(difference):
    """The slowly varying part of the difference image: block means over a ~16x16 grid, the
    lowest of each 3x3 neighbourhood (so blocks holding ink do not count), smoothly upsampled.

    Where a stroke is wider than three blocks (a thick or blurred stroke filling a small image, as
    low-resolution scans blown up are) the whole neighbourhood is ink: lighting never makes the paper
    differ from itself as much as ink does, nor rise that steeply: blocks far above the lowest block
    a few blocks around are not haze but a stroke's inside, and take the haze of the paper blocks
    around them instead.
    """
    factor = max(1, min(difference.size) // 16)
    grid = difference.reduce(factor).filter(ImageFilter.MinFilter(3))
    # far above the lowest block a few blocks around: a stroke's inside, where lighting only slopes
    around = np.asarray(grid.filter(ImageFilter.MinFilter(7)), np.float32)
    grid = np.asarray(grid, np.float32)
    inked = grid - around > _otsu(difference.histogram()) / 2
    if inked.any():
        grid = _fill_from_neighbours(grid, ~inked)
    grid = Image.fromarray(np.round(grid).astype(np.uint8), "L")
    return grid.resize(difference.size, Image.Resampling.BILINEAR)


def _fill_from_neighbours(grid, known):
    """Each unknown cell of a small grid gets the mean of its known 3x3 neighbours, spreading inwards
    until every cell is known (or 0 if none is)."""
    grid = np.where(known, grid, 0)
    while not known.all():
        total = np.pad(grid * known, 1)
        count = np.pad(known.astype(np.float32), 1)
        sums = sum(total[i:i + grid.shape[0], j:j + grid.shape[1]] for i in range(3) for j in range(3))
        counts = sum(count[i:i + grid.shape[0], j:j + grid.shape[1]] for i in range(3) for j in range(3))
        reached = ~known & (counts > 0)
        if not reached.any():
            break
        grid = np.where(reached, sums / np.maximum(counts, 1), grid)
        known = known | reached
    return grid


def _remove_lines(difference):
    """Take printed rules, boxes, grids and comb fields out of an 8-bit difference image, keeping the
    strokes that cross them.

    A printed line is long, straight and thin: a grey-level opening with a 1 x LINE_LENGTH (or
    LINE_LENGTH x 1) window keeps exactly the pixels on such runs (a closing first joins the dashes
    of dashed lines; a dashed line must have dashes standing alone, which the aligned tops of a row
    of digits do not). Of those, a run thicker than a line may be (its length / LINE_SLIMNESS) is a
    stroke, such as the bar of a 7 filling a tight crop, and stays. Printed lines come in families
    (rules, the sides of a box, a grid) of lines as long as each other, so a run much shorter than the
    longest, stopping inside the image, is a stroke (a 7's bar in a box). A lone straight run (no
    parallel one, at most one across it), or runs with none across them, are taken for lines only if
    they cross the whole image, so the stem of a lone 1 stays, and so do the stems of a row of 1s; a
    lone run must not be all the ink there is either. The ticks of a comb field are short, but as thin
    as its line and standing on it. The lines' pixels are cleared; where a stroke crossed a line, the
    gap is bridged from the stroke on both sides.
    """
    ink = np.asarray(difference)
    threshold = max(_otsu(difference.histogram()) // 2, 1)  # faint lines too
    inked = ink >= threshold
    found = _anchored({1: _family(_lines_along(ink, threshold, LINE_LENGTH, inked.sum(axis=1))),
                       0: _family(_lines_along(ink.T, threshold, LINE_LENGTH, inked.sum(axis=0)))})
    counts = {axis: _line_count(mask) for axis, mask in found.items()}
    cleaned = ink.copy()
    for axis, mask in found.items():
        if mask is None:
            continue
        lone = counts[axis] == 1 and counts[1 - axis] < 2
        # Lines with none across them are rules (or a comb's base), which cross the page; the stems
        # of a row of 1s, as long as half the row is tall, cross nothing either but stop short.
        if (lone or not counts[1 - axis]) and _longest(mask) < WHOLE * mask.shape[1]:
            found[axis] = None
            continue
        view = cleaned if axis == 1 else cleaned.T
        kept = view[mask].copy()
        view[mask] = 0
        if lone:
            # a line with a row of ticks on it is a comb field, however little else there is
            comb = axis == 1 and found[0] is None and _ticks(
                cleaned.T, mask.T, threshold, max(1, _line_width(mask) - 1)) is not None
            if not comb and view.sum(dtype=np.int64) < LONE_LEFT * ink.sum(dtype=np.int64):
                view[mask] = kept  # nothing much but that "line" was there: it is the digit (a 1, cut tight)
                found[axis] = None
    found = {axis: mask for axis, mask in found.items() if mask is not None}
    if not found:
        return difference
    reach = {axis: _line_width(mask) + 1 for axis, mask in found.items()}
    if 1 in found and 0 not in found:  # rules or a comb field: the comb's ticks
        ticks = _ticks(cleaned.T, found[1].T, threshold, max(1, reach[1] - 2))  # the line without its soft edges
        if ticks is not None:
            cleaned.T[ticks] = 0
    bridged = cleaned.copy()
    for axis, mask in found.items():
        view = cleaned if axis == 1 else cleaned.T
        # Across the line, as far as the lines are wide plus one: ink on both sides is a stroke
        # that crossed it, and the gap is filled with the fainter side.
        nearest = _run_filter(view.T, reach[axis], np.maximum, 0).T
        before, after = np.zeros_like(view), np.zeros_like(view)
        shift_before = reach[axis] - (reach[axis] - 1) // 2  # nearest[r - shift_before]: rows r - reach .. r - 1
        shift_after = 1 + (reach[axis] - 1) // 2  # nearest[r + shift_after]: rows r + 1 .. r + reach
        before[shift_before:] = nearest[:-shift_before]
        after[:-shift_after] = nearest[shift_after:]
        bridge = np.where(mask, np.minimum(before, after), 0)
        bridged_view = bridged if axis == 1 else bridged.T
        np.maximum(bridged_view, bridge, out=bridged_view)
    if np.count_nonzero(bridged >= threshold) < MIN_INK:
        bridged[:] = 0  # specks where lines met: an empty form
    return Image.fromarray(bridged, "L")


def _lines_along(view, threshold, length, inked_per_row=None, thick=None):
    """Boolean mask of the pixels of `view` on thin straight runs along its rows at least `length`
    of a row long (and at most `thick` thick), or None. `inked_per_row`: how many pixels of each row
    reach `threshold`, if already counted."""
    run = max(MIN_LINE, int(length * view.shape[1]))
    if inked_per_row is None:
        inked_per_row = (view >= threshold).sum(axis=1)
    # Only rows with that many inked pixels can hold a line: most images have none, and skip the rest.
    rows = np.flatnonzero(inked_per_row >= DASH_DUTY * run)
    if not len(rows):
        return None
    thick = thick or max(1, run // LINE_SLIMNESS)
    lo, hi = max(rows[0] - thick - 1, 0), min(rows[-1] + thick + 2, view.shape[0])
    band = view[lo:hi]
    gap = max(2, run // 8)
    closed = _run_filter(_run_filter(band, gap, np.maximum, 0), gap, np.minimum, 255)
    joined = _run_filter(_run_filter(closed, run, np.minimum, 255), run, np.maximum, 0)
    opened = np.minimum(joined, band)  # the closing filled the gaps between dashes, not the paper there
    # Runs thicker than a line: what survives an opening across them with a window of `thick + 1`.
    strokes = _run_filter(_run_filter(opened.T, thick + 1, np.minimum, 0), thick + 1, np.maximum, 0).T
    line = opened.astype(np.int16) - strokes
    # Thin at this level and not just the crest of a wide, soft stroke (whose opening across it only
    # trims the tip), nor a faint ridge of paper noise or haze.
    on_line = (2 * line >= threshold) & (2 * line >= opened)
    if not on_line.any():
        return None
    mask = np.zeros(view.shape, bool)
    mask[lo:hi] = on_line
    mask = _dashes_standing_alone(view, mask, joined, lo, threshold)
    if mask is None:
        return None
    # and the line's soft edges, a pixel either side (photos blur them; JPEG rings round them)
    mask[1:] |= mask[:-1].copy()
    mask[:-1] |= mask[1:].copy()
    return mask


def _dashes_standing_alone(view, mask, joined, lo, threshold):
    """`mask` (the thin runs _lines_along found in `view`) without the lines that leave gaps of paper
    (more than 1 - SOLID of their length) but have fewer than FREE_DASHES dashes standing alone; or
    None if no line is left. `joined`: the closing and opening of `view` from row `lo` on."""
    starts, stops = row_runs(mask)
    level = (threshold + 1) // 2  # the level _lines_along finds thin runs at
    for top, bottom in zip(starts, stops):
        span = (joined[top - lo:bottom - lo] >= level).any(axis=0)  # the line, its gaps bridged
        ink = (view[top:bottom] >= level).any(axis=0) & span
        if np.count_nonzero(span & ~ink) <= (1 - SOLID) * np.count_nonzero(span):
            continue  # solid, or nicked by noise
        # A dash stands alone when no ink lies beyond the line's soft edges, on either side, within
        # the line's own width plus two: a digit's top goes on at least that far into its digit.
        reach = bottom - top + 2
        beyond = (view[max(top - 1 - reach, 0):max(top - 1, 0)] >= threshold).any(axis=0)
        beyond |= (view[bottom + 1:bottom + 1 + reach] >= threshold).any(axis=0)
        edges = np.diff(np.concatenate(([0], ink.astype(np.int8), [0])))
        dash_starts, dash_stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        touched = np.concatenate(([0], np.cumsum(beyond)))  # ink beyond, counted along the line
        alone = (touched[dash_stops] == touched[dash_starts]) & (dash_stops - dash_starts >= MIN_DASH)
        if np.count_nonzero(alone) < FREE_DASHES:
            mask[top:bottom] = False  # the tops of a row of digits, not a printed dashed line
    return mask if mask.any() else None


def _ticks(view, lines, threshold, width):
    """The ticks of a comb field in `view` (columns as rows): runs at least TICK_LENGTH of the image
    long, no wider than its line (`width`), that touch a line of `lines`; a boolean mask or None."""
    candidates = _lines_along(view, threshold, TICK_LENGTH, thick=width)
    if candidates is None:
        return None
    touching = lines.copy()  # a line pixel, or a few pixels off its end along the tick (blurred ends)
    for shift in range(1, 5):
        touching[:, shift:] |= lines[:, :-shift]
        touching[:, :-shift] |= lines[:, shift:]
    starts, ends = candidates.copy(), candidates.copy()
    starts[:, 1:] &= ~candidates[:, :-1]
    ends[:, :-1] &= ~candidates[:, 1:]
    run_id = np.cumsum(starts.ravel()).reshape(candidates.shape)
    # A tick ends in paper at both ends (at the line's end, the line is already cleared); a stroke
    # that touches the line goes on into the rest of the digit.
    # (3-5 pixels on: the opening leaves a tick's soft ends out of the run)
    beyond_start, beyond_end = np.zeros_like(view), np.zeros_like(view)
    for shift in range(3, 6):
        np.maximum(beyond_start[:, shift:], view[:, :-shift], out=beyond_start[:, shift:])
        np.maximum(beyond_end[:, :-shift], view[:, shift:], out=beyond_end[:, :-shift])
    goes_on = (starts & (beyond_start >= threshold)) | (ends & (beyond_end >= threshold))
    kept = np.isin(run_id, np.setdiff1d(run_id[candidates & touching], run_id[goes_on])) & candidates
    return kept if _line_count(kept) >= 2 else None  # a comb has a row of ticks; a lone one may be a 1


def _family(mask):
    """A mask of lines (or None) without the lines much shorter than the longest that stop inside the
    image (SIBLING, EDGE)."""
    if mask is None:
        return None
    starts, stops = row_runs(mask)
    if len(starts) < 2:
        return mask
    reached = np.logical_or.reduceat(mask, starts, axis=0)  # the columns each line covers
    first = reached.argmax(axis=1)
    last = reached.shape[1] - reached[:, ::-1].argmax(axis=1)
    edge = EDGE * mask.shape[1]
    inside = (last - first < SIBLING * (last - first).max()) & (first > edge) & (last < mask.shape[1] - edge)
    for top, bottom in zip(starts[inside], stops[inside]):
        mask[top:bottom] = False
    return mask


def _anchored(found):
    """`found` (line masks per axis, the columns' transposed) without the lines that end in the open:
    with lines across them, printed lines end at the image's edges or at a line across (a box's
    corner, a grid's crossing). Touching digits chain their bars and tops into a long run, and their
    stems into runs across it, but such a run ends in a digit's stroke, away from any stem."""
    if found[0] is None or found[1] is None:
        return found
    for _ in range(2):  # a line dropped on one axis may leave a line across it in the open
        dropped = False
        for axis in (1, 0):
            mask, across = found[axis], found[1 - axis]
            if mask is None or across is None:
                continue
            width = mask.shape[1]
            reach = max(_line_width(mask), _line_width(across)) + int(ANCHOR_GAP * min(mask.shape))
            across = across.T  # in `mask`'s orientation
            for top, bottom in zip(*row_runs(mask)):
                columns = np.flatnonzero(mask[top:bottom].any(axis=0))
                ends = columns[[0, -1]]
                if ends[1] + 1 - ends[0] >= WHOLE * width:
                    continue
                band = across[max(top - reach, 0):bottom + reach].any(axis=0)
                anchored = [end < EDGE * width or end >= (1 - EDGE) * width
                            or band[max(end - reach, 0):end + reach + 1].any() for end in ends]
                if not all(anchored):
                    mask[top:bottom] = False
                    dropped = True
            found[axis] = mask if mask.any() else None
        if not dropped:
            break
    return found


def _longest(mask):
    """How far the longest line of a mask reaches along its rows, from its first pixel to its last
    (a dashed line reaches as far as a solid one; a stroke crossing a line does not shorten it)."""
    rows = mask[mask.any(axis=1)]
    return int((rows.shape[1] - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)).max())


def _line_width(mask):
    """The width of most lines in a mask (its runs across the lines, 90th percentile)."""
    return int(np.percentile(_run_lengths(mask.T), 90))


def _line_count(mask):
    """How many separate lines (groups of adjacent rows holding line pixels) a mask holds."""
    return 0 if mask is None else len(row_runs(mask)[0])


def row_runs(mask):
    """[start], [stop) of each run of adjacent rows of a boolean mask that hold a True pixel (here, the
    rows of each printed line; in sequence, the rows of each line of writing)."""
    edges = np.diff(np.concatenate(([0], mask.any(axis=1).astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _run_lengths(mask):
    """Lengths of all runs of True along the rows of a boolean mask."""
    flags = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    flags[:, 1:-1] = mask
    edges = np.diff(flags.ravel())
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def _run_filter(array, length, op, pad):
    """np.minimum or np.maximum (`op`) over a window of `length` centred on each element of the last
    axis, the outside counted as `pad`. Windows double (1, 2, 4, ...) and the last two overlap to make
    `length`: log2(length) + 1 whole-array passes, each one vector operation."""
    if length <= 1:
        return array
    n = array.shape[-1]
    before = (length - 1) // 2
    windows = np.full(array.shape[:-1] + (n + length - 1,), pad, array.dtype)
    windows[..., before:before + n] = array
    width = 1  # windows[..., i] is op over `width` elements from i
    while 2 * width <= length:
        windows = op(windows[..., :-width], windows[..., width:])
        width *= 2
    return op(windows[..., :n], windows[..., length - width:length - width + n])


def _ink(difference, scale, histogram=None):
    """8-bit difference from the paper (and its histogram, if already counted) -> Ink in [0, 1]: the
    paper's noise floor to 0, solid ink to 1, cut to the box around it."""
    # (Per image this is a few dozen numpy calls on 256 numbers, which cost more than the pixels of a
    # 28x28 upload: one cumulative sum serves Otsu and both percentiles.)
    pixels = None
    if histogram is None and difference.width * difference.height <= NUMPY_COUNTS:
        pixels = np.frombuffer(difference.tobytes(), np.uint8).reshape(difference.height, difference.width)
        histogram = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    else:
        histogram = np.fromiter(histogram or difference.histogram(), np.float64, 256)
    levels = histogram.nonzero()[0]
    if len(levels) < 2 or levels[-1] < MIN_CONTRAST * 255:  # one flat level, or too faint to be ink
        raise _blank()
    cumulative = histogram.cumsum()  # whole counts: every sum and difference of them below is exact
    threshold = _otsu(histogram, cumulative)
    # The paper's own noise: the level under which 99% of the background pixels lie, capped at half
    # the ink threshold so the soft edges of strokes survive.
    floor = min(_level_at(cumulative[: threshold + 1], 0.99), threshold // 2)
    if cumulative[-1] == cumulative[threshold]:  # nothing above the threshold
        raise _blank()
    solid = threshold + 1 + _level_at(cumulative[threshold + 1:] - cumulative[threshold], 0.9)
    lut = ((_LEVELS_F32 - floor) / max(solid - floor, 1)).clip(0.0, 1.0)
    # Only the box around every non-zero level can hold ink; a canvas is mostly empty around it.
    box = difference.getbbox()
    inked = np.asarray(difference.crop(box)) if pixels is None else pixels[box[1]:box[3], box[0]:box[2]]
    return Ink(lut[inked], box[0], box[1], scale)


def _otsu(histogram, weight=None):
    """The level that best splits the histogram into two classes (Otsu, 1979). `weight`: the
    histogram's cumulative sum as float64, if already taken."""
    histogram = np.asarray(histogram, np.float64)  # int64 would overflow in the squares below
    if weight is None:
        weight = histogram.cumsum()
    mass = (histogram * _LEVELS).cumsum()
    total, total_mass = weight[-1], mass[-1]
    # Where one class is empty the numerator is 0 too: those levels score 0, never the best split.
    between = (total_mass * weight - total * mass) ** 2 / np.maximum(weight * (total - weight), 1e-9)
    return int(between[:-1].argmax())


def centre_like_mnist(ink):
    """Ink (any size, white on black) -> 28x28: crop to the digit, fit 20x20, centre of mass at 14."""
    rows = _extent(ink.sum(axis=1))
    cols = _extent(ink.sum(axis=0))
    if rows is None or cols is None:
        raise _blank()
    digit = ink[rows[0]:rows[1], cols[0]:cols[1]]
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        digit = np.asarray(Image.fromarray(digit, "F").resize(size, resample), dtype=np.float32)
        digit = np.clip(digit, 0.0, 1.0)  # resampling overshoots a little at sharp edges

    row_mass, col_mass = digit.sum(axis=1), digit.sum(axis=0)
    mass = row_mass.sum()
    if mass <= 0:
        raise _blank()
    top = _offset(CENTRE - row_mass @ _LEVELS[:digit.shape[0]] / mass, digit.shape[0])
    left = _offset(CENTRE - col_mass @ _LEVELS[:digit.shape[1]] / mass, digit.shape[1])
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    return out


def _extent(profile):
    """[start, stop) of the ink along one axis, ignoring a sliver of stray mass at either end."""
    total = profile.sum()
    if total <= 0:
        return None
    cumulative = profile.cumsum()
    start = int(cumulative.searchsorted(TRIM * total, side="right"))
    stop = int(cumulative.searchsorted((1 - TRIM) * total, side="left")) + 1
    return start, max(stop, start + 1)


def _offset(shift, length):
    # Whole-pixel shifts, as MNIST used: no resampling blur, and MNIST input passes through unchanged.
    return min(max(round(float(shift)), 0), SIZE - length)


def _blank():
    return ImageError(422, "blank_image", "No digit found: the image is blank or has no visible ink.")


def pixels_to_array(pixels):
    """A nested list (28x28, 28x28x1 or 784 numbers; 0-255 or 0-1) -> (28, 28) float32 in [0, 1]."""
    return pixel_batch([pixels])[0]


def pixel_batch(arrays):
    """A list of such nested lists -> (N, 28, 28) float32 in [0, 1], each scaled on its own, in a few
    vectorised steps (a 256-digit batch is 200,000 numbers)."""
    try:
        batch = np.asarray(arrays)
    except (ValueError, TypeError):
        raise ImageError(400, "invalid_pixels", "pixels must be a 28x28 array of numbers; rows differ in length.")
    if batch.dtype.kind not in "iuf":
        raise ImageError(400, "invalid_pixels", "pixels must contain only numbers.")
    if batch.shape[1:] not in PIXEL_SHAPES:
        raise ImageError(400, "invalid_pixels", f"pixels must be 28x28 (or 784 values); got shape {list(batch.shape[1:])}.")
    batch = batch.reshape(-1, SIZE, SIZE)
    if not np.isfinite(batch).all() or batch.min() < 0 or batch.max() > 255:
        raise ImageError(400, "invalid_pixels", "pixel values must be finite, 0-255 (integers) or 0-1 (floats).")
    batch = batch.astype(np.float32)
    scale = np.where(batch.max(axis=(1, 2)) > 1.0, np.float32(255), np.float32(1))
    return batch / scale[:, None, None]


def centre_batch(batch):
    """(N, 28, 28) -> each as centre_like_mnist makes it. One vectorised pass finds the arrays that
    are already centred the MNIST way (most arrays sent as pixels are), which only lose the sliver
    of stray ink outside their extent; centre_like_mnist does the others one by one."""
    (top, bottom), (left, right) = _extents(batch.sum(axis=2)), _extents(batch.sum(axis=1))
    index = np.arange(SIZE)
    inside = (((index >= top[:, None]) & (index < bottom[:, None]))[:, :, None]
              & ((index >= left[:, None]) & (index < right[:, None]))[:, None, :])
    cropped = batch * inside
    mass = cropped.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        shift_y = CENTRE - (cropped.sum(axis=2) @ index / mass - top)
        shift_x = CENTRE - (cropped.sum(axis=1) @ index / mass - left)
    in_place = ((np.maximum(bottom - top, right - left) == BOX) & (mass > 0)
                & (np.clip(np.round(shift_y), 0, SIZE - (bottom - top)) == top)
                & (np.clip(np.round(shift_x), 0, SIZE - (right - left)) == left)
                # a shift within a hair of .5 may round the other way one by one: leave it to them
                & (np.abs(np.abs(shift_y % 1) - 0.5) > 1e-3) & (np.abs(np.abs(shift_x % 1) - 0.5) > 1e-3))
    for i in np.flatnonzero(~in_place):
        cropped[i] = centre_like_mnist(batch[i])
    return cropped


def _extents(profiles):
    """_extent for each row of `profiles` at once: ([start], [stop])."""
    total = profiles.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(profiles, axis=1)
    start = (cumulative <= TRIM * total).sum(axis=1)
    stop = np.maximum((cumulative < (1 - TRIM) * total).sum(axis=1) + 1, start + 1)
    return start, stop


def encode_png(array):
    """(28, 28) float array in [0, 1] -> PNG bytes, to show a person what the model saw."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array, 0, 1) * 255).astype(np.uint8), "L").save(buffer, "PNG")
    return buffer.getvalue()
