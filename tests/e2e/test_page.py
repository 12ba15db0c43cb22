"""The drawing page in a real browser against the real server: draw, read, clear, undo, upload."""
import math

import pytest
from PIL import Image, ImageDraw

from tests.conftest import image_bytes

from .conftest import DESKTOP, PHONE


def arc(cx, cy, rx, ry, start, end, n=14):
    """Points on an ellipse from angle `start` to `end` (degrees; 0 = right, 90 = down on screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start + (end - start) * i / (n - 1) for i in range(n))]


def smooth(points, per_segment=4):
    """A Catmull-Rom curve through `points`: a hand moves in curves, not corners."""
    padded = [points[0], *points, points[-1]]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1:i + 3]
        for step in range(per_segment):
            t = step / per_segment
            out.append(tuple(0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t * t
                                    + (-a + 3 * b - 3 * c + d) * t ** 3) for a, b, c, d in zip(p0, p1, p2, p3)))
    return out + [points[-1]]


# Each digit as a person writes it: strokes in writing order and direction, in a box one unit high
# (x right, y down). A 0 starts at the top and goes anticlockwise, a 4 is two strokes, a 5's bar comes last.
DIGITS = {
    0: [arc(0.5, 0.5, 0.4, 0.5, 265, -95, 22)],
    1: [[(0.58, 0.0), (0.54, 0.35), (0.48, 0.7), (0.44, 1.0)]],
    2: [arc(0.48, 0.28, 0.4, 0.28, 195, 380, 12) + smooth([(0.85, 0.4), (0.5, 0.72), (0.08, 1.0)], 3)
        + [(0.5, 0.99), (0.95, 0.98)]],
    3: [arc(0.45, 0.26, 0.4, 0.25, 205, 450, 14)[:-1] + arc(0.45, 0.75, 0.46, 0.25, -90, 155, 14)],
    4: [[(0.28, 0.0), (0.18, 0.3), (0.06, 0.62), (0.5, 0.62), (0.95, 0.6)], [(0.72, 0.08), (0.7, 0.55), (0.68, 1.0)]],
    5: [[(0.22, 0.02), (0.18, 0.25), (0.15, 0.47)] + arc(0.47, 0.7, 0.42, 0.3, -130, 150, 14),
        [(0.22, 0.0), (0.55, 0.0), (0.9, -0.02)]],
    6: [smooth([(0.78, 0.0), (0.45, 0.15), (0.25, 0.4), (0.18, 0.7), (0.3, 0.95), (0.55, 1.0), (0.78, 0.85),
                (0.78, 0.62), (0.55, 0.5), (0.32, 0.56), (0.2, 0.7)])],
    7: [[(0.05, 0.02), (0.5, 0.0), (0.95, 0.0)] + smooth([(0.95, 0.0), (0.7, 0.4), (0.52, 0.72), (0.42, 1.0)], 3)],
    8: [smooth([(0.8, 0.1), (0.55, 0.0), (0.25, 0.06), (0.2, 0.26), (0.5, 0.47), (0.82, 0.66), (0.8, 0.9),
                (0.5, 1.0), (0.18, 0.9), (0.2, 0.67), (0.5, 0.47), (0.76, 0.28), (0.8, 0.1)])],
    9: [arc(0.45, 0.27, 0.35, 0.27, 10, -350, 20) + smooth([(0.8, 0.3), (0.78, 0.65), (0.74, 1.0)], 3)],
}
WIDTH = 0.7  # handwritten digits are about 0.7 as wide as they are tall
SLANT = 0.12  # and lean forward a little

# Where on the pad each digit is written and how tall, as shares of the pad's side: people do not
# write in the middle, nor at one size.
PLACES = [(0.30, 0.15, 0.70), (0.45, 0.10, 0.60), (0.15, 0.25, 0.55), (0.50, 0.55, 0.35), (0.20, 0.10, 0.75),
          (0.25, 0.20, 0.65), (0.50, 0.45, 0.45), (0.20, 0.15, 0.70), (0.35, 0.05, 0.80), (0.10, 0.40, 0.50)]

RESULT_SETTLED = """() => {
    const result = document.getElementById('result');
    return result.getAttribute('aria-busy') !== 'true' && !result.classList.contains('stale')
        && (document.getElementById('digit').textContent !== '' || result.classList.contains('failed')
            || result.classList.contains('not-digit'));
}"""


def pad_points(page, digit, place):
    """The digit's strokes in page coordinates, written at `place` = (left, top, height) on the pad."""
    box = page.locator("#pad").bounding_box()
    left, top, height = (share * box["width"] for share in place)
    return [[(box["x"] + left + height * (WIDTH * x + SLANT * (0.5 - y)), box["y"] + top + height * y)
             for x, y in stroke] for stroke in DIGITS[digit]]


