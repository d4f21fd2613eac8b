"""The process's services: built once in the application's lifespan (``app.py``),
read by the routes.

Each service has a typed name, a ``Service[T]``, declared next to its class by the
package that owns it (``identity.canonical.RESOLVER``, ``oauth.interaction.SEALER``,
``accounts.signin.SIGN_IN``...). The lifespan provides each one; a route reads it with
``RESOLVER.of(request)``, or takes it as a FastAPI dependency, ``Depends(RESOLVER.of)``.
mypy checks both ends (``provide`` takes a ``T``, ``of`` returns one), and a package
never imports the composition root, or a package above its own, to find a service.
The runtime (settings, database, cache, clock) every route needs is an attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from starlette.requests import HTTPConnection

if TYPE_CHECKING:  # a leaf module: domain modules import it to declare their services
    from onepass.runtime import Runtime

T = TypeVar("T")


class MissingService(LookupError):
    pass


class Service(Generic[T]):
    """The typed name of one service; ``name`` says which, in errors."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Service({self.name!r})"

    def of(self, request: HTTPConnection) -> T:
        """The service this request's application was given."""
        return services_of(request).get(self)


class Services:
    """The services of one process: ``runtime``, and the rest by their ``Service`` names."""

    __slots__ = ("_provided", "runtime")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._provided: dict[Service[Any], Any] = {}

    def provide(self, service: Service[T], value: T) -> None:
        if service in self._provided:
            raise ValueError(f"the service {service.name} is provided twice")
        self._provided[service] = value

    def get(self, service: Service[T]) -> T:
        try:
            return cast(T, self._provided[service])
        except KeyError:
            raise MissingService(
                f"no service {service.name}: the application's lifespan provides it"
            ) from None


def services_of(request: HTTPConnection) -> Services:
    """The services of the application serving ``request`` (set by ``app.py``)."""
    return cast(Services, request.app.state.services)


def runtime_of(request: HTTPConnection) -> Runtime:
    return services_of(request).runtime
