"""Smoke tests of the benchmarks: each module's smallest configuration produces its figures.

They check that every table comes out with its rows and numbers, never how fast anything is.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from _seed import examples
from cattrs.errors import ClassValidationError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    budget,
    client_cpu,
    decode,
    otel_overhead,
    outofsample,
    planning,
    polling,
    redis_budget,
    run,
    scale,
    shapes_random,
    yardstick,
    zoo,
)
from benchmarks._common import Table, percentile, scale_policy  # noqa: E402
from voucherify_async import (  # noqa: E402
    AsyncAction,
    OperationStatus,
    PollPolicy,
    ResponseDecodeError,
    UnknownResult,
    VouchersImportResult,
    converter,
)
from voucherify_async._converter import structure_async_action  # noqa: E402
from voucherify_async.opentelemetry import is_instrumented  # noqa: E402

NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?x?$")


def _figures(table: Table, column: str) -> list[str]:
    index = table.columns.index(column)
    return [row[index] for row in table.rows]


def _all_numbers(cells: list[str]) -> bool:
    return all(NUMBER.match(cell) for cell in cells)


def test_decode_table() -> None:
    """The decode table times every decoder and puts json.loads at 1.00x."""
    (table,) = run.decode_tables(*run.DECODE_LOOPS["smoke"])
    names = [row[0] for row in table.rows]
    assert names[0].startswith("json.loads")
    assert any(name.startswith("decode_async_action") for name in names)
    assert any(name.startswith(decode.CATTRS_DECODE_ROW) for name in names)
    assert decode.CATTRS_STRUCTURE_ROW in names
    assert _figures(table, "x json.loads")[0] == "1.00x"
    assert _all_numbers(_figures(table, "best us/payload"))


def _assert_same_model(payload: dict[str, Any], cattrs_structure: Callable[[Any], Any]) -> None:
    ours = structure_async_action(copy.deepcopy(payload))
    theirs = cattrs_structure(copy.deepcopy(payload))
    assert type(theirs) is AsyncAction
    assert theirs == ours
    assert type(theirs.result) is type(ours.result)
    assert repr(theirs) == repr(ours)
    # The private fields (explicit nulls, one-object lists) too: unstructure reads them.
    assert converter.unstructure(theirs) == converter.unstructure(ours)


def test_cattrs_hooks_decode_every_seed_example_as_the_library_does() -> None:
    """The cattrs-generated row builds the same models as the library: the timing is fair."""
    cattrs_structure = decode.cattrs_structure_action()
    payloads = list(examples().values())
    assert len(payloads) == 22
    for payload in payloads:
        _assert_same_model(payload, cattrs_structure)
        assert converter.unstructure(cattrs_structure(payload)) == payload


def _with_extras(p: dict[str, Any]) -> None:
    p.update(user={"id": "u_1"}, log_id=None, request_id=None)
    p["result"]["note"] = [1, {"a": 2}]


def _one_failure(p: dict[str, Any]) -> None:
    p["result"]["failed"] = p["result"]["failed"][0]


def _unknown_values(p: dict[str, Any]) -> None:
    p.update(type="VOUCHERS.SOMETHING_NEW", status="PAUSED", operation_status="MAYBE")


def _defaults_left_out(p: dict[str, Any]) -> None:
    del p["object"], p["result"]["message"]


@pytest.mark.parametrize(
    "change", [_with_extras, _one_failure, _unknown_values, _defaults_left_out]
)
def test_cattrs_hooks_match_the_library_off_the_common_path(
    change: Callable[[dict[str, Any]], None],
) -> None:
    """Unknown keys, explicit nulls, ``failed`` as one object, unknown values, left-out defaults."""
    payload = examples()["VOUCHERS.IMPORT"]
    change(payload)
    _assert_same_model(payload, decode.cattrs_structure_action())


def test_cattrs_hooks_types_and_strictness() -> None:
    """Typed results, enum members, and the library's refusals: no coercion, no missing id."""
    structure = decode.cattrs_structure_action()
    payload = examples()["VOUCHERS.IMPORT"]
    action = structure(payload)
    assert isinstance(action.result, VouchersImportResult)
    assert isinstance(structure({**payload, "type": "X"}).result, UnknownResult)
    operation = structure({**payload, "operation_status": "SUCCESS"}).operation_status
    assert operation is OperationStatus.SUCCESS
    for bad in (
        {**payload, "result": {**payload["result"], "done_count": "5"}},
        {**payload, "progress": True},
        {**payload, "request_id": 5},
        {key: value for key, value in payload.items() if key != "id"},
    ):
        with pytest.raises(ResponseDecodeError):
            structure_async_action(bad)
        with pytest.raises(ClassValidationError):
            structure(bad)


