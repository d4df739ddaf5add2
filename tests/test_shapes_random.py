"""The random progress shapes (benchmarks/shapes_random.py): deterministic, every feature
drawn, every job a timeline a server could serve."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import shapes_random as sr  # noqa: E402

CASES: list[tuple[sr.Family, tuple[float, float]]] = [
    ("moving", sr.DURATIONS["medium"]),
    ("moving", sr.DURATIONS["long"]),
    ("silent", sr.DURATIONS["medium"]),
    ("unseen", sr.DURATIONS["long"]),
    ("short", sr.DURATIONS["short"]),
]


def test_the_same_seed_draws_the_same_job_and_other_seeds_other_jobs() -> None:
    for family, durations in CASES:
        first = sr.draw_many(range(40), family, durations)
        assert first == sr.draw_many(range(40), family, durations)
        assert len({(s.start, s.end, s.knots) for s in first}) == 40
        held = sr.draw_many(range(sr.HELD_OUT.start, sr.HELD_OUT.start + 40), family, durations)
        assert not {s.type for s in first} & {s.type for s in held}


def test_a_known_seed_keeps_its_job() -> None:
    """Pinned figures: a change to the generator shows here (and moves every benchmark)."""
    shape = sr.draw(9, "moving", sr.DURATIONS["medium"])
    assert shape.type == "SIM.moving.15-45.1"
    assert shape.step == 20
    assert [shape.state(shape.start + shape.running * i / 4)[1] for i in range(4)] == [
        0,
        20,
        40,
        60,
    ]


def test_the_seed_ranges_are_apart() -> None:
    assert not set(sr.TUNING) & set(sr.HELD_OUT)
    assert sr.TUNING.stop <= sr.HELD_OUT.start
    # No type straddles the two ranges.
    assert sr.TUNING.stop % sr.BLOCK == 0 and sr.HELD_OUT.start % sr.BLOCK == 0


def test_every_feature_occurs_among_the_tuning_seeds() -> None:
    seen: set[str] = set()
    for family, durations in CASES:
        for shape in sr.draw_many(sr.TUNING[:400], family, durations):
            seen |= shape.features
    assert seen == set(sr.FEATURES)


@pytest.mark.parametrize(("family", "durations"), CASES)
def test_every_job_is_a_timeline_a_server_could_serve(
    family: sr.Family, durations: tuple[float, float]
) -> None:
    low, high = durations
    went_back = False
    for shape in sr.draw_many(sr.TUNING[:200], family, durations):
        assert low - 1e-9 <= shape.running <= high + 1e-9
        assert 0 <= shape.start < shape.end
        assert shape.first_seen > 0
        assert shape.state(0.0)[0] == ("ENQUEUED" if shape.start > 0 else "IN_PROGRESS")
        assert shape.state(shape.end) == ("DONE", 100)
        last = 0
        for i in range(200):
            t = shape.start + shape.running * i / 200
            status, progress = shape.state(t)
            assert status == "IN_PROGRESS"
            assert 0 <= progress <= 99
            if shape.step:
                assert progress % shape.step == 0
            else:
                assert progress == 0
            went_back |= progress < last
            if progress < last:
                assert "restart" in shape.features
            last = progress
        assert 0 <= shape.curve(0.5) <= 99
    if family in ("moving", "unseen"):
        assert went_back


def test_unseen_queue_waits_reach_hours_and_the_client_meets_the_job_late() -> None:
    shapes = sr.draw_many(sr.TUNING[:200], "unseen", sr.DURATIONS["medium"])
    assert max(s.start for s in shapes) > 3600
    assert all(s.first_seen >= s.start - 0.1 * s.running - 1e-9 for s in shapes)
    assert all(s.first_seen > 0.5 for s in shapes)


def test_history_is_the_same_type_earlier_and_drifting_types_drift() -> None:
    durations = sr.DURATIONS["long"]
    drifted = 0
    for seed in range(0, 400, sr.BLOCK):
        shape = sr.draw(seed, "moving", durations)
        earlier = sr.history(shape, 16, durations)
        assert [s.index for s in earlier] == list(range(-16, 0))
        assert {s.type for s in earlier} == {shape.type}
        assert earlier == sr.history(shape, 16, durations)
        profile = sr.type_profile(seed, "moving", durations)
        if "drift" in shape.features:
            assert profile.drift != 0
            drifted += 1
    assert drifted > 0
    with pytest.raises(ValueError, match="drawn with"):
        sr.history(sr.draw(0, "moving", durations), 3, sr.DURATIONS["medium"])
