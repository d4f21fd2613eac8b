import base64

import pytest

from onepass.clients.auth import extract_credentials, parse_basic
from onepass.clients.scopes import grant_scope, parse_scope
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth_errors import InvalidClientError, InvalidRequestError, InvalidScopeError


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_parse_form_treats_blank_values_as_omitted() -> None:
    assert parse_form(b"grant_type=client_credentials&scope=") == {
        "grant_type": "client_credentials"
    }


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&a=2",
        b"a=1&a=",
        b"x=%ff",
        b"x=\xff",
        b"x=a%00",
        b"x=" + b"y" * 5000,
        b"&".join(b"k%d=v" % i for i in range(33)),
    ],
)
def test_parse_form_refuses_malformed_bodies(body: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        parse_form(body)


def test_form_content_type_accepts_parameters_and_case() -> None:
    assert is_form_content_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8")
    assert not is_form_content_type("application/json")
    assert not is_form_content_type(None)


def test_parse_basic_form_decodes_both_parts() -> None:
    assert parse_basic("Basic " + b64("my%20client:p%3Ass+word")) == ("my client", "p:ss word")
    assert parse_basic("basic " + b64("id:")) == ("id", "")


@pytest.mark.parametrize(
    "header",
    ["Bearer x", "Basic", "Basic %%%", "Basic " + b64("noseparator"), "Basic " + b64(":secret")],
)
def test_parse_basic_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(InvalidClientError):
        parse_basic(header)


def test_extract_credentials_refuses_two_methods() -> None:
    with pytest.raises(InvalidRequestError):
        extract_credentials("Basic " + b64("a:b"), {"client_secret": "b"})


def test_extract_credentials_identifies_each_method() -> None:
    assert extract_credentials("Basic " + b64("a:b"), {}).method == "client_secret_basic"
    assert (
        extract_credentials(None, {"client_id": "a", "client_secret": "b"}).method
        == "client_secret_post"
    )
    assert extract_credentials(None, {"client_id": "a"}).method == "none"
    with pytest.raises(InvalidClientError):
        extract_credentials(None, {})


def test_scopes_keep_order_drop_duplicates_and_check_charset() -> None:
    assert parse_scope("b  a b") == ["b", "a"]
    with pytest.raises(InvalidScopeError):
        parse_scope('a"b')


def test_grant_scope_defaults_and_refusals() -> None:
    allowed = frozenset({"api:read", "openid"})
    assert grant_scope([], allowed, user_present=False) == ["api:read"]
    assert grant_scope(["api:read"], allowed, user_present=False) == ["api:read"]
    with pytest.raises(InvalidScopeError):
        grant_scope(["api:write"], allowed, user_present=False)
    with pytest.raises(InvalidScopeError):
        grant_scope(["openid"], allowed, user_present=False)
