"""``onepass.db.direct``'s parts that need no database: one SQL text for both engines
(``:name`` for SQLite, ``$n`` for asyncpg) and the FIFO queue of a process's SQLite
writers."""

from __future__ import annotations

import asyncio

import pytest

from onepass.db.direct import DatabaseBusy, WriteQueue, statement
from onepass.db.errors import is_unavailable
from onepass.oauth.statements import INSERT_REFRESH_TOKEN, REDEEM_CODE, ROTATE_REFRESH_TOKEN


def test_named_parameters_become_numbered_in_order_of_first_appearance() -> None:
    stmt = statement("SELECT * FROM t WHERE a = :alpha AND b = :beta AND c = :gamma")
    assert stmt.postgres == "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3"
    assert stmt.order == ("alpha", "beta", "gamma")
    assert stmt.sql == "SELECT * FROM t WHERE a = :alpha AND b = :beta AND c = :gamma"


def test_a_repeated_name_is_one_number() -> None:
    stmt = statement("UPDATE t SET at = :now WHERE x = :id AND expires > :now AND y <> :id")
    assert stmt.postgres == "UPDATE t SET at = $1 WHERE x = $2 AND expires > $1 AND y <> $2"
    assert stmt.order == ("now", "id")


def test_casts_and_string_literals_with_colons_are_left_alone() -> None:
    stmt = statement("SELECT :v::jsonb AS v, CAST(:n AS integer) AS n, x::text FROM t")
    assert stmt.postgres == "SELECT $1::jsonb AS v, CAST($2 AS integer) AS n, x::text FROM t"
    assert stmt.order == ("v", "n")


def test_whitespace_is_collapsed_to_one_line() -> None:
    stmt = statement(
        """
        SELECT a
        FROM   t
        WHERE  b = :b
        """
    )
    assert stmt.sql == "SELECT a FROM t WHERE b = :b"


def test_the_grants_statements_bind_every_name_once_in_order() -> None:
    rotate = ROTATE_REFRESH_TOKEN
    assert rotate.order == ("now", "token_hash", "client", "jkt", "resource", "enforce")
    assert rotate.postgres.count("$1") == 3  # rotated_at, expires_at, family_expires_at
    assert ":" not in rotate.postgres.replace("::", "")
    insert = INSERT_REFRESH_TOKEN
    assert len(insert.order) == 16
    assert insert.postgres.endswith(", ".join(f"${i}" for i in range(1, 17)) + ")")
    assert REDEEM_CODE.order[0] == "now"
    assert "refresh_family" in REDEEM_CODE.order


async def test_writers_are_served_in_arrival_order() -> None:
    queue = WriteQueue()
    order: list[int] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with queue.turn():
            order.append(0)
            holding.set()
            await release.wait()

    async def writer(number: int) -> None:
        async with queue.turn():
            order.append(number)
            await asyncio.sleep(0)  # a writer that yields inside its turn keeps it

    holder = asyncio.create_task(first())
    await holding.wait()
    waiters = []
    for number in range(1, 31):
        waiters.append(asyncio.create_task(writer(number)))
        await asyncio.sleep(0)  # this one is now waiting, before the next arrives
    assert order == [0]
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == list(range(31))


async def test_a_writer_waiting_past_the_timeout_gets_database_busy_and_the_queue_goes_on() -> None:
    queue = WriteQueue(timeout=0.2)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with queue.turn():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    with pytest.raises(DatabaseBusy) as raised:
        async with queue.turn():
            pytest.fail("served while another writer held the queue")
    assert is_unavailable(raised.value), "a 503 with Retry-After, not a 500"
    release.set()
    await holder
    # The writer that gave up left no trace: the next one is served at once.
    async with asyncio.timeout(1), queue.turn():
        pass


def test_a_queue_serves_one_event_loop_after_another() -> None:
    queue = WriteQueue(timeout=2)

    async def contend() -> list[int]:
        order: list[int] = []

        async def writer(number: int) -> None:
            async with queue.turn():
                order.append(number)
                await asyncio.sleep(0.001)

        await asyncio.gather(*(writer(n) for n in range(5)))
        return order

    assert asyncio.run(contend()) == list(range(5))
    assert asyncio.run(contend()) == list(range(5))
