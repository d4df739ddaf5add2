"""The demo's jobs: a realistic mix of actions, started through the client like real ones.

Each job is an import, an update or a deletion sent to the emulator's start endpoints; the
emulator makes its duration grow with the payload, so the payload sizes set the pace: most
jobs last 0.1-1.3 s like the seed's examples, every tenth is a long CSV import (5-15 s), and
one bulk update (when there are two jobs or more) has only bad rows, so it ends FAILED.
"""

from __future__ import annotations

import io
import random
from collections.abc import Awaitable, Callable
from typing import Final

from voucherify_async import AsyncActionHandle, AsyncActions

__all__ = ["DEMO_SECONDS", "DEMO_SECONDS_PER_ROW", "start_demo_jobs"]

#: The emulator's pace for the demo: seconds per job, plus seconds per row of its payload.
DEMO_SECONDS: Final = 0.1
DEMO_SECONDS_PER_ROW: Final = 0.004

Starter = Callable[[AsyncActions, int, random.Random], Awaitable[AsyncActionHandle]]


def _codes(prefix: str, rows: int, rng: random.Random) -> list[str]:
    codes = [f"{prefix}-{i:05d}" for i in range(rows)]
    for _ in range(min(2, rows // 10)):  # a duplicate or two, as real files have
        row = rng.randrange(1, rows)
        codes[row] = codes[rng.randrange(row)]
    return codes


def _csv(key: str, values: list[str]) -> io.BytesIO:
    return io.BytesIO((key + "\n" + "\n".join(values) + "\n").encode())


async def _vouchers(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_vouchers_import([{"code": c} for c in _codes("DEMO", rows, rng)])


async def _orders(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_orders_import([{"source_id": c} for c in _codes("ord", rows, rng)])


async def _campaign(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    items = [{"code": c} for c in _codes("CAMP", rows, rng)]
    return await a.start_campaign_vouchers_import("demo-campaign", items)


async def _bulk(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    items = [{"source_id": c, "metadata": {"tier": "gold"}} for c in _codes("cust", rows, rng)]
    return await a.start_customers_bulk_update(items)


async def _products(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    ids = [f"prod-{i}" for i in range(rows)]
    return await a.start_products_metadata_update(ids, {"season": "winter"})


async def _generate(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_campaign_vouchers_generate("demo-campaign", max(rows, 2))


async def _delete(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.delete_campaign(f"demo-old-{rng.randrange(1000)}")


async def _vouchers_csv(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_vouchers_import_csv(_csv("code", _codes("CSV", rows, rng)))


async def _customers_csv(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_customers_import_csv(_csv("source_id", _codes("c", rows, rng)))


async def _skus_csv(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    return await a.start_skus_import_csv(_csv("source_id", _codes("sku", rows, rng)))


async def _failing(a: AsyncActions, rows: int, rng: random.Random) -> AsyncActionHandle:
    # Every row lacks its code: the bulk update ends with operation_status FAILED.
    return await a.start_vouchers_bulk_update([{"metadata": {"x": i}} for i in range(rows)])


_SHORT: Final[tuple[Starter, ...]] = (
    _vouchers, _orders, _campaign, _bulk, _products, _generate, _delete, _customers_csv,
)  # fmt: skip
_LONG: Final[tuple[Starter, ...]] = (_vouchers_csv, _customers_csv, _skus_csv)


async def start_demo_jobs(
    actions: AsyncActions, n: int, rng: random.Random
) -> list[AsyncActionHandle]:
    """Start *n* demo jobs one by one and return their handles."""
    failed = rng.choice([i for i in range(n) if i % 10 != 9]) if n >= 2 else -1
    handles = []
    for i in range(n):
        long = i % 10 == 9
        if long:
            starter, rows = _LONG[(i // 10) % len(_LONG)], rng.randint(1250, 3700)
        else:
            starter, rows = _SHORT[i % len(_SHORT)], rng.randint(5, 300)
        if i == failed:
            starter = _failing
        handles.append(await starter(actions, rows, rng))
    return handles
