"""The image, built by Podman from dockerFlaskService/Dockerfile as it is, and containers of it run
the way compose runs them."""
import pytest

from tests.dockerFlaskService.containers.engine import PYTHON_IMAGE, podman, stand_in
from tests.dockerFlaskService.containers.image import APP_IMAGE, DOCKERFILE, Container
from tests.helpers import ROOT


@pytest.fixture(scope="session")
def app_image():
    """Build the image (`--format docker` keeps its HEALTHCHECK); Podman's layer cache and the
    Dockerfile's pip cache mount make a build after the first one quick."""
    stand_in(PYTHON_IMAGE)
    podman("build", "--format", "docker", "-f", str(DOCKERFILE), "-t", APP_IMAGE, str(ROOT), timeout=3600)
    return APP_IMAGE


@pytest.fixture
def run_container(app_image):
    """Run containers of the image for one test: `run_container(*podman_options)`; removed after."""
    started = []

    def run(*options, command=()):
        started.append(Container(app_image, *options, command=command))
        return started[-1]

    yield run
    for container in started:
        container.remove()
