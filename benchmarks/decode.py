"""How long decoding a response body takes: bytes -> AsyncAction, per payload.

Runs over the 22 example responses of the seed (tests/data/seed_examples.json) and times,
in the same process and the same way (``timeit``, several repeats, best and median):

* ``json.loads`` alone on the same bytes (the baseline every ratio is against),
* ``orjson.loads`` alone, when orjson is installed (our decoder's parser then),
* ``decode_async_action``: bytes -> typed AsyncAction with its typed result,
* the same with the stdlib ``json`` parser, and the structuring step alone,
* the official ``voucherify`` SDK's ``AsyncActionGetResponseBody.from_json``, when it is
  importable (its ``result`` stays an untyped dict).

Usage::

    python benchmarks/decode.py [--quick] [--sdk-site DIR]

``--sdk-site`` appends a directory (a throwaway venv's site-packages holding ``voucherify``)
to ``sys.path``, after this environment's own packages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed_examples.json"

try:
    import voucherify_async  # noqa: F401
except ImportError:  # running from a checkout without installing it
    sys.path.insert(0, str(ROOT))

from voucherify_async import _json  # noqa: E402
from voucherify_async._converter import (  # noqa: E402
    decode_async_action,
    structure_async_action,
)


def _sdk_from_json() -> Callable[[str], Any] | None:
    """The official SDK's decoder, when ``voucherify`` is importable (it is optional)."""
    try:
        module = importlib.import_module("voucherify.models.async_action_get_response_body")
    except ImportError:
        return None
    from_json: Callable[[str], Any] = module.AsyncActionGetResponseBody.from_json
    return from_json


def _measure(
    rows: list[tuple[str, Callable[[Any], Any], list[Any]]], number: int, repeat: int
) -> dict[str, list[float]]:
    """Microseconds per payload of each row, *repeat* times each.

    The rows take turns (row 1, row 2, ..., then again) so that a noisy machine slows
    them all alike and the ratios stay fair.
    """
    runs = {}
    for name, decode, inputs in rows:

        def run(decode: Callable[[Any], Any] = decode, inputs: list[Any] = inputs) -> None:
            for item in inputs:
                decode(item)

        run()  # warm up: hooks are built on first use
        runs[name] = (run, len(inputs))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (run, count) in runs.items():
            total = timeit.timeit(run, number=number)
            times[name].append(total / number / count * 1e6)
    return times


Row = tuple[str, Callable[[Any], Any], list[Any]]


def rows() -> list[Row]:
    """What is timed: (name, decoder, inputs), the stdlib ``json.loads`` baseline first.

    The official SDK's ``from_json`` comes last when it is importable (after a check that it
    accepts every example).
    """
    payloads = list(json.loads(SEED.read_text(encoding="utf-8")).values())
    bodies = [json.dumps(payload).encode() for payload in payloads]
    timed: list[Row] = [("json.loads (stdlib)", json.loads, bodies)]
    if _json.BACKEND == "orjson":
        timed.append(("orjson.loads", _json.loads, bodies))
    timed += [
        (f"decode_async_action ({_json.BACKEND})", decode_async_action, bodies),
        (
            "decode_async_action (stdlib json)",
            lambda body: structure_async_action(_json.stdlib_loads(body)),
            bodies,
        ),
        ("structure only (dict -> AsyncAction)", structure_async_action, payloads),
    ]
    sdk = _sdk_from_json()
    if sdk is not None:
        texts = [body.decode() for body in bodies]
        for text in texts:  # it must accept every example before it is timed
            sdk(text)
        timed.append((SDK_ROW, sdk, texts))
    return timed


#: The name of the official SDK's row.
SDK_ROW = "official voucherify SDK from_json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer loops and repeats")
    parser.add_argument("--sdk-site", type=Path, help="a site-packages dir holding voucherify")
    args = parser.parse_args(argv)
    if args.sdk_site:
        sys.path.append(str(args.sdk_site))

    number, repeat = (200, 3) if args.quick else (1000, 15)
    timed = rows()
    bodies = timed[0][2]

    print(
        f"{len(bodies)} seed payloads, {sum(map(len, bodies)) // len(bodies)} bytes on average; "
        f"best and median of {repeat} x {number} loops; Python {sys.version.split()[0]}"
    )
    print(f"{'':40} {'best us':>9} {'median us':>10} {'x json.loads':>13}")
    results: dict[str, tuple[float, float]] = {}
    baseline = 0.0
    for name, per_payload in _measure(timed, number, repeat).items():
        best, median = min(per_payload), statistics.median(per_payload)
        baseline = baseline or best
        results[name] = (best, median)
        print(f"{name:40} {best:9.2f} {median:10.2f} {best / baseline:12.2f}x")

    ours = results[f"decode_async_action ({_json.BACKEND})"]
    if SDK_ROW in results:
        theirs = results[SDK_ROW]
        print(
            f"decode_async_action / SDK from_json: {ours[0] / theirs[0]:.2f}x best, "
            f"{ours[1] / theirs[1]:.2f}x median (lower is faster)"
        )
    else:
        print("voucherify SDK not importable: no SDK figure (see --sdk-site)")


if __name__ == "__main__":
    main()
