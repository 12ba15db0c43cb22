"""Properties that hold for every input Hypothesis can think of: preprocessing returns a 28x28 array in
[0, 1] or a 4xx ImageError, and /predict answers any JSON with a 2xx or the JSON error shape, never a 5xx."""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from flaskService import create_app
from flaskService.digits.errors import ImageError
from flaskService.digits.preprocess import preprocess_image, preprocess_pixels
from tests.helpers import assert_error, image_bytes
from tests import corpus

# Locally every run explores new examples; in CI the examples are fixed, so a landing never hangs on
# a draw of luck (a counterexample found locally becomes a test of its own).
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=os.environ.get("CI") == "true")


def assert_array_or_client_error(compute, allowed_codes=None):
    """compute() gives a (28, 28) float32 array in [0, 1], or raises a 4xx ImageError (with one of the
    allowed codes, if given). Anything else -- another exception, NaN, a wrong shape -- fails."""
    try:
        array = compute()
    except ImageError as e:
        assert 400 <= e.status < 500, (e.status, e.code, e.message)
        assert allowed_codes is None or e.code in allowed_codes, (e.code, e.message)
        return None
    assert array.shape == (28, 28) and array.dtype == np.float32
    assert np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0
    return array


@PROPERTY
@given(st.binary(max_size=4096))
def test_any_bytes_give_an_array_or_a_client_error(data):
    assert_array_or_client_error(lambda: preprocess_image(data))


def _seed_images():
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a clear 1; any picture will do, the bytes around it are what is fuzzed
    page = corpus.paper(digit)
    return [image_bytes(page, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP")] + [
        corpus.png_16bit_grey(digit)[0], corpus.png_palette_transparent(digit)[0], corpus.jpeg_cmyk(digit)[0]]


SEEDS = _seed_images()


@PROPERTY
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                                        max_size=12), st.floats(0.05, 1.0))
def test_corrupted_real_images_give_an_array_or_a_client_error(seed, flips, keep):
    """Real files with bytes overwritten and tails cut off: the parsers' hostile inputs."""
    data = bytearray(seed[:max(1, int(len(seed) * keep))])
    for where, value in flips:
        data[int(where * len(data))] = value
    assert_array_or_client_error(lambda: preprocess_image(bytes(data)))


FORMATS = {"PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"), "JPEG": ("L", "RGB", "CMYK"),
           "GIF": ("1", "L", "P"), "BMP": ("1", "L", "P", "RGB", "RGBA"), "WEBP": ("L", "RGB", "RGBA")}


@st.composite
def encoded_images(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    background = draw(st.integers(0, 255))
    pixels = np.full((height, width), background, np.uint8)
    for _ in range(draw(st.integers(0, 4))):  # a few rectangles of another shade: strokes, or nothing
        top, left = rng.integers(0, height), rng.integers(0, width)
        pixels[top:top + rng.integers(1, 60), left:left + rng.integers(1, 60)] = rng.integers(0, 256)
    if draw(st.booleans()):
        pixels = np.clip(pixels + rng.normal(0, draw(st.floats(0, 40)), pixels.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "L")
    if mode == "I;16":
        image = Image.fromarray(pixels.astype(np.uint16) * 257)
    elif mode == "LA":
        image = Image.merge("LA", (image, Image.fromarray(rng.integers(0, 256, pixels.shape, np.uint8))))
    elif mode != "L":
        image = image.convert(mode)
    return image_bytes(image, fmt)


@PROPERTY
@given(encoded_images())
def test_any_valid_image_gives_28x28_in_0_1_or_blank(data):
    """A decodable image is either read (28x28 in [0, 1]), has no ink (422 blank_image) or is too
    narrow to hold a digit (422 implausible_image)."""
    assert_array_or_client_error(lambda: preprocess_image(data), {"blank_image", "implausible_image"})


@PROPERTY
@given(hnp.arrays(st.sampled_from((np.float64, np.float32, np.int64, np.uint8)),
                  st.sampled_from(((28, 28), (784,), (28, 28, 1), (27, 28), (28, 28, 3), (0,), (5,))),
                  elements=None))
def test_any_pixel_array_gives_an_array_or_a_client_error(array):
    assert_array_or_client_error(lambda: preprocess_pixels(array.tolist()), {"invalid_pixels", "blank_image"})


@pytest.fixture(scope="module")
def client(predictor):
    return create_app({"TESTING": True, "PREDICTOR": predictor}).test_client()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=900)
PIXEL_ROWS = st.lists(st.lists(st.one_of(st.integers(-5, 300), st.floats(allow_nan=True)), min_size=28, max_size=28),
                      min_size=28, max_size=28)
BASE64ISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_:;,. ",
                    max_size=200)
DOCUMENTS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"pixels": JSON_VALUES | PIXEL_ROWS | st.lists(PIXEL_ROWS, max_size=3)}),
    st.fixed_dictionaries({"image": JSON_VALUES | BASE64ISH | BASE64ISH.map(lambda t: "data:image/png;base64," + t)}),
    st.fixed_dictionaries({"images": st.lists(BASE64ISH, max_size=5) | JSON_VALUES}),
)


@PROPERTY
@given(DOCUMENTS, st.sampled_from(("", "?preprocess=none", "?debug=1")))
def test_any_json_gets_an_answer_or_the_error_shape(client, document, query):
    response = client.post("/predict" + query, data=json.dumps(document), content_type="application/json")
    assert response.status_code < 500, response.json
    if response.status_code >= 400:
        assert_error(response, response.status_code)
    else:
        assert "digit" in response.json or "predictions" in response.json
