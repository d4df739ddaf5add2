"""``voucherify-async start KIND [FILE]``: start one async action, and optionally follow it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, Final

import attrs

from voucherify_async import AsyncActionHandle, AsyncActions, InvalidArgumentError

from ._commands import Reporter, client_for, watch
from ._exit import EXIT_OK, worst
from ._printer import make_printer

__all__ = ["KINDS", "run_start"]

JsonStart = Callable[[AsyncActions, Any, argparse.Namespace], Awaitable[AsyncActionHandle]]
CsvStart = Callable[[AsyncActions, Path, argparse.Namespace], Awaitable[AsyncActionHandle]]


@attrs.frozen
class Kind:
    """One kind of action the command starts: its JSON and/or CSV form, and what it needs."""

    summary: str
    json: JsonStart | None = None
    csv: CsvStart | None = None
    #: The id the endpoint needs: "campaign" or "program" (None: none).
    needs: str | None = None
    #: True when the request has no body at all (a deletion).
    bodiless: bool = False


def _pair(body: Any, key: str) -> tuple[list[str], dict[str, Any]]:
    """``{"<key>": [...], "metadata": {...}}`` split for the metadata helpers."""
    if not isinstance(body, dict) or key not in body or "metadata" not in body:
        raise InvalidArgumentError(f'the JSON must be {{"{key}": [...], "metadata": {{...}}}}')
    return body[key], body["metadata"]


KINDS: Final[dict[str, Kind]] = {
    "vouchers-import": Kind(
        "import vouchers (a JSON list, or a .csv file)",
        json=lambda a, body, _: a.start_vouchers_import(body),
        csv=lambda a, path, _: a.start_vouchers_import_csv(path),
    ),
    "vouchers-bulk-update": Kind(
        "update vouchers' metadata one by one (JSON list)",
        json=lambda a, body, _: a.start_vouchers_bulk_update(body),
    ),
    "vouchers-metadata-update": Kind(
        'set metadata on vouchers ({"codes": [...], "metadata": {...}})',
        json=lambda a, body, _: a.start_vouchers_metadata_update(*_pair(body, "codes")),
    ),
    "campaign-import": Kind(
        "import vouchers into a campaign (--id; a JSON list, or a .csv file)",
        json=lambda a, body, args: a.start_campaign_vouchers_import(args.id, body),
        csv=lambda a, path, args: a.start_campaign_vouchers_import_csv(args.id, path),
        needs="campaign",
    ),
    "campaign-generate": Kind(
        "add --count generated vouchers to a campaign (--id; optional JSON overrides)",
        json=lambda a, body, args: a.start_campaign_vouchers_generate(args.id, args.count, body),
        needs="campaign",
    ),
    "campaign-delete": Kind(
        "delete a campaign and its vouchers (--id; --force: not to the bin)",
        json=lambda a, _, args: a.delete_campaign(args.id, force=args.force),
        needs="campaign",
        bodiless=True,
    ),
    "customers-import": Kind(
        "import customers from a .csv file",
        csv=lambda a, path, _: a.start_customers_import_csv(path),
    ),
    "customers-bulk-update": Kind(
        "upsert customers (JSON list)",
        json=lambda a, body, _: a.start_customers_bulk_update(body),
    ),
    "customers-metadata-update": Kind(
        'set metadata on customers ({"source_ids": [...], "metadata": {...}})',
        json=lambda a, body, _: a.start_customers_metadata_update(*_pair(body, "source_ids")),
    ),
    "products-import": Kind(
        "import products from a .csv file",
        csv=lambda a, path, _: a.start_products_import_csv(path),
    ),
    "products-bulk-update": Kind(
        "upsert products (JSON list)",
        json=lambda a, body, _: a.start_products_bulk_update(body),
    ),
    "products-metadata-update": Kind(
        'set metadata on products ({"source_ids": [...], "metadata": {...}})',
        json=lambda a, body, _: a.start_products_metadata_update(*_pair(body, "source_ids")),
    ),
    "skus-import": Kind(
        "import SKUs from a .csv file",
        csv=lambda a, path, _: a.start_skus_import_csv(path),
    ),
    "orders-import": Kind(
        "import orders (JSON list)",
        json=lambda a, body, _: a.start_orders_import(body),
    ),
    "loyalty-members-batch": Kind(
        "add members to a loyalty program (--id; JSON list)",
        json=lambda a, body, args: a.start_loyalty_members_batch(args.id, body),
        needs="program",
    ),
    "loyalty-delete": Kind(
        "delete a loyalty program (--id; --force: not to the bin)",
        json=lambda a, _, args: a.delete_loyalty_program(args.id, force=args.force),
        needs="campaign",
        bodiless=True,
    ),
}


def kinds_help() -> str:
    """The kinds, one per line, for ``start --help``."""
    width = max(map(len, KINDS))
    lines = [f"  {name.ljust(width)}  {kind.summary}" for name, kind in KINDS.items()]
    return "kinds:\n" + "\n".join(lines)


def _body(args: argparse.Namespace, kind: Kind) -> tuple[Any, Path | None]:
    """The JSON body or the CSV path the arguments give; InvalidArgumentError if they clash."""
    file: str | None = args.file
    if kind.bodiless:
        if file is not None or args.json is not None:
            raise InvalidArgumentError(f"{args.kind} takes no file and no --json")
        return None, None
    if file is not None and args.json is not None:
        raise InvalidArgumentError("give a FILE or --json, not both")
    if file is not None and file.lower().endswith(".csv"):
        if kind.csv is None:
            raise InvalidArgumentError(f"{args.kind} takes JSON, not a CSV file")
        return None, Path(file)
    if kind.json is None:
        raise InvalidArgumentError(f"{args.kind} takes a .csv file")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(f"cannot read {file}: {exc}") from None
    elif args.json is not None:
        text = args.json
    elif args.kind == "campaign-generate":
        return None, None
    else:
        raise InvalidArgumentError(f"{args.kind} needs a FILE or --json")
    try:
        return json.loads(text), None
    except ValueError as exc:
        raise InvalidArgumentError(f"the JSON is not valid: {exc}") from None


async def run_start(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """``start KIND [FILE]``: start one action; with ``--wait``, follow it like ``wait``."""
    kind = KINDS[args.kind]
    if kind.needs is not None and not args.id:
        raise InvalidArgumentError(f"{args.kind} needs --id (the {kind.needs} id or name)")
    if args.kind == "campaign-generate" and args.count is None:
        raise InvalidArgumentError("campaign-generate needs --count (>= 2)")
    body, csv_path = _body(args, kind)
    async with client_for(args) as client:
        actions = client.async_actions
        if csv_path is not None:
            assert kind.csv is not None
            handle = await kind.csv(actions, csv_path, args)
        else:
            assert kind.json is not None
            handle = await kind.json(actions, body, args)
        if args.json_output:
            print(json.dumps({"async_action_id": handle.id}), file=out, flush=True)
        elif not args.quiet:
            make_printer(out).message(f"Started async action {handle.id} ({args.kind})")
        if not args.wait:
            handle.cancel()
            return EXIT_OK
        printer = None if args.json_output or args.quiet else make_printer(out)
        reporter = Reporter([handle.id], out, err, printer=printer, as_json=args.json_output)
        outcomes = await watch(client, [handle.id], reporter, args.timeout)
    return worst(reporter.finish([handle.id], outcomes))
