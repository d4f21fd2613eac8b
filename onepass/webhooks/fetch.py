"""Documents an RP's registration names and 1pass fetches (a sector identifier
document, OpenID Connect Registration §5), fetched as webhooks are sent: the URL's
rules (``safety.check_url``) and the connector that connects only to allowed addresses
(``resolver.connector``; ``ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS`` lifts both in
development), no redirect followed, a bounded size, within a few seconds."""

from __future__ import annotations

import aiohttp

from onepass.refusals import Invalid
from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.resolver import connector
from onepass.webhooks.safety import check_url

TIMEOUT = 5.0


class FetchFailed(Invalid):
    """The document could not be fetched; the message says why (never its content)."""


async def fetch_document(
    url: str,
    *,
    what: str,
    production: bool,
    allow_private: bool,
    max_bytes: int,
) -> bytes:
    """The body of a 200 answer to ``GET url`` (JSON asked for), at most ``max_bytes``;
    ``FetchFailed`` names ``what`` and the reason otherwise."""
    try:
        target = check_url(url, production=production, allow_private=allow_private, what=what)
        async with (
            aiohttp.ClientSession(
                connector=connector(limit=2, allow_private=allow_private),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as session,
            session.get(
                target, allow_redirects=False, headers={"accept": "application/json"}
            ) as response,
        ):
            if response.status != 200:
                raise FetchFailed(f"{what} answered HTTP {response.status}, not 200")
            body = await response.content.read(max_bytes + 1)
    except UnsafeWebhookTarget as exc:
        raise FetchFailed(f"{what} cannot be fetched: {exc}") from None
    except TimeoutError:
        raise FetchFailed(f"{what} did not answer within {TIMEOUT:g} seconds") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise FetchFailed(f"{what} could not be fetched ({type(exc).__name__})") from None
    if len(body) > max_bytes:
        raise FetchFailed(f"{what} is larger than {max_bytes // 1024} KB")
    return body
