"""Digits on the backgrounds people write them on (issue 14): printed boxes, comb fields, ruled and
squared paper, 田字格 grids, low-resolution grey scans, tight crops. Printed lines are removed before
the digit is cut out; strokes that cross them stay."""
import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from flaskService.digits import preprocess
from modelTrain.evalsets.renders import KINDS, MEDIA, render_background
from tests.helpers import image_bytes

PER_KIND = 200  # 7 kinds x 200 = 1,400 requests; 200 tells 98.5% (3 misses) from 97% (6)
TARGET = 0.985  # issue 14's target for every kind
# What the shipped model and line removal reach now, per kind (README: box 98.5%, comb 97.5%, ruled
# 99.0%, squared 97.5%, 田字格 98.0%, low-resolution scans 95.0%, tight crops 100%): four kinds are
# still short of TARGET. These floors guard against going back; the issue stays open until TARGET holds.
FLOORS = {"box": TARGET, "comb": 0.97, "ruled": TARGET, "squared": 0.97, "tianzige": 0.975,
          "low_resolution": 0.945, "tight_crop": TARGET}
FIRST = 1000  # MNIST test digits from here on (the 900 user-style renders use the first 900)


@pytest.fixture(scope="module")
def accuracy_by_kind(predictor, mnist):
    """Each kind's share of digits read right through POST /predict, on its own 200 test digits
    spread over clean pages, photos and transparent canvases."""
    from flaskService import create_app

    client = create_app({"TESTING": True, "PREDICTOR": predictor}).test_client()
    accuracy = {}
    for k, kind in enumerate(KINDS):
        rng = np.random.default_rng(1400 + k)
        right = 0
        for i in range(FIRST + k * PER_KIND, FIRST + (k + 1) * PER_KIND):
            data = render_background(mnist["x_test"][i], kind, MEDIA[i % len(MEDIA)], rng)
            response = client.post("/predict", data=data, content_type="image/png")
            assert response.status_code == 200, (kind, i, response.json)
            right += response.json["digit"] == int(mnist["y_test"][i])
        accuracy[kind] = right / PER_KIND
    print(f"accuracy by kind {accuracy}")
    return accuracy


@pytest.mark.parametrize("kind", KINDS)
def test_digits_on_backgrounds_are_read_right(accuracy_by_kind, kind):
    """Each kind's digits are read right at least as often as today (FLOORS; 98.5% for ruled paper
    and tight crops, the issue's target)."""
    assert accuracy_by_kind[kind] >= FLOORS[kind], accuracy_by_kind


def page(size=(300, 240), paper=(245, 243, 235)):
    return Image.new("RGB", size, paper)


def test_a_rule_is_removed_and_the_digit_kept():
    """A stroke on ruled paper comes out alone: the rules (light or as dark as the ink) are gone."""
    for rule in ((150, 150, 150), (90, 130, 210), (30, 30, 30)):
        image = page()
        draw = ImageDraw.Draw(image)
        for y in (40, 100, 160, 220):
            draw.rectangle([0, y, 299, y + 2], fill=rule)
        draw.rectangle([140, 115, 152, 150], fill=(20, 20, 30))  # between two rules, touching neither
        ink = preprocess.find_ink(image)
        assert ink.pixels.shape == (36, 13), (rule, ink.pixels.shape)  # the stroke's own box
        assert (ink.left, ink.top) == (140, 115)


def test_strokes_crossing_a_line_survive():
    """A stroke written through a rule (a 4 through a grid line) is not cut where it crosses, and
    a bar lying on a rule (the 7's) is not taken for the rule."""
    image = page()
    draw = ImageDraw.Draw(image)
    for y in (30, 120, 210):
        draw.rectangle([0, y, 299, y + 2], fill=(30, 30, 30))
    draw.rectangle([100, 80, 111, 170], fill=(20, 20, 30))  # crosses the rule at y = 120
    draw.rectangle([160, 114, 230, 127], fill=(20, 20, 30))  # a thick bar lying on that rule
    ink = preprocess.find_ink(image)
    pixels = ink.pixels
    assert (ink.left, ink.top) == (100, 80) and pixels.shape == (91, 131)
    stroke = pixels[:, 100 - ink.left:112 - ink.left]
    assert stroke.min(axis=1).min() > 0.8  # every row of the crossing stroke, the rule's rows too
    bar = pixels[114 - ink.top:128 - ink.top, 160 - ink.left:231 - ink.left]
    assert bar.mean() > 0.9
    # and the rule itself is gone between the strokes
    assert pixels[120 - ink.top:123 - ink.top, 112 - ink.left + 3:160 - ink.left - 3].max() < 0.05


