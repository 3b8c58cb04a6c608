"""Doctest namespace for the docstrings of the package."""
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
  import dfdx
  import dfdx.numpy as dnp
  doctest_namespace.update(np=np, dfdx=dfdx, dnp=dnp)
