"""The drawing page in a real browser against the real server: draw, read, clear, undo, upload."""
import math

import pytest
from PIL import Image, ImageDraw

from tests.helpers import DESKTOP, DIGITS, PHONE, PLACES, arc, draw_with_mouse, image_bytes, pad_points, settled


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
