"""The examples in docstrings run and hold (one test per module)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import safecity

SKIP = {"safecity.__main__"}  # running it would start the CLI
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(safecity.__path__, "safecity.")
    if m.name not in SKIP and ".migrations" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
