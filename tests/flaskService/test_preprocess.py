"""flaskService.digits.preprocess: bytes in any common form -> the MNIST-style 28x28 array."""
import io

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw

from flaskService.digits import preprocess
from flaskService.digits.errors import ImageError
from modelTrain.evalsets.numbers import number
from modelTrain.evalsets.renders import dashed_line, render
from tests.helpers import SHARED_DATA, image_bytes

SEED_CANVAS = SHARED_DATA / "seed_canvas.jpeg"


def centre_of_mass(array):
    ys, xs = np.indices(array.shape)
    return (ys * array).sum() / array.sum(), (xs * array).sum() / array.sum()


@pytest.fixture
def digit(mnist):
    """A real MNIST test digit (a 7) as uint8 28x28, white on black."""
    return mnist["x_test"][0]


def test_mnist_input_passes_through_unchanged(mnist):
    """Already-MNIST arrays come out as they went in (MNIST was made by this very recipe)."""
    for image in mnist["x_test"][:50]:
        out = preprocess.preprocess_pixels(image.tolist())
        assert np.abs(out - image / 255.0).mean() < 0.01


def test_output_contract(digit):
    """Every output is 28x28 float32 in [0, 1], fits a 20 px box, centre of mass at (14, 14)."""
    out = preprocess.preprocess_image(image_bytes(Image.fromarray(255 - digit).resize((300, 300))))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.9
    rows, cols = np.flatnonzero(out.sum(1) > 0.05), np.flatnonzero(out.sum(0) > 0.05)
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21
    assert np.allclose(centre_of_mass(out), (14, 14), atol=0.6)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_every_allowed_format_decodes(digit, fmt):
    """PNG, JPEG, GIF, BMP and WebP all give the same digit."""
    image = Image.fromarray(255 - digit).resize((112, 112))
    out = preprocess.preprocess_image(image_bytes(image, fmt))
    reference = preprocess.preprocess_image(image_bytes(image, "PNG"))
    assert np.abs(out - reference).mean() < 0.05


@pytest.mark.parametrize("polarity", ["dark_on_light", "light_on_dark"])
def test_polarity_gives_white_ink_on_black(digit, polarity):
    """Dark ink on light paper is inverted; light on dark is kept; both read the same."""
    image = Image.fromarray(255 - digit if polarity == "dark_on_light" else digit).resize((84, 84))
    out = preprocess.preprocess_image(image_bytes(image))
    assert out[0, 0] == 0 and out.max() > 0.9
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.06


@pytest.mark.parametrize("corner", [(0, 0), (220, 0), (0, 220), (220, 220)])
def test_offset_digit_is_centred(digit, corner):
    """A digit in any corner of a large page ends up centred by mass, like MNIST."""
    page = Image.new("L", (300, 300), 255)
    page.paste(Image.fromarray(255 - digit).resize((80, 80)), corner)
    out = preprocess.preprocess_image(image_bytes(page))
    assert np.allclose(centre_of_mass(out), (14, 14), atol=0.6)
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.06


@pytest.mark.parametrize("size", [14, 28, 56, 280, 1000])
def test_scale_does_not_matter(digit, size):
    """Tiny, MNIST-sized and large renderings of one digit give nearly the same array."""
    image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    out = preprocess.preprocess_image(image_bytes(image))
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.08


def test_transparent_canvas_ink_is_the_opaque_part():
    """On a see-through canvas the strokes are the ink, whatever colour they were drawn in."""
    strokes = []
    for colour in [(0, 0, 0, 255), (255, 255, 255, 255), (30, 60, 200, 255)]:
        canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).line([(140, 30), (140, 250)], fill=colour, width=20)
        strokes.append(preprocess.preprocess_image(image_bytes(canvas)))
    assert strokes[0].max() > 0.9 and strokes[0][:, :10].max() == 0
    assert np.abs(strokes[0] - strokes[1]).max() < 1e-6 and np.abs(strokes[0] - strokes[2]).max() < 1e-6


def test_picture_with_transparent_margin_is_flattened_on_its_paper(digit):
    """An opaque paper scan with a see-through border is read as paper, not as one big blob."""
    page = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    paper = Image.fromarray(255 - digit).resize((160, 160)).convert("RGBA")
    page.paste(paper, (20, 20))
    out = preprocess.preprocess_image(image_bytes(page))
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.06


