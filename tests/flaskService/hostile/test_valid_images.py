"""Tricky but valid images, sent to a real gunicorn, are read as the digit they show."""
import base64

import numpy as np
import pytest
import requests

from flaskService.digits.preprocess import preprocess_image
from tests import corpus
from tests.flaskService.hostile.client import post


def post_image(service, data, content_type):
    return post(service, data=data, headers={"Content-Type": content_type})


def assert_reads(response, digit):
    assert response.status_code == 200, response.text[:300]
    assert response.json()["digit"] == digit, response.json()


@pytest.mark.parametrize("encoding", sorted(corpus.VALID))
@pytest.mark.parametrize("digit", (2, 4, 7))
def test_tricky_encoding_reads_the_digit(service, clear_digits, encoding, digit):
    """16-bit grey, CMYK JPEG, palette+tRNS, LA, 1-bit BMP, WebP, lying Content-Type: the same digit."""
    data, content_type = corpus.VALID[encoding](clear_digits[digit][0])
    assert_reads(post_image(service, data, content_type), digit)


def test_palette_transparency_keeps_the_grey_levels(clear_digits):
    """A palette PNG whose white entry is transparent is the same picture as the opaque PNG: the ink's
    grey levels count, not just which pixels are opaque (reading only alpha thickens every stroke and
    turns ~3% of clear MNIST test digits into another digit)."""
    for images in clear_digits.values():
        for image in images:
            opaque = preprocess_image(corpus.png_grey(image)[0])
            see_through = preprocess_image(corpus.png_palette_transparent(image)[0])
            assert np.abs(see_through - opaque).mean() < 0.02


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("digit", (4, 7))
def test_exif_orientation_is_applied(service, clear_digits, orientation, digit):
    """A JPEG stored sideways or mirrored is read upright, as its EXIF orientation says."""
    data = corpus.jpeg_exif_rotated(clear_digits[digit][0], orientation)
    assert_reads(post_image(service, data, "image/jpeg"), digit)


@pytest.mark.parametrize("exif", sorted(corpus.BROKEN_EXIF))
def test_broken_exif_is_ignored(service, clear_digits, exif):
    """Out-of-range orientations, looping or truncated EXIF: the picture is still read as it is stored."""
    data = corpus.jpeg_with_exif(clear_digits[7][0], corpus.BROKEN_EXIF[exif])
    assert_reads(post_image(service, data, "image/jpeg"), 7)


@pytest.mark.parametrize("animation", sorted(corpus.ANIMATED))
def test_animation_is_read_from_its_first_frame(service, clear_digits, animation):
    data, content_type = corpus.ANIMATED[animation](clear_digits[3][0], clear_digits[8][0])
    assert_reads(post_image(service, data, content_type), 3)


def test_multipart_with_a_lying_filename_and_type(service, clear_digits):
    """A JPEG uploaded as digit.png with type image/gif is still a JPEG of a 5."""
    data = corpus.jpeg_sent_as_png(clear_digits[5][0])[0]
    response = post(service, files={"image": ("digit.png", data, "image/gif")})
    assert_reads(response, 5)


def test_data_url_with_a_lying_type(service, clear_digits):
    """data:image/gif;base64,<a PNG> is read as the PNG it holds."""
    data = corpus.png_grey(clear_digits[6][0])[0]
    response = post(service, json={"image": "data:image/gif;base64," + base64.b64encode(data).decode()})
    assert_reads(response, 6)


def test_urlencoded_form_with_unescaped_plus_signs(service, clear_digits):
    """A form field holding a data URL whose '+' became spaces (no URL-encoding) still decodes."""
    data = corpus.png_grey(clear_digits[9][0])[0]
    text = "data:image/png;base64," + base64.b64encode(data).decode()
    assert "+" in text
    body = "image=" + text.replace("+", " ")
    response = post(service, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_reads(response, 9)


def test_a_batch_of_every_encoding_in_one_request(service, clear_digits):
    """One JSON request with every tricky encoding of a 2 gives a 2 for each, in order."""
    images = [corpus.VALID[name](clear_digits[2][1])[0] for name in sorted(corpus.VALID)]
    response = requests.post(service.url + "/predict", timeout=10,
                             json={"images": [base64.b64encode(i).decode() for i in images]})
    assert response.status_code == 200, response.text[:300]
    assert [p["digit"] for p in response.json()["predictions"]] == [2] * len(images)