def draw_with_mouse(page, strokes):
    for stroke in strokes:
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point, steps=3)
        page.mouse.up()


def draw_with_touch(page, strokes):
    """Real touch input (trusted, hit-tested, subject to touch-action), as a finger sends it."""
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        for kind, point in [("touchStart", stroke[0]), *(("touchMove", p) for p in stroke[1:])]:
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": point[0], "y": point[1]}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def draw_with_pen(page, strokes):
    """Real pen input: mouse events that Chromium delivers with pointerType 'pen'."""
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        x, y = stroke[0]
        cdp.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "button": "left",
                                              "buttons": 1, "clickCount": 1, "pointerType": "pen"})
        for x, y in stroke[1:]:
            cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left",
                                                  "buttons": 1, "pointerType": "pen"})
        cdp.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "button": "left",
                                              "buttons": 0, "clickCount": 1, "pointerType": "pen"})


def settled(page):
    """Wait for the page to finish reading; return (digit shown, status line)."""
    page.wait_for_function(RESULT_SETTLED)
    return page.text_content("#digit"), page.text_content("#status")


def pad_pixels(page):
    return page.evaluate("() => document.getElementById('pad').toDataURL()")


def pad_is_empty(page):
    return page.evaluate("""() => {
        const pad = document.getElementById('pad');
        const pixels = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
        return pixels.every((value, i) => i % 4 !== 3 || value === 0);
    }""")


def record_pointer_types(page):
    page.evaluate("""() => {
        window.pointerTypes = new Set();
        document.getElementById('pad').addEventListener('pointerdown', (e) => window.pointerTypes.add(e.pointerType));
    }""")


def png_of_digit_seven():
    """A photo-like upload: dark ink on white paper, RGB, not 28x28."""
    image = Image.new("RGB", (240, 300), "white")
    ImageDraw.Draw(image).line([(50, 60), (190, 55), (120, 250)], fill=(30, 30, 60), width=18, joint="curve")
    return image_bytes(image)


def test_handwritten_digits_are_read(open_page, artifacts):
    """Each digit 0-9, written with the mouse as a person writes it, is read right (9 of 10 at least)."""
    tab = open_page(DESKTOP)
    page = tab.page
    read = {}
    for digit, place in zip(DIGITS, PLACES):
        page.click("#clear")
        draw_with_mouse(page, pad_points(page, digit, place))
        shown, status = settled(page)
        read[digit] = shown
        assert shown in "0123456789" and len(shown) == 1, status
        assert status == f"The model reads {shown}, {page.text_content('#confidence').removesuffix(' sure')} sure."
    page.screenshot(path=artifacts / "page-desktop.png", full_page=True, animations="disabled")
    wrong = {digit: shown for digit, shown in read.items() if shown != str(digit)}
    print(f"read right: {10 - len(wrong)} of 10; misread (drawn: shown): {wrong}")
    assert len(wrong) <= 1, f"misread (drawn: shown): {wrong}"
    assert tab.console_errors == []


def test_result_shows_probabilities_and_model_input(open_page):
    """A two-stroke digit is read once, after the last stroke: ten bars, the top one the digit shown,
    and the 28x28 input enlarged."""
    tab = open_page(DESKTOP)
    page = tab.page
    history = page.evaluate_handle("""() => {
        const seen = [];
        new MutationObserver(() => seen.push(document.getElementById('result').getAttribute('aria-busy')))
            .observe(document.getElementById('result'), {attributes: true, attributeFilter: ['aria-busy']});
        return seen;
    }""")
    draw_with_mouse(page, pad_points(page, 4, PLACES[4]))
    shown, _ = settled(page)
    assert "true" in history.json_value(), "no waiting state while the server was reading"
    assert len([url for url in tab.requests if "/predict" in url]) == 1
    bars = page.locator("#probs > *")
    assert bars.count() == 10
    heights = [float(h.removesuffix("%")) for h in bars.evaluate_all("(bars) => bars.map(b => b.querySelector('.fill').style.height)")]
    assert max(heights) == heights[int(shown)] > 50
    assert abs(sum(heights) - 100) < 1
    assert page.locator("#probs .top").text_content().startswith(shown)
    image = page.locator("#seen")
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [28, 28]
    box = image.bounding_box()
    assert box["width"] >= 28 * 3 and box["height"] >= 28 * 3
    assert page.text_content("#confidence").endswith("% sure")


