"""A property-based fuzz layer over the HTTP API, generated from the API's own /openapi.json.

schemathesis reads the schema the running API serves and, for every operation, sends
schema-valid requests (positive) and requests that break it somewhere (negative: a wrong type,
a value out of range, a missing or wrong X-API-Key, random bytes as the upload, ...), then its
coverage phase's boundary cases and undeclared methods. No answer may be a 5xx; each must have
a status, content type, headers and body the schema documents for the operation; every error
must be the API's JSON error shape. A failure is a bug in the API or in its schema.

Bounded: FUZZ_EXAMPLES examples per operation (derandomized, so `make test` sends the same
requests every time; THUMBNAIL_FUZZ_EXAMPLES=2000 digs deeper), REQUEST_TIMEOUT per request
and, for the whole module, BUDGET_SECONDS: past it no more requests are sent and a warning
says how many were not (normally the module takes about half a minute). The stack is a
throwaway one: the fuzzer submits and deletes jobs at will.

Not `@schema.parametrize()` on `schemathesis.pytest.from_fixture`: that loader renames the test
item through `Function._nodeid`, which pytest 9.2 no longer has (AttributeError). The same
generation is reached through `APIOperation.as_strategy` and `BaseSchema.iter_coverage_cases`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack, wait_for

FUZZ_EXAMPLES = int(os.environ.get("THUMBNAIL_FUZZ_EXAMPLES", "300"))
REQUEST_TIMEOUT = 10
BUDGET_SECONDS = float(os.environ.get("THUMBNAIL_FUZZ_BUDGET_SECONDS", "150"))

# The per-test timeout only catches a hang; the module's time is bounded by its budget.
pytestmark = [pytest.mark.services, pytest.mark.timeout(BUDGET_SECONDS + 60)]

# Every operation of the schema (test_the_schema_has_exactly_these_operations keeps it whole).
# DELETE after the other job operations only matters for the shared, random ids.
OPERATIONS = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/thumbnails/{name}"),
    ("DELETE", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/rendition-url"),
    ("GET", "/r/{signature}/{options}/{job_id}"),
    ("GET", "/healthz"),
    ("GET", "/healthz/detailed"),
    ("GET", "/metrics"),
    ("GET", "/debug/info"),
    ("GET", "/debug/config"),
]
# Renditions and webhooks on, so that their code is fuzzed too (off, they answer 404/422).
SERVICE_ENV = {
    "THUMBNAIL_RENDITION_KEYS": "aa" * 32,
    "THUMBNAIL_RENDITION_SALTS": "bb" * 16,
    "THUMBNAIL_WEBHOOK_SECRETS": "fuzz-webhook-secret",
}
SECURED = [(method, path) for method, path in OPERATIONS if path.startswith(("/v1/", "/debug/"))]

st_checks.load_all_checks()


def error_shape(ctx: Any, response: schemathesis.Response, case: Case) -> bool | None:
    """Every 4xx/5xx is {"error": {"code", "message", "field"}} as application/json, also at
    statuses the schema does not list for the operation (405 of an undeclared method), which
    the schema checks skip. /healthz/detailed's 503 is its DetailedHealth body, documented."""
    if response.status_code < 400:
        return None
    if (case.method.upper(), case.operation.path, response.status_code) == (
        "GET", "/healthz/detailed", 503
    ):
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/json", f"{response.status_code} as {content_type!r}"
    if case.method.upper() == "HEAD":
        return True
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["field"] is None or isinstance(error["field"], str), error
    return True


