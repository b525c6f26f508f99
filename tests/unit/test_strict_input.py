"""One strictness rule for input, cheap rejection first, bounded pages and metrics."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st

from service.api.data import fit_page
from service.repository import to_document
from service.schemas import BATCH_ERRORS_LISTED, RecordSchema, record_json

ROUTES = [("post", "/data"), ("get", "/data/0123456789abcdef01234567"), ("post", "/data/batch"),
          ("get", "/healthz"), ("get", "/readyz")]


@pytest.mark.parametrize("body", [
    '{"source": "a", "source": "b", "payload": {}}',
    '{"source": "a", "payload": {"x": {"k": 1, "k": 2}}}',
])
def test_a_duplicate_key_anywhere_is_400_naming_it(client, body):
    response = client.post("/data", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "duplicate key" in response.get_json()["message"]


def test_the_same_key_in_sibling_objects_is_fine(post):
    assert post({"source": "a", "payload": {"x": {"k": 1}, "y": {"k": 2}}}).status_code == 201


@pytest.mark.parametrize("limit", ["5_0", "+5", "-5", " 5", "５", "٥", "5.0", "1e1", ""])
def test_limit_takes_ascii_digits_only(client, limit):
    response = client.get("/data", query_string={"limit": limit})
    assert response.status_code == 422
    assert "limit" in response.get_json()["errors"]["query"]


def test_limit_in_ascii_digits_with_leading_zeros_is_fine(client):
    assert client.get("/data?limit=0010").status_code == 200


@pytest.mark.parametrize("query", ["limit=1&limit=2", "source=a&source=a"])
def test_a_repeated_query_parameter_is_422_naming_it(client, query):
    response = client.get(f"/data?{query}")
    assert response.status_code == 422
    assert list(response.get_json()["errors"]["query"]) == [query.split("=")[0]]


@pytest.mark.parametrize("method, path", ROUTES)
def test_unknown_query_parameters_are_422_on_every_route(client, method, path):
    response = getattr(client, method)(f"{path}?x=1", json={})
    assert response.status_code == 422
    assert response.get_json()["errors"]["query"] == {"x": ["Unknown field."]}


@pytest.mark.parametrize("field", ["timestamp", "tags"])
def test_null_is_refused_for_every_optional_field(post, record, field):
    response = post({**record, field: None})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


def test_the_batch_cap_is_checked_before_any_record(make_app):
    client = make_app(BATCH_MAX_RECORDS="3").test_client()
    response = client.post("/data/batch", json={"records": [{}] * 4})
    assert response.status_code == 422
    assert response.get_json()["errors"]["json"] == {"records": ["Between 1 and 3 records."]}


def test_a_batch_error_lists_a_bounded_number_of_records_and_says_how_many_failed(client):
    records = [{"source": "a", "payload": {}}] * 5 + [{}] * 30
    response = client.post("/data/batch", json={"records": records})
    body = response.get_json()
    assert response.status_code == 422
    listed = sorted(body["errors"]["json"]["records"], key=int)
    assert listed == [str(i) for i in range(5, 5 + BATCH_ERRORS_LISTED)]
    assert body["message"] == f"30 of 35 records are invalid; errors lists the first {BATCH_ERRORS_LISTED}."


def test_a_batch_error_at_the_listing_bound_lists_all(client):
    response = client.post("/data/batch", json={"records": [{}] * BATCH_ERRORS_LISTED})
    assert len(response.get_json()["errors"]["json"]["records"]) == BATCH_ERRORS_LISTED
    assert "message" not in response.get_json()


SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12)
# Stored dates: milliseconds, and any offset a driver could hand back (the API answers in UTC).
DATES = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=-7, minutes=-30))]),
                     ).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
STORED = st.fixed_dictionaries({
    "_id": st.binary(min_size=12, max_size=12).map(ObjectId), "source": st.text(min_size=1),
    "payload": st.dictionaries(st.text(), JSON, max_size=4), "tags": st.lists(st.text(), max_size=3),
    "timestamp": DATES, "created_at": DATES})


@given(STORED)
def test_a_record_is_answered_exactly_as_its_schema_in_the_openapi_document_dumps_it(document):
    assert record_json(document) == orjson.dumps(RecordSchema().dump(document))


def _stored(payload: dict) -> dict:
    return to_document({"source": "a", "payload": payload, "tags": [], "timestamp": None})


def test_a_page_stops_at_the_byte_budget_and_the_walk_still_reaches_every_record(make_app):
    client = make_app(PAGE_MAX_BYTES=str(2**16)).test_client()
    big = {"blob": "x" * 20_000}
    for i in range(7):
        assert client.post("/data", json={"source": "a", "payload": {**big, "i": i}}).status_code == 201
    seen, url, sizes = [], "/data?limit=100", []
    while url:
        page = client.get(url)
        sizes.append(len(page.data))
        body = page.get_json()
        seen += [item["payload"]["i"] for item in body["items"]]
        url = body["next_cursor"] and f"/data?limit=100&cursor={body['next_cursor']}"
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    assert max(sizes) <= 2**16 and len(sizes) == 3


def test_a_page_at_its_byte_budget_reads_no_further_and_closes_the_walk():
    """Records are taken one at a time: past the budget the rest is never read."""
    document = _stored({"x": "y" * 1000})
    taken, closed = [], []

    def walk():
        try:
            for n in range(1000):
                taken.append(n)
                yield document
        finally:
            closed.append(True)
    page = fit_page(walk(), limit=1000, budget=3 * (len(record_json(document)) + 1))
    assert (len(page.parts), page.more) == (3, True)
    assert taken == [0, 1, 2, 3] and closed == [True]


def test_fit_page_keeps_one_record_whatever_the_budget():
    document = _stored({"x": "y" * 1000})
    assert fit_page([document, document], limit=5, budget=10).parts == [record_json(document)]
    assert fit_page([document, document], limit=5, budget=10).more
    assert not fit_page([document], limit=5, budget=10).more


def test_methods_outside_the_standard_set_count_as_other(client, app):
    for method in ("FOO", "BAR1", "GET"):
        client.open("/healthz", method=method)
    samples = {(s.labels["method"], s.labels["status"]) for m in app.extensions["metrics"].requests.collect()
               for s in m.samples if s.name == "http_requests_total"}
    assert samples == {("other", "405"), ("GET", "200")}
