"""Schemathesis against the running service's own /openapi.json: every operation, generated requests
(valid and invalid), no 5xx, and every response (status, headers, body) as the document says; invalid
requests are refused."""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

EXAMPLES = 25  # per operation and mode; ~20 operations, about a thousand requests
CONFIG = SchemathesisConfig.from_dict({"checks": {
    # Invalid input may also be refused as too large: 413 when a tensor's shape claims millions of images.
    "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]},
    # Not "every schema-valid request is accepted": a schema can say "a base64 string", not "a base64
    # string of a picture with a digit on it"; test_broken_input.py checks those refusals one by one.
    "positive_data_acceptance": {"enabled": False},
}})


@pytest.fixture(scope="module")
def api_schema(service):
    # Loaded at test time, not collection time: the document comes from the server the suite starts.
    # (schemathesis.pytest.from_fixture would do this, but it sets a node attribute pytest 9 removed.)
    return schemathesis.openapi.from_url(service.url + "/openapi.json", config=CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize("mode", (GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
def test_every_operation_conforms(api_schema, service, mode):
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=os.environ.get("CI") == "true")  # fixed examples in CI, fresh ones locally
        def conforms(case):
            case.call_and_validate(base_url=service.url, timeout=10)

        try:
            conforms()
        except Unsatisfiable:
            pass  # nothing to make invalid: the operation takes no parameters and no body
        except Exception as e:  # one failing operation must not hide the others
            failures.append(f"{operation.method.upper()} {operation.path}: {e}")
    assert not failures, "\n\n".join(failures)
