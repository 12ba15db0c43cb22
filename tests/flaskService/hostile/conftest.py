"""Fixtures for the hostile suite: a real gunicorn. The MNIST test digits the shipped model reads
clearly (`clear_digits`) come from tests/conftest.py, shared with the compose stack's load."""
import pytest


@pytest.fixture(scope="session")
def service(server):
    """The session's real gunicorn (2 workers, the shipped model, default limits): these tests only send requests."""
    return server
