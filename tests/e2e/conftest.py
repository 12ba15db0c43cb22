"""Browser fixtures for the drawing page: the window sizes it is tried at, and where screenshots go.
Tabs themselves (`open_page`) come from tests/conftest.py, shared with the Swagger UI test."""
import pytest

from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