def test_client_cpu_table() -> None:
    """The client CPU table has the baseline, the split variants and the ratios."""
    (table,) = client_cpu.run(client_cpu.SMOKE)
    assert [row[0] for row in table.rows][-1] == "client.async_actions.get"
    assert len(table.rows) == len(client_cpu.VARIANTS)
    assert _all_numbers(_figures(table, "CPU us/request"))
    assert _all_numbers(_figures(table, "x baseline"))
    assert any("Decoding excluded" in note for note in table.notes)


def test_otel_overhead_table() -> None:
    """The OpenTelemetry overhead table has every variant, the end-to-end ratios, the
    hook-path shares and the verdicts against the target."""
    pytest.importorskip("opentelemetry.sdk")
    (table,) = otel_overhead.run(otel_overhead.SMOKE)
    assert [row[0] for row in table.rows] == list(otel_overhead.VARIANTS)
    assert _all_numbers(_figures(table, "CPU us/request"))
    assert _all_numbers(_figures(table, "x off"))
    assert all(cell.endswith(" %") for cell in _figures(table, "hook path"))
    assert sum("target <= 15 %" in note for note in table.notes) == 2
    assert not is_instrumented()  # every variant switched it off again


@pytest.mark.slow
def test_polling_tables() -> None:
    """Polling yields a short-job table, a long-job table and the targets, all jobs seen;
    then the zoo and its held-out shapes (two duration ranges each), the saturated budget and
    the issue's targets."""
    tables = polling.run(polling.SMOKE)
    short, long, targets, zoo_medium, zoo_long, held_medium, held_long, sat, issue = tables
    for table in (short, long):
        assert len(table.rows) == len(polling.VARIANTS)
        assert _all_numbers(_figures(table, "GETs/job"))
        assert _all_numbers(_figures(table, "p95 s"))
        assert _figures(table, "unresolved") == ["0"] * len(polling.VARIANTS)
    assert {row[2] for row in targets.rows} <= {"met", "MISSED"}
    assert len(targets.rows) == 5
    for table in (zoo_medium, zoo_long):
        assert [row[0] for row in table.rows] == list(zoo.SHAPES)
        assert all(" / " in cell for row in table.rows for cell in row[1:])
    for table in (held_medium, held_long):
        assert [row[0] for row in table.rows] == list(zoo.HELD_OUT)
        assert all(cell.count(" / ") == 2 for row in table.rows for cell in row[1:])
    assert [row[0] for row in sat.rows] == ["oracle", "fixed 1 s loop", "PollPolicy() (ours)"]
    assert _all_numbers(_figures(sat, "GETs/job")) and _all_numbers(_figures(sat, "429s"))
    assert _figures(sat, "unresolved") == ["0", "0", "0"]
    assert len(issue.rows) == 4 * len(zoo.SHAPES) + 2  # learned and fresh, two ranges
    assert {row[2] for row in issue.rows} <= {"met", "MISSED"}


@pytest.mark.slow
def test_zoo_plot(tmp_path: Path) -> None:
    """The zoo's plot is an SVG with a point per poller per shape (when matplotlib is here)."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "zoo.svg"
    polling.write_plot(path, polling.SMOKE)
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "slow-then-fast" in text and "GETs per job" in text


def test_yardstick_table() -> None:
    """The informed poller ends every noisy job, never before its end, beside the zoo's."""
    (table,) = yardstick.run(yardstick.SMOKE)
    assert [row[0] for row in table.rows][:3] == [zoo.LABELS[p] for p in ("fixed", "expo", "ours")]
    assert len(table.rows) == 3 + len(yardstick.SETTINGS)
    assert _all_numbers(_figures(table, "GETs per job"))
    picked = attrs.evolve(zoo.FULL, jobs=yardstick.SMOKE.jobs)
    for outcome in yardstick.informed(picked, 0.01, 0.035, yardstick.SMOKE.particles):
        assert outcome.gets >= 1 and outcome.lateness >= 0


