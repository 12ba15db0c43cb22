"""2,000+ mixed good and bad requests at concurrency 16 against the real gunicorn, with a ledger."""
import pytest
import requests

from tests import corpus, load

REQUESTS = 2100


@pytest.mark.slow
def test_load_with_a_ledger(service, clear_digits):
    """Every request is answered with the expected status, echoes its own X-Request-ID, the good ones
    read the right digits, no 5xx; afterwards the service is ready and still right."""
    ledger = load.send(service.url, load.mix(clear_digits, REQUESTS, seed=8))
    figures = load.summary(ledger)
    print(figures)

    failed = [e for e in ledger if not e.answered]
    assert not failed, f"{figures}; first: {failed[0].kind} {failed[0].error}"
    server_errors = [e for e in ledger if e.got_status >= 500]
    assert not server_errors, f"{figures}; first: {server_errors[0].kind} {server_errors[0].got_status}"
    wrong = [e for e in ledger if not e.right]
    assert not wrong, f"{figures}; first: {wrong[0].kind} expected {wrong[0].status} {wrong[0].digits}, " \
                      f"got {wrong[0].got_status} {wrong[0].got_digits}"
    assert len({e.request_id for e in ledger}) == len(ledger)
    not_echoed = [e for e in ledger if e.echoed_id != e.request_id]
    assert not not_echoed, f"{len(not_echoed)} responses without their X-Request-ID"

    assert requests.get(service.url + "/health/ready", timeout=5).status_code == 200
    for digit in range(10):
        data, content_type = corpus.png_grey(clear_digits[digit][2])
        response = requests.post(service.url + "/predict", data=data, headers={"Content-Type": content_type},
                                 timeout=5)
        assert response.json()["digit"] == digit
