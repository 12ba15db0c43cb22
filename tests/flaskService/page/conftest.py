"""Browser fixtures for the drawing page: where screenshots go. The window sizes it is tried at are
in tests/helpers.py; tabs themselves (`open_page`) come from tests/conftest.py, shared with the
Swagger UI test."""
import pytest

from tests.helpers import ARTIFACTS


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
