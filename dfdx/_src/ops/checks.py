"""Checks of values known only when they are computed: `check(x, kind, error, message)` is x,
and raises `error(message)` where x fails the check, at the time x is computed.

Eagerly a function can test a concrete value and raise as NumPy does (weights summing to
zero, a singular system). Under jit and vmap the value is not known when the function is
traced; without a check the computation would go on and give a NaN or LAPACK's bare message.
A check is an equation of its own, so the compiled code raises the function's own error, and
a vmapped one raises it when any example fails (as NumPy raises for that example).

Kinds: "nonzero" (no entry is zero), "nonsingular" (no matrix of the stack, over the last two
axes, is singular). Derivatives pass through unchecked (a zero tangent is no error).
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core

ERRORS = {"ZeroDivisionError": ZeroDivisionError, "LinAlgError": np.linalg.LinAlgError,
          "ValueError": ValueError}


def failed(kind, x):
  """Whether `x` fails the check `kind` (also the generated code's helper: codegen_rules)."""
  x = np.asarray(x)
  if kind == "nonzero":
    return bool(np.any(x == 0))
  return bool(x.size) and bool(np.any(np.linalg.slogdet(x)[0] == 0))


check_p = core.primitive("check")


def check(x, kind, error, message):
  """`x`, raising `error` (a name in ERRORS) with `message` where `x` fails `kind`."""
  assert kind in ("nonzero", "nonsingular") and error in ERRORS, (kind, error)
  return check_p.bind(x, kind=kind, error=error, message=message)


def _impl(x, *, kind, error, message):
  if failed(kind, x):
    raise ERRORS[error](message)
  return x


check_p.def_impl(_impl)
check_p.def_abstract_eval(lambda x, **params: x)
ad.primitive_jvps[check_p] = lambda primals, tangents, **params: (
    check_p.bind(primals[0], **params), tangents[0])
batching.primitive_batchers[check_p] = lambda axis_size, vals, dims, **params: (
    check_p.bind(batching.bdim_at_front(vals[0], dims[0], axis_size), **params), 0)