@pytest.mark.parametrize("mode", ["I;16", "CMYK", "P", "LA", "1", "RGB"])
def test_modes(digit, mode):
    """16-bit grey, CMYK, palette, grey+alpha, 1-bit and RGB are each scaled correctly."""
    grey = Image.fromarray(255 - digit).resize((112, 112))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(grey, np.uint16) * 257)
    elif mode == "1":
        image = grey.point(lambda v: 255 if v > 128 else 0).convert("1")
    else:
        image = grey.convert(mode)
    fmt = {"CMYK": "JPEG", "1": "BMP"}.get(mode, "PNG")
    out = preprocess.preprocess_image(image_bytes(image, fmt))
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.08


def test_exif_orientation_is_applied(digit):
    """A phone photo stored sideways with an EXIF orientation tag is read upright."""
    upright = Image.fromarray(255 - digit).resize((112, 112)).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6: turn 90 degrees clockwise to view
    exif = Image.Exif()
    exif[0x0112] = 6
    out = preprocess.preprocess_image(image_bytes(stored, "JPEG", exif=exif, quality=95))
    assert np.abs(out - preprocess.preprocess_image(image_bytes(upright, "JPEG", quality=95))).mean() < 0.05


def test_animated_gif_uses_first_frame(digit, mnist):
    """Only the first frame of an animation is read."""
    first = Image.fromarray(digit).resize((56, 56))
    second = Image.fromarray(mnist["x_test"][1]).resize((56, 56))
    data = image_bytes(first, "GIF", save_all=True, append_images=[second])
    reference = preprocess.preprocess_image(image_bytes(first, "GIF"))
    assert np.abs(preprocess.preprocess_image(data) - reference).max() < 1e-6


def test_seed_canvas_is_a_centred_six():
    """The original page's request (a 6 against the left and bottom edges) comes out centred."""
    out = preprocess.preprocess_image(open(SEED_CANVAS, "rb").read())
    assert np.allclose(centre_of_mass(out), (14, 14), atol=0.6)
    assert out[:, :4].max() < 0.05 and out[-4:].max() < 0.05


@pytest.mark.parametrize("style", ["paper_png", "photo_jpeg", "noisy_scan", "coloured_pen"])
def test_noise_and_lighting_are_removed(digit, style):
    """Paper noise, uneven light and JPEG speckle leave no stray ink: the corners stay black."""
    out = preprocess.preprocess_image(render(digit, style, np.random.default_rng(1)))
    assert out[:3, :3].max() == 0 and out[-3:, -3:].max() == 0
    assert np.abs(out - preprocess.preprocess_pixels(digit)).mean() < 0.1


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"", 400, "empty_image"),
    (b"\x89PNG\r\n\x1a\n", 400, "invalid_image"),
    (b"this is not an image at all", 400, "invalid_image"),
    (b"%PDF-1.4 a pdf", 415, "unsupported_image_format"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 415, "unsupported_image_format"),
])
def test_undecodable_bytes(data, status, code):
    """Bytes that are not an allowed image give the right status and code."""
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(data)
    assert (error.value.status, error.value.code) == (status, code)


