"""The cursor codec: round trips, every alteration is refused, secrets rotate."""
from __future__ import annotations

import base64
import hashlib
import string

import pytest
from bson import ObjectId
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service import cursor

KEY = cursor.make_keys("secret")
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


OLD, NEW = "o" * 32, "n" * 32


def test_the_first_secret_signs_and_every_listed_one_verifies():
    oid = ObjectId()
    before = cursor.encode(oid, "", cursor.make_keys(OLD))
    rotated = cursor.make_keys(f"{NEW},{OLD}")
    after = cursor.encode(oid, "", rotated)
    assert cursor.decode(before, "", rotated) == cursor.decode(after, "", rotated) == oid
    assert before.split(".")[0] != after.split(".")[0]  # the key id tells which secret signed
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(before, "", cursor.make_keys(NEW))  # the old secret dropped


def test_a_token_of_the_earlier_format_still_verifies():
    """A checkpoint a consumer kept from before: version 1, the id, a keyed BLAKE2b digest."""
    oid = ObjectId("65f000000000000000000001")
    body = b"\x01" + oid.binary
    mac = hashlib.blake2b(body, digest_size=11, key=hashlib.sha256(OLD.encode()).digest())
    mac.update(b"scope")
    legacy = base64.urlsafe_b64encode(body + mac.digest()).decode()
    assert cursor.decode(legacy, "scope", cursor.make_keys(f"{NEW},{OLD}")) == oid
    with pytest.raises(cursor.InvalidCursor):
        cursor.decode(legacy, "other", cursor.make_keys(OLD))


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
