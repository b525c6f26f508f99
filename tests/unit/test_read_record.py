"""GET /data/<id>."""
from __future__ import annotations

import pytest


def test_read_back_what_was_stored(post, client, record):
    created = post(record).get_json()
    response = client.get(f"/data/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == created


@pytest.mark.parametrize("record_id", ["0" * 24, "not-an-id", "z" * 24, "1" * 25, "%00"])
def test_unknown_or_malformed_id_is_404(client, record_id):
    response = client.get(f"/data/{record_id}")
    assert response.status_code == 404
    assert response.get_json()["code"] == 404
