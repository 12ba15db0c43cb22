"""The drawing page's "Wrong? Tap the right digit" in real Chromium against the session's gunicorn:
the correction is stored with the image that was read and the prediction's request id."""
import os

import numpy as np
import sqlalchemy as sa

from flaskService.feedback_store import corrections, engine_for
from flaskService.digits.preprocess import preprocess_image
from tests.helpers import ARTIFACTS, DESKTOP, PHONE, PLACES, draw_with_mouse, pad_points, settled


def stored_from_the_page():
    # The session's server stores in the suite's throwaway SQLite file (tests/conftest.py feedback_db).
    engine = engine_for(os.environ["FEEDBACK_DB"])
    with engine.connect() as connection:
        rows = connection.execute(sa.select(corrections).where(corrections.c.source == "page")
                                  .order_by(corrections.c.id)).all()
    engine.dispose()
    return rows


def test_a_tapped_correction_is_stored(open_page):
    tab = open_page(DESKTOP)
    page = tab.page
    assert not page.is_visible("#feedback"), "corrections offered before anything was read"
    before = len(stored_from_the_page())
    with page.expect_response(lambda response: "/predict" in response.url) as predicted:
        draw_with_mouse(page, pad_points(page, 7, PLACES[7]))
    shown, _ = settled(page)
    request_id = predicted.value.headers["x-request-id"]
    assert page.is_visible("#feedback")
    wrong = str((int(shown) + 1) % 10)  # the person says it is another digit
    with page.expect_response(lambda response: response.url.endswith("/feedback")) as sent:
        page.click(f"#feedback button[data-digit='{wrong}']")
    assert sent.value.status == 201
    page.wait_for_function("() => document.getElementById('feedback-status').textContent.startsWith('Thank you')")
    assert page.get_attribute(f"#feedback button[data-digit='{wrong}']", "aria-pressed") == "true"
    assert page.locator("#feedback button[data-digit]:enabled").count() == 0, "a second tap would store it twice"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page-feedback.png", full_page=True, animations="disabled")

    rows = stored_from_the_page()
    assert len(rows) == before + 1
    row = rows[-1]
    assert (row.label, row.client_predicted, row.predicted, row.request_id) == (int(wrong), int(shown), int(shown),
                                                                                request_id)
    assert row.image.startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.frombuffer(row.input, "<f4").reshape(28, 28), preprocess_image(row.image))

    page.click("#clear")
    assert not page.is_visible("#feedback"), "a correction offered for a cleared drawing"
    assert tab.console_errors == []


def test_corrections_fit_a_phone(open_page):
    """On a 360 px phone the ten buttons wrap inside the page: no sideways scrolling."""
    tab = open_page(PHONE)
    page = tab.page
    draw_with_mouse(page, pad_points(page, 4, (0.2, 0.1, 0.75)))
    settled(page)
    assert page.is_visible("#feedback")
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    assert tab.console_errors == []
