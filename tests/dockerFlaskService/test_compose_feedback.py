"""The compose stack keeps corrections in its own PostgreSQL, on a named volume, for every replica."""
from tests.helpers import COMPOSE, compose_config


def test_replicas_store_corrections_in_the_stacks_postgres():
    config = compose_config(COMPOSE)
    app, postgres = config["services"]["app"], config["services"]["postgres"]
    database = postgres["environment"]
    assert app["environment"]["FEEDBACK_DB"] == (
        f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}@postgres:5432/{database['POSTGRES_DB']}")
    assert "postgres" in app["depends_on"]
    [volume] = postgres["volumes"]
    assert volume["type"] == "volume" and volume["target"] == "/var/lib/postgresql/data"
    assert volume["source"] in config["volumes"]
    assert "ports" not in postgres, "the database is for the stack's network only"