def test_the_bar_of_a_7_in_a_box_is_not_a_line_of_the_box():
    """A 7 written in a box: its bar is as long as half the page, straight and thin enough for a
    line, but shorter than the box's top and bottom and stopping inside the page; it stays (it was
    erased, and the 7 read as a 1 or a 4), and the box goes."""
    image = page()
    draw = ImageDraw.Draw(image)
    for y in (30, 210):
        draw.rectangle([0, y, 299, y + 2], fill=(90, 130, 210))  # the top and bottom of a row of boxes
    for x in (50, 250):
        draw.rectangle([x, 30, x + 2, 212], fill=(90, 130, 210))  # the sides of the middle one
    draw.rectangle([80, 60, 229, 71], fill=(20, 20, 30))  # the bar: half the page wide, 12 px thick
    draw.line([(225, 66), (130, 195)], fill=(20, 20, 30), width=12)
    ink = preprocess.find_ink(image)
    assert (ink.left, ink.top) == (80, 60) and ink.pixels.shape == (139, 151)  # the 7's box, no line's
    assert ink.pixels[:12, :150].mean() > 0.95  # the whole bar


def _low_resolution_ring(resample):
    """A thick grey 0 scanned at 12x16 px, blown up 15 times: strokes fill whole blocks of the image."""
    small = Image.new("L", (12, 16), 190)
    ImageDraw.Draw(small).ellipse([0, 0, 11, 15], outline=60, width=4)
    return small.resize((180, 240), resample)


@pytest.mark.parametrize("resample", [Image.Resampling.BILINEAR, Image.Resampling.NEAREST])
def test_thick_low_resolution_strokes_are_not_hollowed_out(resample):
    """The inside of a thick grey stroke is ink, not paper (the haze removal took it for paper)."""
    ink = preprocess.find_ink(_low_resolution_ring(resample)).pixels
    assert ink.shape == (240, 180)  # the ring touches all four edges, and so does its ink
    # the middle of the ring's stroke on each side (0 before: only the stroke's edges were ink) ...
    for row, col in ((120, 30), (120, 150), (30, 90), (210, 90)):
        assert ink[row, col] > 0.6, (row, col, ink[row, col])
    assert ink[120, 90] < 0.05  # ... and the paper inside the ring


def test_ink_at_the_edges_of_a_tight_crop_is_kept():
    """A digit cut out with no margin (a 7 whose bar runs along the top edge from side to side)
    keeps the strokes that touch the image's edges."""
    crop = Image.new("L", (200, 260), 235)
    draw = ImageDraw.Draw(crop)
    draw.line([(0, 8), (199, 8)], fill=30, width=17)
    draw.line([(190, 8), (60, 259)], fill=30, width=17)
    ink = preprocess.find_ink(crop).pixels
    assert ink.shape == (260, 200)
    assert ink[0].max() > 0.9 and ink[:, 0].max() > 0.9 and ink[:, -1].max() > 0.9 and ink[-1].max() > 0.9
    assert ink[8, 5:195].min() > 0.9  # the whole bar, though it crosses the image like a rule


@pytest.mark.parametrize("kind", ["box", "comb", "ruled", "squared", "tianzige"])
def test_an_empty_form_is_blank(kind):
    """A form or exercise-book page with nothing written on it is answered as blank, not as a digit."""
    data = render_background(np.zeros((28, 28), np.uint8), kind, "page_png", np.random.default_rng(3))
    with pytest.raises(preprocess.ImageError) as error:
        preprocess.preprocess_image(data)
    assert error.value.status == 422 and error.value.code == "blank_image"


