"""The emulator's request budget: a sliding window, reported in the real API's headers."""

from __future__ import annotations

import collections
import math

import attrs

from voucherify_async._errors import InvalidArgumentError
from voucherify_async._validate import check_seconds

__all__ = ["GENEROUS_LIMIT", "RateState", "SlidingWindow"]

#: The limit reported when no budget is enforced.
GENEROUS_LIMIT = 1_000_000


@attrs.frozen
class RateState:
    """The budget as one response reports it.

    *refill_in* is the number of seconds (real time) until the oldest request in the
    window leaves it and frees a slot (0 when the window is empty).
    """

    limit: int
    remaining: int
    refill_in: float

    def headers(self, wall: float) -> dict[str, str]:
        """The ``X-Rate-Limit-*`` headers, with *wall* the current Unix time in seconds."""
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Retry": str(math.ceil(wall + self.refill_in)),
            "X-Rate-Limit-Type": "api_calls",
        }


class SlidingWindow:
    """At most *limit* admitted requests in any *window* seconds (None: no limit).

    Only admitted requests count: a request turned away with a 429 does not push the
    refill time further out.
    """

    def __init__(self, limit: int | None, window: float) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidArgumentError(f"requests_per_minute must be >= 1 or None, got {limit!r}")
        if check_seconds(window, "rate_limit_window") <= 0:
            raise InvalidArgumentError(f"rate_limit_window must be > 0 seconds, got {window!r}")
        self.limit = limit
        self.window = window
        self._admitted: collections.deque[float] = collections.deque()

    def _expire(self, now: float) -> None:
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()

    def peek(self, now: float) -> RateState:
        """The state at *now* (monotonic seconds), without using the budget."""
        self._expire(now)
        limit = GENEROUS_LIMIT if self.limit is None else self.limit
        refill_in = self._admitted[0] + self.window - now if self._admitted else 0.0
        return RateState(limit, max(0, limit - len(self._admitted)), max(0.0, refill_in))

    def admit(self, now: float) -> tuple[bool, RateState]:
        """Use one request of the budget at *now*; False when the budget is spent."""
        self._expire(now)
        if self.limit is not None and len(self._admitted) >= self.limit:
            return False, self.peek(now)
        self._admitted.append(now)
        # Keep the unlimited log bounded: only its length below the limit matters.
        if self.limit is None and len(self._admitted) > GENEROUS_LIMIT:
            self._admitted.popleft()
        return True, self.peek(now)
