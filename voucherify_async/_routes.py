"""Route templates: a request's path with its ids replaced by placeholders.

Spans and metrics are named by route, never by raw path: a path holds ids (an async action's,
a campaign's name), which would make every action a new time series and put names where only
shapes belong. ``/v1/async-actions/aa_1`` becomes ``/v1/async-actions/{asyncActionId}``.

The library's own endpoints (FACTS: the async-actions endpoints and every endpoint that starts
an action) are matched by shape; any other path (``start()`` takes any) keeps only the
segments of the API's fixed vocabulary, and every other segment becomes ``{id}``: a template
never holds a segment the caller chose.
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["route_template"]

#: Placeholders by the segment that precedes an id, as the API reference names them.
_ID_AFTER: Final = {
    "async-actions": "{asyncActionId}",
    "campaigns": "{campaignId}",
    "loyalties": "{campaignId}",
    "programs": "{loyaltyProgramId}",
}

#: Segments kept as they are: the API's own words (never an id's).
_FIXED: Final = frozenset({
    "v1", "v2", "async-actions", "campaigns", "vouchers", "customers", "products", "skus",
    "orders", "loyalties", "programs", "members", "batch", "bulk", "async", "metadata",
    "import", "importCSV",
})  # fmt: skip

#: (pattern, template) for paths whose id position is known; the first match wins.
_KNOWN: Final = [
    (re.compile(r"/v1/async-actions/[^/]+"), "/v1/async-actions/{asyncActionId}"),
    (
        re.compile(r"/v1/campaigns/[^/]+/(import|importCSV|vouchers)"),
        r"/v1/campaigns/{campaignId}/\1",
    ),
    (re.compile(r"/v1/campaigns/[^/]+"), "/v1/campaigns/{campaignId}"),
    (re.compile(r"/v1/loyalties/[^/]+"), "/v1/loyalties/{campaignId}"),
    (
        re.compile(r"/v2/loyalties/programs/[^/]+/members/batch"),
        "/v2/loyalties/programs/{loyaltyProgramId}/members/batch",
    ),
]  # fmt: skip


@functools.lru_cache(maxsize=256)
def route_template(path: str) -> str:
    """The route of *path* (query dropped): the library's endpoints by shape, else the API's
    fixed words kept and every other segment ``{id}``."""
    path = path.split("?", 1)[0]
    if path == "/v1/async-actions":
        return path
    for pattern, template in _KNOWN:
        match = pattern.fullmatch(path)
        if match is not None:
            return match.expand(template)
    out: list[str] = []
    previous = ""
    for segment in path.split("/"):
        if segment and (segment not in _FIXED or previous in _ID_AFTER):
            out.append(_ID_AFTER.get(previous, "{id}"))
        else:
            out.append(segment)
        previous = segment
    return "/".join(out)