def test_budget_table() -> None:
    """The budget table counts 429s, GETs and detected jobs for every poller."""
    (table,) = budget.run(budget.SMOKE)
    assert len(table.rows) == len(budget.VARIANTS)
    assert _all_numbers(_figures(table, "429s"))
    assert _all_numbers(_figures(table, "GETs"))
    jobs = budget.SMOKE.jobs
    assert _figures(table, "detected") == [f"{jobs}/{jobs}"] * len(budget.VARIANTS)


def test_scale_table() -> None:
    """Pending handles cost figures, send nothing, and leave no task after close()."""
    (table,) = scale.run(scale.SMOKE)
    assert len(table.rows) == 2 * len(scale.SMOKE.sizes)
    assert _all_numbers(_figures(table, "bytes/item"))
    assert _figures(table, "tasks left") == ["0", "0"]
    assert _figures(table, "GETs") == ["0", "0"]


def test_tables_render_as_text_and_markdown(tmp_path: Path) -> None:
    """A table renders aligned in text, as a pipe table in Markdown, and into the docs page."""
    table = Table("T", ("name", "value"), (("a", "1.00x"), ("longer", "12.50x")), ("a note",))
    lines = table.text().splitlines()
    assert lines[2].endswith("value") and lines[4].endswith(" 1.00x")
    assert len({len(line) for line in lines[3:6]}) == 1
    markdown = table.markdown()
    assert "| name | value |" in markdown and "| --- | ---: |" in markdown
    page = tmp_path / "benchmarks.md"
    run.write_docs(page, [table], "python benchmarks/run.py --write-docs", 1.0)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks") and "Machine: " in text and "| longer | 12.50x |" in text


def test_scale_policy_divides_every_duration() -> None:
    """scale_policy divides delays and deadlines by the speed and keeps unitless fields."""
    policy = PollPolicy(first_poll_after=2, timeout=100, stall_timeout=50)
    scaled = scale_policy(policy, 10)
    assert scaled.first_poll_after == pytest.approx(0.2)
    assert scaled.initial_delay == pytest.approx(policy.initial_delay / 10)
    assert scaled.max_delay == pytest.approx(policy.max_delay / 10)
    assert scaled.min_delay == pytest.approx(policy.min_delay / 10)
    assert (scaled.timeout, scaled.stall_timeout) == (pytest.approx(10), pytest.approx(5))
    assert (scaled.multiplier, scaled.jitter, scaled.adaptive) == (
        policy.multiplier,
        policy.jitter,
        policy.adaptive,
    )


def test_percentile_interpolates() -> None:
    """Percentiles interpolate between ranks like numpy's default."""
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    assert percentile([0, 10], 95) == pytest.approx(9.5)


@pytest.mark.slow  # spawns worker processes and redis-server: about half a minute
@pytest.mark.slow
def test_redis_budget_table() -> None:
    """Every Redis setup resolves every handle in every process and keeps the budget."""
    from _redis_server import redis_server_binary

    redis_server_binary()  # skips (fails in CI) without a redis-server
    table, cost, warm = redis_budget.run(redis_budget.SMOKE)
    config = redis_budget.SMOKE
    # The shared polls' tables (benchmarks/redis_shared.py) have a figure in every row.
    assert len(cost.rows) == 3 and all(row[1] not in ("-", "") for row in cost.rows)
    assert len(warm.rows) == 2 and all(row[1] != "-" for row in warm.rows)
    assert len(table.rows) == len(redis_budget.VARIANTS)
    assert _figures(table, "429s") == ["0"] * len(redis_budget.VARIANTS)
    expected = [f"{config.handles}/{config.handles}"] + [
        f"{config.processes * config.handles}/{config.processes * config.handles}"
    ] * 3
    assert _figures(table, "resolved") == expected
    assert all(int(cell) <= config.rpm for cell in _figures(table, "max/window"))


