"""The process's services (``onepass.services``): provided once each under a typed
name, read back by that name from a request's application."""

from __future__ import annotations

from typing import cast

import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from onepass.runtime import Runtime
from onepass.services import MissingService, Service, Services, runtime_of

GREETING: Service[str] = Service("test.greeting")
COUNT: Service[int] = Service("test.count")


def _request(app: Starlette) -> Request:
    return Request({"type": "http", "app": app, "headers": []})


def test_a_service_is_read_back_by_its_name_from_the_requests_application() -> None:
    runtime = cast(Runtime, object())
    services = Services(runtime)
    services.provide(GREETING, "hello")
    app = Starlette()
    app.state.services = services
    request = _request(app)
    assert GREETING.of(request) == "hello"
    assert runtime_of(request) is runtime


def test_a_service_not_provided_is_named_in_the_error() -> None:
    services = Services(cast(Runtime, object()))
    with pytest.raises(MissingService, match=r"test\.count"):
        services.get(COUNT)


def test_a_service_is_provided_once() -> None:
    services = Services(cast(Runtime, object()))
    services.provide(COUNT, 1)
    with pytest.raises(ValueError, match=r"test\.count"):
        services.provide(COUNT, 2)
    assert services.get(COUNT) == 1