CHECKS: list[Callable[..., bool | None]] = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
    error_shape,
]
# Not run, on purpose (each would fail on behaviour that is documented and intended):
# * positive_data_acceptance (a schema-valid request must be 2xx): no schema can say that
#   `file` must be an image or which cursors this API wrote; those are 415 and 400.
# * negative_data_rejection (a schema-invalid request must be 4xx): the schema is stricter
#   than the parser by design (docs/api.md, tests/service/unit/test_openapi.py): a repeated
#   `sizes` field, upper-case `fit`, leading zeros are accepted.

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class Budget:
    """The module's time: once spent, examples are drawn but no longer sent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.unsent = 0

    def allows(self) -> bool:
        if time.monotonic() < self.deadline:
            return True
        self.unsent += 1
        return False


@pytest.fixture(scope="module")
def budget() -> Iterator[Budget]:
    spent = Budget(BUDGET_SECONDS)
    yield spent
    if spent.unsent:
        warnings.warn(
            f"API fuzzing stopped at its {spent.seconds:g} s budget: {spent.unsent} generated "
            "requests were not sent",
            stacklevel=1,
        )


@pytest.fixture(scope="module")
def api_schema(worker_stack: Stack) -> BaseSchema:
    """The schema the running API serves; the key goes where its security scheme says.

    A worker runs so that the stack is healthy: without one /healthz/detailed?require_workers
    =true answers its documented 503, which not_a_server_error rightly refuses."""
    wait_for(
        lambda: httpx.get(
            f"{worker_stack.base_url}/healthz/detailed", params={"require_workers": "true"}
        ).status_code == 200 or None,
        timeout=30,
        what="a live worker",
    )
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"APIKeyHeader": {"api_key": API_KEY}}},
            "request-timeout": REQUEST_TIMEOUT,
        }
    )
    return schemathesis.openapi.from_url(f"{worker_stack.base_url}/openapi.json", config=config)


@pytest.fixture
def known_jobs(worker_stack: Stack) -> list[str]:
    """A succeeded and a failed job (fresh for each test: DELETE removes them). Random ids
    only find 404s; these reach the 200s, 204s, 307s and 409s of the job operations."""
    png = images.encode(images.two_halves(64, 48), "png")
    truncated = images.encode(images.noise(200, 100), "jpg", Q=95)[:2000]
    ids = []
    with httpx.Client(
        base_url=worker_stack.base_url, headers={"X-API-Key": API_KEY}, timeout=30
    ) as client:
        for data, sizes in ((png, "small,tiny=20x20"), (truncated, "small")):
            response = client.post("/v1/jobs", files={"file": ("x", data)}, data={"sizes": sizes})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])


        def finished(job_id: str) -> str | None:
            status: str = client.get(f"/v1/jobs/{job_id}").json()["status"]
            return status if status in ("succeeded", "failed") else None

        outcomes = [wait_for(partial(finished, i), timeout=60, what=f"job {i}") for i in ids]
    assert outcomes == ["succeeded", "failed"], worker_stack.logs()
    return ids


def test_the_schema_has_exactly_these_operations(api_schema: BaseSchema) -> None:
    served = set()
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # an operation schemathesis cannot read
        served.add((result.ok().method.upper(), result.ok().path))
    assert served == set(OPERATIONS), "a new operation: add it to OPERATIONS to fuzz it"


def can_be_negated(operation: APIOperation) -> bool:
    """A parameter, body or key a negative case can break (else none can be generated)."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody") or raw.get("security"))


def strategies_for(
    operation: APIOperation, known_jobs: list[str]
) -> list[st.SearchStrategy[Case]]:
    found = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if can_be_negated(operation):
        found.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    for job_id in known_jobs:
        found.append(operation.as_strategy(path_parameters={"job_id": job_id}))
        if "{name}" in operation.path:
            found += [
                operation.as_strategy(path_parameters={"job_id": job_id, "name": name})
                for name in ("small", "tiny")
            ]
    return found


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_fuzzed_requests_get_documented_answers(
    api_schema: BaseSchema, budget: Budget, request: pytest.FixtureRequest, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    known_jobs: list[str] = request.getfixturevalue("known_jobs") if "{job_id}" in path else []

    @FUZZ
    @given(case=st.one_of(strategies_for(operation, known_jobs)))
    def fuzz(case: Case) -> None:
        if budget.allows():
            case.call_and_validate(checks=CHECKS)

    fuzz()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_boundary_cases_get_documented_answers(
    api_schema: BaseSchema, budget: Budget, method: str, path: str
) -> None:
    """The coverage phase: every parameter at and past its limits, required ones missing,
    undeclared methods (405). Deterministic; a few dozen requests per operation."""
    operation = api_schema[path][method]
    generation = api_schema.config.generation_for(operation=operation, phase="coverage")
    cases = list(
        api_schema.iter_coverage_cases(
            operation, generation_modes=list(GenerationMode), generation_config=generation
        )
    )
    assert cases
    for case in cases:
        if not budget.allows():
            break
        if (method, path) in SECURED:  # these cases carry no key; a wrong one stays
            headers = CaseInsensitiveDict({"X-API-Key": API_KEY})
            headers.update(case.headers or {})
            case.headers = headers
        case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize(("method", "path"), SECURED)
def test_without_a_valid_key_every_secured_operation_is_401(
    api_schema: BaseSchema, budget: Budget, method: str, path: str
) -> None:
    """Any request, valid or not, without the key or with another one: 401 in the error
    shape (401 comes first: nothing of the request is looked at before the key)."""
    operation = api_schema[path][method]

    @settings(FUZZ, max_examples=min(FUZZ_EXAMPLES, 20))
    @given(
        case=st.one_of([operation.as_strategy(generation_mode=m) for m in GenerationMode]),
        key=st.one_of(st.none(), st.just(""), st.text("abcdef0123456789-", max_size=40)),
    )
    def unauthenticated(case: Case, key: str | None) -> None:
        if not budget.allows():
            return
        headers = CaseInsensitiveDict(case.headers or {})
        headers.pop("X-API-Key", None)
        if key is not None:
            headers["X-API-Key"] = key
        case.headers = headers
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == ["X-API-Key"]

    unauthenticated()