# Drawings that are not one digit, in the pad's unit box: a five-pointed star in one stroke, and a
# smiley (face, two eyes, a mouth).
STAR = [[(0.5 + 0.45 * math.cos(math.radians(-90 + 144 * i)), 0.5 + 0.45 * math.sin(math.radians(-90 + 144 * i)))
         for i in range(6)]]
SMILEY = [arc(0.5, 0.5, 0.42, 0.42, -90, 270, 30), arc(0.35, 0.38, 0.04, 0.04, 0, 360, 8),
          arc(0.65, 0.38, 0.04, 0.04, 0, 360, 8), arc(0.5, 0.55, 0.22, 0.18, 20, 160, 12)]


def pad_drawing(page, strokes, place=(0.15, 0.15, 0.7)):
    """Strokes given in a unit box, in page coordinates at `place` = (left, top, side) on the pad."""
    box = page.locator("#pad").bounding_box()
    left, top, side = (share * box["width"] for share in place)
    return [[(box["x"] + left + side * x, box["y"] + top + side * y) for x, y in stroke] for stroke in strokes]


@pytest.mark.parametrize(("name", "strokes"), (("star", STAR), ("smiley", SMILEY)))
def test_a_drawing_that_is_not_a_digit_is_called_so(open_page, artifacts, name, strokes):
    """A star or a smiley: the page says it doesn't look like a digit, shows no big digit, and keeps the
    probabilities visible."""
    tab = open_page(DESKTOP)
    page = tab.page
    draw_with_mouse(page, pad_drawing(page, strokes))
    shown, status = settled(page)
    page.screenshot(path=artifacts / f"page-not-a-digit-{name}.png", full_page=True, animations="disabled")
    assert (shown, status) == ("", "That doesn't look like a digit.")
    assert page.locator("#result.not-digit").count() == 1 and page.locator("#probs .top").count() == 0
    values = page.locator("#probs .value").all_text_contents()
    assert len(values) == 10 and all(v.endswith("%") for v in values)
    assert tab.console_errors == []


def test_two_digits_side_by_side_point_to_reading_a_number(open_page):
    """A 1 and a 7 written side by side: the page says several digits, not a digit."""
    tab = open_page(DESKTOP)
    page = tab.page
    draw_with_mouse(page, pad_points(page, 1, (0.15, 0.3, 0.4)) + pad_points(page, 7, (0.55, 0.3, 0.4)))
    shown, status = settled(page)
    assert (shown, status) == ("", "Several digits: try reading a number.")


def test_touch_drawing_reads_and_does_not_scroll(open_page, artifacts):
    """A finger on a 360 px phone draws (touch pointer events), the page does not scroll, the digit is read."""
    tab = open_page(PHONE)
    page = tab.page
    record_pointer_types(page)
    assert page.evaluate("() => getComputedStyle(document.getElementById('pad')).touchAction") == "none"
    assert page.evaluate("() => document.documentElement.scrollHeight > innerHeight"), "page cannot scroll: test is moot"
    draw_with_touch(page, pad_points(page, 4, (0.2, 0.1, 0.75)))
    shown, status = settled(page)
    assert page.evaluate("() => [...window.pointerTypes]") == ["touch"]
    assert page.evaluate("() => scrollY") == 0
    assert shown == "4", status
    page.screenshot(path=artifacts / "page-phone.png", full_page=True, animations="disabled")
    assert tab.console_errors == []


def test_pen_drawing_reads(open_page):
    """A pen (pointerType 'pen') draws like the mouse does."""
    page = open_page(DESKTOP).page
    record_pointer_types(page)
    draw_with_pen(page, pad_points(page, 0, PLACES[0]))
    shown, status = settled(page)
    assert page.evaluate("() => [...window.pointerTypes]") == ["pen"]
    assert shown == "0", status


def test_phone_layout_fits_360px(open_page):
    """At 360 px nothing overflows sideways, the pad is finger-sized, and the bitmap follows the pixel ratio."""
    page = open_page(PHONE).page
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    pad = page.locator("#pad").bounding_box()
    assert 260 <= pad["width"] <= 360 and pad["x"] >= 0 and pad["x"] + pad["width"] <= 360
    assert pad["width"] == pytest.approx(pad["height"], abs=1)
    assert page.evaluate("() => document.getElementById('pad').width") == pytest.approx(2 * pad["width"], abs=2)
    for control in ("#undo", "#clear", "#read", "label[for=upload]"):
        box = page.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["height"] >= 40, control