def test_truncated_image_is_400(digit):
    data = image_bytes(Image.fromarray(digit).resize((200, 200)), "PNG")
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(data[: len(data) // 2])
    assert (error.value.status, error.value.code) == (400, "invalid_image")


def test_tiff_is_415(digit):
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(image_bytes(digit, "TIFF"))
    assert (error.value.status, error.value.code) == (415, "unsupported_image_format")


@pytest.mark.parametrize("image", [Image.new("L", (1, 1)), Image.new("RGB", (300, 200), "white"),
                                   Image.new("L", (28, 28), 0), Image.new("RGBA", (280, 280), (0, 0, 0, 0))])
def test_blank_images_are_422(image):
    """No ink at all -> 422 blank_image."""
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(image_bytes(image))
    assert (error.value.status, error.value.code) == (422, "blank_image")


def test_too_many_pixels_is_413():
    data = image_bytes(Image.new("L", (5000, 4000), 255))
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(data)
    assert (error.value.status, error.value.code) == (413, "too_many_pixels")


def test_decompression_bomb_is_422():
    """Beyond Pillow's own guard (a tiny file declaring ~100 MP), the image is refused unread."""
    data = image_bytes(Image.new("1", (12000, 9000)))
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(data, max_pixels=10**9)
    assert (error.value.status, error.value.code) == (422, "decompression_bomb")


@pytest.mark.parametrize("pixels", [
    [[0] * 28] * 27, [[0] * 27] * 28, [[0, "a"] * 14] * 28, [[float("nan")] * 28] * 28,
    [[300] * 28] * 28, [[-1] * 28] * 28, "zeros", [[[0] * 28] * 28] * 2, [[True] * 28] * 28,
])
def test_bad_pixel_arrays_are_400(pixels):
    with pytest.raises(ImageError) as error:
        preprocess.pixels_to_array(pixels)
    assert (error.value.status, error.value.code) == (400, "invalid_pixels")


@pytest.mark.parametrize("shape", [(28, 28), (784,), (28, 28, 1)])
def test_pixel_array_shapes_and_scales(digit, shape):
    """28x28, 784 and 28x28x1; 0-255 integers and 0-1 floats are the same image."""
    as_ints = preprocess.pixels_to_array(digit.reshape(shape).tolist())
    as_floats = preprocess.pixels_to_array((digit / 255.0).reshape(shape).tolist())
    assert np.allclose(as_ints, digit / 255.0) and np.allclose(as_floats, digit / 255.0)


def test_encode_png_round_trips(digit):
    array = digit / 255.0
    decoded = np.asarray(Image.open(io.BytesIO(preprocess.encode_png(array))), np.float32) / 255
    assert decoded.shape == (28, 28) and np.abs(decoded - array).max() <= 1 / 255


def test_batch_centring_equals_one_by_one(mnist):
    """The vectorised batch path gives exactly what centring each array on its own gives, for all
    10,000 MNIST test digits as they are and moved off-centre."""
    batch = preprocess.pixel_batch(mnist["x_test"].tolist())
    moved = np.roll(batch[:300], (3, -4), axis=(1, 2))
    for arrays in (batch, moved):
        one_by_one = np.stack([preprocess.centre_like_mnist(a) for a in arrays])
        assert np.array_equal(preprocess.centre_batch(arrays), one_by_one)


def test_pixel_batch_scales_each_array_on_its_own(digit):
    batch = preprocess.pixel_batch([digit.tolist(), (digit / 255.0).tolist()])
    assert batch.shape == (2, 28, 28) and np.allclose(batch[0], batch[1]) and batch.max() == 1.0


def test_uniformly_translucent_canvas_is_blank():
    """A canvas whose every pixel is equally see-through holds no strokes (found by Hypothesis)."""
    with pytest.raises(ImageError) as error:
        preprocess.preprocess_image(image_bytes(Image.new("LA", (40, 40), (0, 100))))
    assert (error.value.status, error.value.code) == (422, "blank_image")


@pytest.mark.parametrize("size", [(28, 28), (40, 90), (127, 129), (640, 480)])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_paper_is_read_from_the_outer_frame_only(size, mode):
    """The frame histogram (small images take a shortcut) counts exactly the pixels of the outer
    frame, 1/16 of the shorter side wide, band by band."""
    width, height = size
    rng = np.random.default_rng(width * height)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    array = np.asarray(image).reshape(height, width, -1)
    k = max(1, min(size) // 16)
    inside = np.zeros((height, width), bool)
    inside[k:height - k, k:width - k] = True
    expected = np.concatenate([np.bincount(array[..., band][~inside], minlength=256) for band in range(array.shape[2])])
    assert np.array_equal(preprocess._frame_histogram(image), expected)


def _ink_centre_in_upload(ink):
    """Where find_ink says its ink's centre of mass lies, in the uploaded image's (x, y) pixels."""
    row, col = centre_of_mass(ink.pixels)
    # pixel (row, col) covers the square from its stated point to the next pixel's; its centre is +0.5
    return (ink.left + col + 0.5) / ink.scale, (ink.top + row + 0.5) / ink.scale


@pytest.mark.parametrize(("size", "fmt", "mode"), [
    ((3000, 2000), "PNG", "RGB"),   # thumbnailed to WORK_SIZE
    ((3000, 2400), "JPEG", "RGB"),  # decoded at 1/4 scale, then thumbnailed
    ((500, 300), "PNG", "L"),       # neither: only cut to the ink
    ((1400, 1400), "PNG", "RGBA"),  # a transparent canvas (its fast path), thumbnailed
])
def test_find_ink_maps_ink_back_to_the_upload(size, fmt, mode):
    """A dot drawn at a known spot of an image comes back at that spot, whatever scaling and
    cropping find_ink did on the way."""
    centre = (0.61 * size[0], 0.37 * size[1])
    radius = max(size) / 80
    image = Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else "white")
    ImageDraw.Draw(image).ellipse([centre[0] - radius, centre[1] - radius, centre[0] + radius,
                                   centre[1] + radius], fill=(20, 20, 120, 255) if mode == "RGBA" else "black")
    options = {"quality": 95} if fmt == "JPEG" else {}
    ink = preprocess.find_ink(preprocess.decode_image(image_bytes(image, fmt, **options)))
    assert ink.pixels.shape[0] < 2.5 * radius * ink.scale + 4  # cut to the dot, not the page
    x, y = _ink_centre_in_upload(ink)
    assert abs(x - centre[0]) < 1.5 / ink.scale and abs(y - centre[1]) < 1.5 / ink.scale, (x, y, centre)
    assert np.array_equal(ink.pixels, preprocess.ink_from_image(preprocess.decode_image(image_bytes(image, fmt, **options))))


@pytest.fixture(scope="module")
def row_of_digits(mnist):
    """test_read's twelve digits 910132719271 on paper (the tops of their 9s, 7s, 2s and 0s line up),
    as the difference from the paper that line removal works on: white ink on black."""
    page = Image.open(io.BytesIO(number(mnist, 7, "separate", "paper_png", (12, 12)).data)).convert("L")
    return ImageChops.subtract(Image.new("L", page.size, int(np.median(np.asarray(page)))), page)


def test_line_removal_keeps_the_aligned_tops_of_a_row_of_digits(row_of_digits):
    """The tops of a row of digits line up like a dashed rule, and the stems of its 1s stand like the
    sides of boxes; but each top runs on into its digit, and the stems cross nothing: line removal
    leaves every stroke as it was (it erased the tops, and the row was read as 31611321114211)."""
    before = np.asarray(row_of_digits)
    assert np.array_equal(np.asarray(preprocess._remove_lines(row_of_digits)), before)


def test_a_dashed_rule_under_a_row_of_digits_is_removed(row_of_digits):
    """The same row written above a dashed rule that crosses the page (drawn as renders.py draws the
    田字格's dashed cross, one dash in ten crossed by nothing): the rule goes, every digit stays as it was."""
    width, height = row_of_digits.size
    page = Image.new("L", (width, 2 * height), 0)
    page.paste(row_of_digits, (0, 0))
    rule = Image.new("L", page.size, 0)
    dashed_line(ImageDraw.Draw(rule), (0, height + 10), width, 2, height, horizontal=True)
    on_rule = np.asarray(rule) > 0
    cleaned = np.asarray(preprocess._remove_lines(ImageChops.lighter(page, rule)))
    assert on_rule.sum() > width // 2 and not cleaned[on_rule].any()
    assert np.array_equal(cleaned[~on_rule], np.asarray(page)[~on_rule])


# Numbers of the evaluation set whose bars and tops, touching, chain into runs as long as half the
# image, with their digits' stems standing across them: line removal took them for a row of boxes.
CHAINED = [(57, "overlapping", "white_on_black_jpeg"), (287, "overlapping", "coloured_pen"),
           (302, "overlapping", "paper_png"), (407, "overlapping", "coloured_pen"),
           (871, "touching", "paper_png"), (1126, "touching", "coloured_pen")]


@pytest.mark.parametrize(("index", "kind", "style"), CHAINED)
def test_line_removal_keeps_the_chained_strokes_of_touching_digits(mnist, monkeypatch, index, kind, style):
    """A printed line meets the lines across it at its ends (a box's corner) or runs to the image's
    edge; a chain of touching digits' strokes ends in a stroke. Line removal leaves these numbers as
    they were (it cut their bars and stems, and 1885550 was read as 18855)."""
    data = number(mnist, index, kind, style).data
    ink = preprocess.find_ink(preprocess.decode_image(data))
    monkeypatch.setattr(preprocess, "_remove_lines", lambda difference: difference)
    assert np.array_equal(ink.pixels, preprocess.find_ink(preprocess.decode_image(data)).pixels)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8, 13, 64, 300])
@pytest.mark.parametrize(("op", "pad"), [(np.minimum, 255), (np.maximum, 0)])
def test_run_filters_are_sliding_minima_and_maxima(length, op, pad):
    """Line removal's run filter is the min or max over a centred window of `length`, the outside
    counted as `pad`, along the last axis of any array, transposed views included."""
    image = np.random.default_rng(length).integers(0, 256, (23, 97)).astype(np.uint8)
    before = (length - 1) // 2
    for array in (image, image.T):
        padded = np.pad(array, ((0, 0), (before, length - 1 - before)), constant_values=pad)
        expected = np.stack([op.reduce(padded[:, i:i + length], axis=1) for i in range(array.shape[1])], axis=1)
        assert (preprocess._run_filter(array, length, op, pad) == expected).all()
