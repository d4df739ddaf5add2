"""Sphinx configuration: furo, MyST Markdown, autodoc for the API page, doctests for the rest.

Build it (warnings are errors) with ``nox -s docs``, or by hand::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

The build needs no network: there is no intersphinx.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # build from a checkout even when the package is not installed

# -- project ------------------------------------------------------------------------------

project = "voucherify-async"
author = "voucherify-async contributors"
copyright = "voucherify-async contributors"
try:
    release = _version("voucherify-async")
except PackageNotFoundError:  # a checkout that was never installed
    release = "0+unknown"
version = ".".join(release.split(".")[:2])

# -- general ------------------------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# Every reference into voucherify_async must resolve. References into the standard library and
# other packages would need intersphinx, hence the network at build time: they stay plain text.
nitpicky = True
_EXTERNAL = (
    "abc|aiohttp|asyncio|attrs|backoff|cattrs|collections|contextlib|datetime|enum|fastapi|httpx"
    "|opentelemetry|pytest|random|redis|typing|yarl"
)
nitpick_ignore_regex = [(r"py:.*", rf"({_EXTERNAL})(\..*)?")]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc ------------------------------------------------------------------------------

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

#: Classes a user gets from the library and never builds: their constructors are internal.
_NO_SIGNATURE = {"voucherify_async.AsyncActionHandle", "voucherify_async.AsyncActions"}


def _default_repr(obj: type, param: inspect.Parameter) -> inspect.Parameter:
    """An attrs factory default shows as its value (``headers={}``), not as ``NOTHING``."""
    if param.default is not attrs.NOTHING:
        return param
    field = attrs.fields_dict(obj).get(param.name)
    default = getattr(field, "default", None)
    if isinstance(default, attrs.Factory) and not default.takes_self:
        return param.replace(default=default.factory())
    return param


def _public_signature(
    app: Any,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    """Hide what a reader cannot pass: internal constructors and the models' private fields.

    The models' attrs ``__init__`` takes private keyword arguments (``_present``,
    ``_singular``) that the converter fills in; a reader never passes them.
    """
    if what not in ("class", "exception"):
        return None
    if name in _NO_SIGNATURE:
        return "", return_annotation
    if attrs.has(obj) and signature:
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return None
        params = [
            _default_repr(obj, p.replace(annotation=inspect.Parameter.empty))
            for p in sig.parameters.values()
            if not p.name.startswith("_")
        ]
        return str(sig.replace(parameters=params, return_annotation=sig.empty)), None
    return None


def _public_bases(app: Any, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Show public bases only: a private helper base gives way to its own public bases."""

    def public(cls: type) -> list[type]:
        module = cls.__module__
        private = cls.__name__.startswith("_") or (
            module.startswith("voucherify_async") and cls not in _PUBLIC_OBJECTS
        )
        if not private:
            return [cls]
        return [b for base in cls.__bases__ for b in public(base)]

    shown: list[type] = []
    for base in bases:
        for cls in public(base):
            if cls not in shown:
                shown.append(cls)
    if len(shown) > 1 and object in shown:
        shown.remove(object)
    bases[:] = shown


def _public_objects() -> list[Any]:
    import voucherify_async
    import voucherify_async.testing

    modules = (voucherify_async, voucherify_async.instrumentation, voucherify_async.testing)
    return [getattr(module, name) for module in modules for name in module.__all__]


_PUBLIC_OBJECTS = _public_objects()


@functools.cache
def _source_comments() -> tuple[tuple[Any, list[str]], ...]:
    """(object, ``#:`` comment lines) for every module-level name of the package's modules."""
    from sphinx.pycode import ModuleAnalyzer

    import voucherify_async

    found: list[tuple[Any, list[str]]] = []
    for info in pkgutil.walk_packages(voucherify_async.__path__, "voucherify_async."):
        if "._cli" in info.name or info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # the pytest plugin, in a docs environment without pytest
            continue
        docs = ModuleAnalyzer.for_module(info.name).find_attr_docs()
        for (scope, attr), lines in docs.items():
            if not scope and hasattr(module, attr):
                found.append((getattr(module, attr), list(lines)))
    return tuple(found)


def _data_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Document a re-exported constant with the ``#:`` comment where it is defined.

    autodoc looks for the comment in the module that re-exports the name, finds none, and
    falls back to the docstring of the value's type (``tuple``, ``cattrs.Converter``).
    """
    if what != "data":
        return
    type_doc = inspect.getdoc(type(obj)) or ""
    if lines and "\n".join(lines).strip() != type_doc.strip():
        return
    for value, comment in _source_comments():
        if value is obj:
            lines[:] = [*comment, ""]
            return
    lines[:] = []


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", _public_signature)
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-docstring", _data_docstring)


# -- doctest ------------------------------------------------------------------------------

# Every doctest imports what it uses, in plain sight: no hidden global setup.
doctest_test_doctest_blocks = ""

# -- HTML ---------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"voucherify-async {release}"
html_static_path: list[str] = []
