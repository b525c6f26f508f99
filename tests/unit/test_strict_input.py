"""One strictness rule for input, cheap rejection first, bounded pages and metrics."""
from __future__ import annotations

import pytest

from service.api.data import fit_page
from service.db import repository
from service.schemas import BATCH_ERRORS_LISTED, record_json_size

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


def test_record_json_size_is_never_below_the_answer(app, client, post):
    post({"source": "billing", "payload": {"n": "é\"" * 100}, "tags": ["a", "b"],
          "timestamp": "0001-01-01T00:00:00Z"})
    answered = client.get("/data").get_data()
    with app.app_context():
        document = repository().records.find_one()
    assert record_json_size(document) >= len(answered) - len('{"items":[],"next_cursor":null}')


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
    document = {"payload": {"x": "y" * 1000}, "source": "a", "tags": []}
    taken, closed = [], []

    def walk():
        try:
            for n in range(1000):
                taken.append(n)
                yield document
        finally:
            closed.append(True)
    items, more = fit_page(walk(), limit=1000, budget=3 * record_json_size(document))
    assert (len(items), more) == (3, True)
    assert taken == [0, 1, 2, 3] and closed == [True]


def test_fit_page_keeps_one_record_whatever_the_budget():
    document = {"payload": {"x": "y" * 1000}, "source": "a", "tags": []}
    assert fit_page([document, document], limit=5, budget=10) == ([document], True)
    assert fit_page([document], limit=5, budget=10) == ([document], False)


def test_methods_outside_the_standard_set_count_as_other(client, app):
    for method in ("FOO", "BAR1", "GET"):
        client.open("/healthz", method=method)
    samples = {(s.labels["method"], s.labels["status"]) for m in app.extensions["metrics"].requests.collect()
               for s in m.samples if s.name == "http_requests_total"}
    assert samples == {("other", "405"), ("GET", "200")}