def test_update_docs_replaces_and_appends_sections(tmp_path: Path) -> None:
    """--only --write-docs replaces its sections, appends new ones, keeps the others, and
    every heading stays apart from the text before it."""
    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# Benchmarks\n\n## Results\n\n### Kept\n\n| a |\n| --- |\n| 1 |\n\n- kept note\n"
        "### Replaced\n\n| b |\n| --- |\n| 2 |\n",
        encoding="utf-8",
    )
    new = Table("Replaced", ("b",), (("3",),))
    added = Table("Added", ("c",), (("4",),), ("a note",))
    run.update_docs(page, [new, added], "cmd", 1.0)
    text = page.read_text(encoding="utf-8")
    assert "- kept note\n\n### Replaced" in text
    assert "| 3 |" in text and "| 2 |" not in text
    assert text.index("### Replaced") < text.index("### Added")
    assert all(text[: m.start()].endswith("\n\n") for m in re.finditer("^### ", text, re.M))
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_outofsample_cells_and_targets(tmp_path: Path) -> None:
    """Every poller polls every cell's jobs (tuning and held-out seeds) to their end, never
    seeing an end before it happened; the targets name both seed ranges and both clients."""
    config = outofsample.SMOKE
    results = outofsample.run_shapes(config)
    assert set(results) == {
        (label, name) for label, _, _ in outofsample.CELLS for name in outofsample.RANGES
    }
    for per in results.values():
        assert set(per) == set(outofsample.POLLERS)
        for cell in per.values():
            assert cell.outcomes and cell.crashes + len(cell.outcomes) == _jobs(per)
            assert all(o.gets >= 1 and o.lateness >= zoo.LATENCY / 2 for o in cell.outcomes)
    table = outofsample.shape_table(config, results)
    assert len(table.rows) == len(outofsample.CELLS) * len(outofsample.RANGES)
    by_feature = outofsample.feature_table(results)
    assert by_feature.rows and all(int(row[1]) > 0 for row in by_feature.rows)
    rows = outofsample.target_rows(results)
    assert len(rows) == len(table.rows) * 2 + len(outofsample.RANGES)
    assert {row[1] for row in rows} == set(outofsample.RANGES)
    assert {row[4] for row in rows} <= {"met", "MISSED"}
    pytest.importorskip("matplotlib")
    path = tmp_path / "oos.svg"
    outofsample.plot(results, path)
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text and "held-out" in text and "moving 2-30 min" in text


def _jobs(per: dict[str, outofsample.Cell]) -> int:
    """How many jobs a cell has (every poller sees the same ones)."""
    return len(per["fixed"].outcomes) + per["fixed"].crashes


def test_the_warm_client_learned_every_type_of_its_cell() -> None:
    durations = shapes_random.DURATIONS["medium"]
    shapes = shapes_random.draw_many(range(16), "moving", durations)
    stats = outofsample.warm_client(shapes, durations, 5)
    for shape in shapes:
        assert stats.quantile(shape.type, 0.5) is not None


@pytest.mark.slow
def test_planning_figures_on_the_simulated_clock() -> None:
    """next_delay is timed on every zoo shape and random cell; 100 pending schedules are
    planned twice; a pending handle's memory is traced without a request."""
    config = planning.SMOKE
    stats, shapes = planning.learned_client(config)
    assert len({s.type for s in shapes}) == 64
    rows = planning.next_delay_rows(config, stats)
    assert config.zoo_shapes is not None
    assert len(rows) == len(config.zoo_shapes) + len(outofsample.CELLS)
    assert all(calls > 0 and 0 < median <= p99 for _, calls, median, p99 in rows)
    first, second = planning.plan_batch(config, stats, shapes)
    assert first > 0 and second > 0
    per_handle, sent = planning.pending_bytes("handle", config.handles)
    per_task, _ = planning.pending_bytes("task", config.handles)
    assert sent == 0 and per_handle > 0 and per_task > 0


@pytest.mark.slow
def test_planning_and_outofsample_tables() -> None:
    """The whole runs, smallest: the tables and their targets (client CPU and the saturated
    budget against real emulators)."""
    table, targets, features, sat = outofsample.run(outofsample.SMOKE)
    assert {row[0].split(": ")[1] for row in features.rows} <= {"all", *shapes_random.FEATURES}
    assert table.title == outofsample.TITLE
    assert targets.rows[-1][0].startswith("saturated budget")
    assert _figures(sat, "unresolved") == ["0", "0", "0"]
    per_shape, planned = planning.run(planning.SMOKE)
    assert _all_numbers(_figures(per_shape, "median us"))
    assert [row[2] for row in planned.rows][:3] != ["-"] * 3
    assert len(planned.rows) == 5
