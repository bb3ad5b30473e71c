"""The examples in the KPI layer's (and the vocabulary's and the partitions') docstrings run and give what they say (numpydoc examples are code)."""

import doctest
import importlib
import pkgutil

import pytest

import pv_platform.kpi

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(pv_platform.kpi.__path__, "pv_platform.kpi.")
) + ["pv_platform.vocabulary", "pv_platform.defs.partitions"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