def test_clear_empties_pad_and_answer(open_page):
    """Clear wipes the strokes and the whole answer."""
    page = open_page(DESKTOP).page
    draw_with_mouse(page, pad_points(page, 1, PLACES[1]))
    settled(page)
    page.click("#clear")
    assert pad_is_empty(page)
    assert page.text_content("#digit") == ""
    assert page.locator("#seen").is_hidden()
    assert page.locator("#probs .top").count() == 0
    assert page.text_content("#status") == "Nothing drawn yet."


def test_undo_removes_the_last_stroke(open_page):
    """Undo (button, then Ctrl+Z) takes back one stroke at a time and reads what is left."""
    page = open_page(DESKTOP).page
    assert page.locator("#undo").is_disabled()
    draw_with_mouse(page, pad_points(page, 3, PLACES[3]))
    shown, _ = settled(page)
    one_stroke = pad_pixels(page)
    draw_with_mouse(page, pad_points(page, 1, (0.7, 0.1, 0.5)))
    settled(page)
    assert pad_pixels(page) != one_stroke
    page.click("#undo")
    assert pad_pixels(page) == one_stroke
    assert settled(page)[0] == shown
    page.keyboard.press("Control+z")
    assert pad_is_empty(page)
    assert page.text_content("#digit") == ""
    assert page.locator("#undo").is_disabled()


def test_upload_reads_an_image_file(open_page):
    """An uploaded PNG goes through the same endpoint and is read; a file that is no image is explained."""
    tab = open_page(DESKTOP)
    page = tab.page
    page.set_input_files("#upload", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": png_of_digit_seven()}])
    shown, status = settled(page)
    assert shown == "7", status
    assert page.locator("#seen").is_visible()
    page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a digit"}])
    shown, status = settled(page)
    assert shown == ""
    assert status == "That file could not be read as an image."
    assert page.locator("#status.error").is_visible()


def test_reading_a_blank_pad_says_draw_first(open_page, artifacts):
    """The server's 422 blank_image becomes a plain instruction."""
    page = open_page(PHONE).page
    page.click("#read")
    shown, status = settled(page)
    assert shown == ""
    assert status == "Nothing to read: draw a digit first."
    assert page.locator("#status.error").is_visible()
    page.screenshot(path=artifacts / "page-phone-blank.png", animations="disabled")


def test_controls_are_keyboard_reachable_and_labelled(open_page):
    """Tab reaches every control in order and Enter uses them (upload included); all are labelled."""
    page = open_page(DESKTOP).page
    # Listening for the chooser from the start makes Chromium hand it over instead of racing the key.
    page.on("filechooser", lambda chooser: None)
    draw_with_mouse(page, pad_points(page, 2, PLACES[2]))
    settled(page)
    focused = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("() => document.activeElement.id"))
    assert focused == ["undo", "clear", "read", "upload"]
    assert page.evaluate("() => document.activeElement.matches(':focus-visible')")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(files=[{"name": "seven.png", "mimeType": "image/png", "buffer": png_of_digit_seven()}])
    shown, status = settled(page)
    assert shown == "7", status
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # on Clear
    assert page.text_content("#digit") == ""
    assert page.get_by_label("Upload an image").get_attribute("id") == "upload"
    assert page.get_by_role("img", name="Drawing pad").get_attribute("id") == "pad"
    for name in ("Undo", "Clear", "Read"):
        assert page.get_by_role("button", name=name).count() == 1
    assert page.get_by_role("status").get_attribute("id") == "status"
    assert page.get_by_role("list", name="Probability of each digit").get_attribute("id") == "probs"


def test_page_uses_only_its_own_server_and_logs_no_errors(open_page):
    """Loading, drawing, reading, undo, clear and upload request nothing from any other origin, log no errors."""
    tab = open_page(DESKTOP)
    page = tab.page
    draw_with_mouse(page, pad_points(page, 5, PLACES[5]))
    settled(page)
    page.click("#undo")
    settled(page)
    page.click("#clear")
    page.set_input_files("#upload", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": png_of_digit_seven()}])
    settled(page)
    assert "default-src 'none'" in tab.response.headers["content-security-policy"]
    assert tab.foreign_requests() == []
    assert any(url.startswith(tab.origin + "/predict") for url in tab.requests)
    assert tab.console_errors == []
