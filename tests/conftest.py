"""Test configuration: a seeded random generator for every test, and the engine's internal
consistency checks switched on (every tangent and cotangent is checked against its primal's
shape and dtype)."""
import os

os.environ.setdefault("DFDX_DEBUG_CHECKS", "1")
os.environ.setdefault("DFDX_CHECK_PROGRAMS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import dfdx  # noqa: E402,F401
from dfdx._src import ad, staging  # noqa: E402

ad.debug_checks = True
staging.check_programs = True


@pytest.fixture(autouse=True)
def rng():
  np.random.seed(0)
  return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def doctest_namespace_setup(doctest_namespace):
  import dfdx.numpy as dnp
  doctest_namespace.update(np=np, dfdx=dfdx, dnp=dnp)
