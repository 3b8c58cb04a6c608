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


@pytest.fixture
def compiling(monkeypatch):
  """Eager reverse passes compiled at the second sighting of a structure (reverse_cache.py),
  with the debug checks (which this configuration turns on and which keep passes
  interpreted) off and a fresh cache; returns its `stats`. A compiled pass is kept whenever
  it agrees with the interpreted one: on a loaded machine one timing can lose by chance.
  The estimate of compilation times that a compilation updates stays 0."""
  from dfdx._src import reverse_cache
  check = reverse_cache._compile_and_check

  def check_at_once(entry, lin, residuals, cotangents, expected, seconds, vmaps=None):
    check(entry, lin, residuals, cotangents, expected, float("inf"), vmaps)
    reverse_cache._compile_seconds_per_node = 0.0
  monkeypatch.setattr(ad, "debug_checks", False)
  monkeypatch.setattr(reverse_cache, "enabled", True)
  monkeypatch.setattr(reverse_cache, "_compile_seconds_per_node", 0.0)
  monkeypatch.setattr(reverse_cache, "_entries", {})
  monkeypatch.setattr(reverse_cache, "_count", 0)
  monkeypatch.setattr(reverse_cache, "stats", dict.fromkeys(reverse_cache.stats, 0))
  monkeypatch.setattr(reverse_cache, "loop_stats", dict.fromkeys(reverse_cache.loop_stats, 0))
  monkeypatch.setattr(reverse_cache, "_compile_and_check", check_at_once)
  return reverse_cache.stats


@pytest.fixture
def jit_sources(monkeypatch):
  """The sources jit compiles from now on (the list fills as jitted functions compile)."""
  from dfdx._src import codegen
  sources = []
  compile_program = codegen.compile_program

  def spy(program, name="f", **kwargs):
    fn = compile_program(program, name, **kwargs)
    sources.append(fn.__dfdx_source__)
    return fn
  monkeypatch.setattr(codegen, "compile_program", spy)
  return sources


@pytest.fixture
def pass_changes(monkeypatch):
  """`watch(name)`: a list that records, from now on, whether each run of passes.<name>
  changed the program it was given."""
  from dfdx._src import passes

  def watch(name):
    changes, run = [], getattr(passes, name)

    def spy(program):
      out = run(program)
      changes.append(out is not program)
      return out
    monkeypatch.setattr(passes, name, spy)
    return changes
  return watch


@pytest.fixture
def rolling(compiling, monkeypatch):
  """Tapes past 60 nodes are rolled (not compiled whole), from blocks of 8 on."""
  from dfdx._src import reverse_cache
  monkeypatch.setattr(reverse_cache, "MAX_NODES", 60)
  monkeypatch.setattr(reverse_cache, "ROLL_MIN_NODES", 61)
  monkeypatch.setattr(reverse_cache, "_rolled_refused", set())
  monkeypatch.setattr(reverse_cache, "_slower", lambda seconds, interpreted: False)  # (timings)
  calls = []
  real = reverse_cache._Plan.run
  monkeypatch.setattr(reverse_cache._Plan, "run",
                      lambda self, *a: calls.append(self) or real(self, *a))
  compiling["rolled"] = calls
  return compiling
