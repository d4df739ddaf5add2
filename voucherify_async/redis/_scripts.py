"""The Lua scripts beside this module: read once, registered with a client, called by SHA.

redis-py's script objects send ``EVALSHA`` and, on ``NOSCRIPT`` (a restarted or flushed
server), load the script again and retry once.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import redis.asyncio
from redis.commands.core import AsyncScript

__all__ = ["Scripts", "as_int", "as_text", "key_base"]


@functools.cache
def _source(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


class Scripts:
    """The scripts named *names*, registered with the client *r*: ``scripts["name"](...)``."""

    def __init__(self, r: redis.asyncio.Redis | redis.asyncio.RedisCluster, *names: str) -> None:
        self._scripts = {name: r.register_script(_source(name)) for name in names}

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]


def as_int(value: Any) -> int:
    """An integer reply (or a number sent as bytes or text) as an int."""
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii")
    return int(value)


def as_text(value: Any) -> str:
    """A bulk reply as text, whether the client decodes responses or not."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8")
    return str(value)


def key_base(prefix: str, kind: str, name: str) -> str:
    """``prefix:kind:{name}``, the start of every key of one budget, poll set or store.

    The braces make *name* the keys' hash tag (one slot on a Redis Cluster, so a script may
    name them all); braces inside *prefix* or *name* would end or start the tag elsewhere (an
    empty tag hashes the whole key), so they become parentheses.
    """
    return f"{_brace_free(prefix)}:{kind}:{{{_brace_free(name)}}}"


def _brace_free(text: str) -> str:
    return text.replace("{", "(").replace("}", ")")
