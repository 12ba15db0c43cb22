"""The drawing page's Number mode in a real browser against the real server: a number written with
the mouse is read back, digit by digit, with each digit's box and what the model saw."""
import pytest

from flaskService.digits.sequence import LINE_HEIGHT
from tests.helpers import DESKTOP, DIGITS, PHONE, SLANT, WIDTH, draw_with_mouse

NUMBER_SETTLED = """() => {
    const section = document.getElementById('number');
    return section.getAttribute('aria-busy') !== 'true' && !section.classList.contains('stale')
        && (document.getElementById('number-text').textContent !== '' || section.classList.contains('failed'));
}"""


def number_strokes(page, digits, height=0.6, gap=0.25):
    """The digits' strokes in page coordinates, written left to right across the number pad, each
    `height` of the pad's height tall with `gap` of that height between them."""
    box = page.locator("#number-pad").bounding_box()
    size = height * box["height"]
    left, top = box["x"] + 0.1 * box["width"], box["y"] + 0.2 * box["height"]
    strokes = []
    for digit in digits:
        strokes += [[(left + size * (WIDTH * x + SLANT * (0.5 - y)), top + size * y) for x, y in stroke]
                    for stroke in DIGITS[digit]]
        left += size * (WIDTH + gap)
    return strokes


def open_number_mode(open_page, options=DESKTOP):
    tab = open_page(options)
    tab.page.click("#mode-number")
    assert tab.page.is_visible("#number-pad") and not tab.page.is_visible("#pad")
    return tab


@pytest.mark.parametrize("digits", [(3, 0, 7), (2, 4, 1)])
def test_a_number_written_with_the_mouse_is_read(open_page, artifacts, digits):
    tab = open_number_mode(open_page)
    page = tab.page
    draw_with_mouse(page, number_strokes(page, digits))
    page.wait_for_function(NUMBER_SETTLED)
    page.screenshot(path=artifacts / f"number-{''.join(map(str, digits))}.png")
    expected = "".join(map(str, digits))
    assert page.text_content("#number-text") == expected, page.text_content("#number-status")
    assert expected in page.text_content("#number-status")
    # One entry per digit, each with the columns of the line the model read it from, and its confidence.
    items = page.locator("#number-digits li")
    assert items.count() == 3
    for index in range(3):
        item = items.nth(index)
        assert item.text_content().startswith(expected[index]) and "%" in item.text_content()
        assert page.evaluate("(img) => img.naturalHeight", item.locator("img").element_handle()) == LINE_HEIGHT
    # The boxes are drawn on the pad: red pixels appear where there were none before the answer.
    assert page.evaluate("""() => {
        const pad = document.getElementById('number-pad');
        const data = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
        for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] < 60 && data[i + 3] > 200) return true;
        return false;
    }""")
    assert tab.console_errors == [] and tab.foreign_requests() == []


def test_clear_and_back_to_digit_mode(open_page):
    tab = open_number_mode(open_page)
    page = tab.page
    draw_with_mouse(page, number_strokes(page, (1, 7)))
    page.wait_for_function(NUMBER_SETTLED)
    page.click("#number-clear")
    assert page.text_content("#number-text") == "" and page.locator("#number-digits li").count() == 0
    page.click("#mode-digit")
    assert page.is_visible("#pad") and not page.is_visible("#number-pad")
    assert page.text_content("h1") == "Draw a digit"


def test_reading_an_empty_pad_says_write_first(open_page):
    tab = open_number_mode(open_page)
    tab.page.click("#number-read")
    tab.page.wait_for_function(NUMBER_SETTLED)
    assert "write a number first" in tab.page.text_content("#number-status")


def test_number_pad_fits_a_phone(open_page):
    tab = open_number_mode(open_page, PHONE)
    box = tab.page.locator("#number-pad").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["width"] > 2.5 * box["height"]
