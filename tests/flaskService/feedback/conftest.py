"""Fixtures for the feedback store: a real PostgreSQL for the session, a fresh database per test."""
import itertools

import pytest

from .postgres import LocalPostgres

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres):
    """The URL of a new, empty database on the session's PostgreSQL."""
    return postgres.create_database(f"feedback_{next(_names)}")
