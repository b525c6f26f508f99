"""The cursor codec: round trips, and every alteration is refused."""
from __future__ import annotations

import string

import pytest
from bson import ObjectId
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service import cursor

KEY = cursor.make_key("secret")
ids = st.binary(min_size=12, max_size=12).map(ObjectId)
scopes = st.text(max_size=40)
ALPHABET = string.ascii_letters + string.digits + "-_"


@given(ids, scopes)
def test_round_trip(oid, scope):
    assert cursor.decode(cursor.encode(oid, scope, KEY), scope, KEY) == oid


@given(ids, scopes, st.data())
@settings(max_examples=300)
def test_any_single_character_change_is_refused(oid, scope, data):
    token = cursor.encode(oid, scope, KEY)
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != token[position]))
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(token[:position] + replacement + token[position + 1:], scope, KEY)


@given(scopes, st.text(max_size=64) | st.text(ALPHABET, min_size=32, max_size=32))
def test_arbitrary_strings_are_refused(scope, garbage):
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(garbage, scope, KEY)


@given(ids, scopes, scopes)
def test_a_cursor_is_bound_to_its_scope(oid, scope, other):
    assume(other != scope)
    token = cursor.encode(oid, scope, KEY)
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(token, other, KEY)


def test_truncated_and_padded_cursors_are_refused():
    token = cursor.encode(ObjectId(), "", KEY)
    for bad in (token[:-1], token + "A", token + "=", "", "+" + token[1:], " " + token[1:]):
        with pytest.raises(cursor.InvalidCursor):
            cursor.decode(bad, "", KEY)


@given(st.text(max_size=40))
def test_api_answers_422_for_any_cursor_string(client_factory, text):
    response = client_factory().get("/data", query_string={"cursor": text})
    assert response.status_code == 422


@pytest.fixture(scope="module")
def client_factory():
    """A client shared by hypothesis examples (function fixtures do not reset between them)."""
    from service import create_app
    app = create_app({"MONGODB_URI": "memory://"})
    return app.test_client
