"""Test data, made through the same services the product uses."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.clients import registry as clients
from onepass.runtime import Runtime


@dataclass
class Client:
    id: int
    client_id: str
    client_secret: str | None


async def make_client(runtime: Runtime, **options: object) -> Client:
    options.setdefault("name", "test app")
    options.setdefault("grant_types", ["client_credentials"])
    options.setdefault("scope", "api:read api:write")
    async with runtime.database.session() as session:
        new = await clients.create_client(session, runtime.hasher, runtime.clock, **options)  # type: ignore[arg-type]
        return Client(new.application.id, new.application.client_id, new.client_secret)


@dataclass
class UserInfo:
    id: int
    sub: str
    email: str
    password: str


async def make_user(
    runtime: Runtime,
    email: str = "ada@example.com",
    password: str = "correct horse battery",
    **options: object,
) -> UserInfo:
    from onepass.accounts import service as accounts
    from onepass.accounts.passwords import PasswordHasher

    async with runtime.database.session() as session:
        user = await accounts.create_user(
            session,
            PasswordHasher(runtime.settings),
            runtime.clock,
            email=email,
            password=password,
            **options,  # type: ignore[arg-type]
        )
        return UserInfo(user.id, user.sub, user.email, password)


REDIRECT_URI = "https://rp.example/callback"
POST_LOGOUT_URI = "https://rp.example/signed-out"


async def make_rp(runtime: Runtime, **options: object) -> Client:
    """A confidential web application using the code flow with refresh tokens."""
    options.setdefault("grant_types", ["authorization_code", "refresh_token"])
    options.setdefault("redirect_uris", [REDIRECT_URI])
    options.setdefault("post_logout_redirect_uris", [POST_LOGOUT_URI])
    options.setdefault("scope", "openid profile email offline_access")
    return await make_client(runtime, **options)


@dataclass
class AdminInfo:
    id: int
    email: str
    password: str
    totp_secret: str
    token: str


async def make_admin(
    runtime: Runtime,
    email: str = "ops@example.com",
    password: str = "correct horse battery",
    scopes: tuple[str, ...] = (
        "webhooks:read",
        "webhooks:write",
        "keys:write",
        "users:write",
        "audit:read",
    ),
    ttl: float = 3600,
) -> AdminInfo:
    """An administrator with TOTP enrolled and an admin token, as the CLI makes them."""
    from datetime import timedelta

    from onepass.accounts.passwords import PasswordHasher
    from onepass.operators import service

    async with runtime.database.session() as session:
        user = await service.create_admin(
            session, PasswordHasher(runtime.settings), runtime.clock, email=email, password=password
        )
        enrollment = await service.enroll_totp(session, runtime.box, runtime.clock, user)
        new = await service.create_token(
            session,
            runtime.hasher,
            runtime.clock,
            user,
            list(scopes),
            timedelta(seconds=ttl),
            max_ttl=timedelta(days=30),
        )
        return AdminInfo(user.id, user.email, password, enrollment.secret, new.token)