def test_debug_image_shows_the_digit_without_its_rules(client, mnist):
    """?debug=1 returns the cleaned 28x28 input: the rules across a 0 are gone from it, and it is
    the same picture as that 0 on blank paper."""
    zero = mnist["x_test"][3]
    assert mnist["y_test"][3] == 0
    ink = np.asarray(Image.fromarray(zero).resize((168, 168), Image.Resampling.BICUBIC), np.float32) / 255
    paper = np.full((240, 260, 3), (245, 243, 235), np.float32)
    blank = paper.copy()
    ruled = paper.copy()
    for y in range(15, 240, 45):  # rules 45 px apart: three of them cross the 0
        ruled[y:y + 3] = (110, 140, 210)
    pen = np.array((25, 25, 35), np.float32)
    inputs = []
    for picture in (blank, ruled):
        picture[36:204, 46:214] = picture[36:204, 46:214] * (1 - ink[..., None]) + pen * ink[..., None]
        response = client.post("/predict?debug=1", data=image_bytes(picture.astype(np.uint8)),
                               content_type="image/png")
        assert response.status_code == 200 and response.json["digit"] == 0, response.json
        encoded = response.json["input"].split(",", 1)[1]
        inputs.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))), np.float32) / 255)
    on_blank, on_ruled = inputs
    assert np.abs(on_ruled - on_blank).mean() < 0.02
    # no line left: no row of the input is inked from edge to edge of the digit's 20 px box
    assert ((on_ruled > 0.2).sum(axis=1) < 16).all()


def _on_a_table(page, ground=(60, 45, 35)):
    """`page` photographed on a darker ground showing all round it."""
    photo = Image.new("RGB", (round(page.width * 1.4), round(page.height * 1.4)), ground)
    photo.paste(page.convert("RGB"), (round(page.width * 0.2), round(page.height * 0.2)))
    return photo


@pytest.mark.parametrize("ground", [(60, 45, 35), (20, 20, 20), (120, 110, 100)])
def test_a_sheet_photographed_on_a_darker_ground_is_read_as_paper(client, mnist, ground):
    """The ground framing the photo is not the paper: the sheet is read, not taken for a block of
    ink with holes in it. The digit's box is where it lies on the sheet."""
    for i in range(FIRST, FIRST + 5):
        sheet = Image.new("L", (400, 300), 245)
        digit = Image.fromarray(255 - mnist["x_test"][i]).resize((112, 112), Image.Resampling.BICUBIC)
        sheet.paste(digit, (150, 90))
        photo = _on_a_table(sheet, ground)
        response = client.post("/predict", data=image_bytes(photo), content_type="image/png")
        assert response.status_code == 200 and response.json["digit"] == int(mnist["y_test"][i]), response.json
        ink = preprocess.find_ink(photo)
        left, top = ink.left / ink.scale, ink.top / ink.scale
        assert 80 + 150 <= left and 60 + 90 <= top  # inside the digit's 112 px square on the sheet
        assert left + ink.pixels.shape[1] / ink.scale <= 80 + 150 + 112


@pytest.mark.parametrize("shape", ["bar", "ring"])
def test_a_great_solid_stroke_is_not_a_sheet(shape):
    """A thick 1 or 0 filling the picture stays ink: a bar has no writing inside it, a ring's hole
    is more than writing leaves on a sheet."""
    page = Image.new("L", (300, 300), 255)
    draw = ImageDraw.Draw(page)
    if shape == "bar":
        draw.rectangle([40, 10, 260, 290], fill=0)
    else:
        draw.ellipse([10, 10, 290, 290], fill=0)
        draw.ellipse([110, 110, 190, 190], fill=255)
    ink = preprocess.find_ink(page)
    height, width = (281, 221) if shape == "bar" else (281, 281)
    assert abs(ink.pixels.shape[0] - height) <= 3 and abs(ink.pixels.shape[1] - width) <= 3
    assert ink.pixels.mean() > 0.5
