"""The framework-free request values: a tolerant Cookie header parser, size limits."""

from __future__ import annotations

import pytest

from sanscouture.errors import RequestTooLargeError
from sanscouture.web import MAX_BODY_BYTES
from sanscouture.web import check_limits
from sanscouture.web import parse_cookie_header
from sanscouture.web import parse_form


def test_a_malformed_cookie_from_another_site_does_not_hide_the_brokers() -> None:
    header = 'consent={"ads":false}; __Host-sc-browser=abc; theme; =orphan; __Host-sc-session="s1"'
    assert parse_cookie_header(header) == {
        "consent": '{"ads":false}', "__Host-sc-browser": "abc", "__Host-sc-session": "s1",
    }


def test_the_first_of_two_cookies_with_one_name_wins() -> None:
    assert parse_cookie_header("a=1; a=2")["a"] == "1"


def test_an_empty_or_garbage_header_gives_no_cookie() -> None:
    assert parse_cookie_header("") == {}
    assert parse_cookie_header(";;; \x00; é") == {}


def test_limits_refuse_a_large_body_header_or_too_many_fields() -> None:
    check_limits({"cookie": "a" * 4000}, b"x" * MAX_BODY_BYTES)
    for headers, body in [({}, b"x" * (MAX_BODY_BYTES + 1)), ({"x-long": "a" * 9000}, b""),
                          ({f"x-{i}": "a" * 7000 for i in range(5)}, b"")]:
        with pytest.raises(RequestTooLargeError):
            check_limits(headers, body)
    form = "application/x-www-form-urlencoded"
    assert parse_form("&".join(f"f{i}=1" for i in range(64)).encode(), form)[0]["f63"] == "1"
    with pytest.raises(RequestTooLargeError):
        parse_form("&".join(f"f{i}=1" for i in range(65)).encode(), form)
