"""The framework-free request values: a tolerant Cookie header parser."""

from __future__ import annotations

from sanscouture.web import parse_cookie_header


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
