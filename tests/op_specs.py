"""The primitive spec table: one `OpSpec` line per tested use of a primitive.

Each family of primitives has its lines in `tests/specs/<family>.py` (a list `SPECS`); this
module collects them. The drivers (`test_ops_*.py`) run every line through: the impl against
NumPy, abstract evaluation against the actual result, check_grads forward and reverse to
order 2 (with and without direct VJP rules), vmap against stacked per-example calls, and the
dot-product transpose test for linear primitives. `test_registry.py` fails when a primitive
has no spec line.

Writing a line:
  OpSpec("sin", ew.sin_p, ew.sin, np.sin, UNARY_SHAPES, domain=(-3, 3))

  * `fun(*args)` computes with dfdx (it must bind `prim`); `ref(*args)` with NumPy.
  * `shapes`: a list of argument-shape tuples, one shape per argument.
  * `domain`: (lo, hi) for every argument, or a list with one entry per argument: (lo, hi)
    for uniform floats, `Int(lo, hi)` for integers, `Bool()` for booleans, or `Fixed(value)`
    for a constant argument (not sampled, not batched).
  * `diff_argnums`: the arguments that are differentiated (default: the float ones).
  * `linear`: run the transpose test (default: the primitive is marked linear).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from dfdx._src.core import Primitive

UNARY_SHAPES = [((),), ((3,),), ((2, 3),), ((0, 3),)]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((1, 3), (3, 1)), ((2, 3), ()),
                 ((3,), (2, 3)), ((0, 3), (3,))]


@dataclasses.dataclass(frozen=True)
class Int:
  lo: int
  hi: int


@dataclasses.dataclass(frozen=True)
class Bool:
  pass


@dataclasses.dataclass(frozen=True)
class Fixed:
  value: Any


@dataclasses.dataclass
class OpSpec:
  name: str
  prim: Primitive
  fun: Callable
  ref: Callable
  shapes: Sequence[tuple]
  domain: Any = (-2.0, 2.0)
  diff_argnums: tuple | None = None
  linear: bool | None = None
  order: int = 2
  atol: float = 1e-5
  rtol: float = 1e-5
  eps: float = 1e-5
  transpose_rtol: float = 1e-10
  vmap: bool = True
  grad: bool = True
  dtype: Any = np.float64

  def domains(self, nargs):
    if isinstance(self.domain, list):
      assert len(self.domain) == nargs, (self.name, self.domain, nargs)
      return self.domain
    return [self.domain] * nargs

  def make_args(self, rng, shapes):
    return tuple(_make_arg(rng, s, d, self.dtype) for s, d in zip(shapes, self.domains(len(shapes))))

  def differentiated(self, shapes):
    if self.diff_argnums is not None:
      return self.diff_argnums
    return tuple(i for i, d in enumerate(self.domains(len(shapes)))
                 if isinstance(d, tuple))

  def is_linear(self):
    return self.prim.linear if self.linear is None else self.linear


def _make_arg(rng, shape, domain, dtype):
  if isinstance(domain, Fixed):
    return domain.value
  if isinstance(domain, Int):
    return rng.integers(domain.lo, domain.hi, size=shape)
  if isinstance(domain, Bool):
    return rng.random(shape) > 0.5
  lo, hi = domain
  x = rng.uniform(lo, hi, size=shape).astype(dtype)
  return x if shape else dtype(x)


def cases(specs, differentiable=False):
  """(spec, shapes) pairs for pytest parametrization, with readable ids; with
  `differentiable`, only those with an argument to differentiate."""
  out = []
  for spec in specs:
    for shapes in spec.shapes:
      if not differentiable or spec.differentiated(shapes):
        out.append(pytest_param(spec, shapes))
  return out


def pytest_param(spec, shapes):
  import pytest
  shape_id = "-".join("x".join(map(str, s)) or "scalar" for s in shapes)
  return pytest.param(spec, shapes, id=f"{spec.name}[{shape_id}]")


def all_specs():
  from tests.specs import (callback, checks, contraction, control, elementwise, fft, implicit,
                           indexing, linalg, optimize, reduction, shape, sorting, special)
  return [s for m in (elementwise, reduction, shape, indexing, contraction, linalg, control,
                      special, sorting, fft, implicit, callback, checks, optimize)
          for s in m.SPECS]


def batching_patterns(nargs, sampleable):
  """in_axes patterns for the vmap test: every argument batched at 0, each sampleable argument
  alone, and all at their last axis (-1)."""
  patterns = [tuple(0 if s else None for s in sampleable)]
  for i in range(nargs):
    if sampleable[i]:
      patterns.append(tuple(0 if j == i else None for j in range(nargs)))
  patterns.append(tuple(-1 if s else None for s in sampleable))
  return list(dict.fromkeys(patterns))

