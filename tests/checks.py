"""Checks shared by the spec-table drivers."""
import numpy as np

from dfdx._src import core
from dfdx._src.core import Trace, Tracer, swap_trace


class _CaptureTracer(Tracer):
  __slots__ = ("val",)

  def __init__(self, trace, val):
    self._trace, self.val = trace, val

  shape = property(lambda self: np.shape(self.val))
  dtype = property(lambda self: np.asarray(self.val).dtype)

  def concrete_value(self, purpose):
    return self.val


class AbstractEvalChecker(Trace):
  """Runs every primitive with its NumPy impl and checks its abstract evaluation against the
  result's shape and dtype. Arguments are wrapped so that dfdx.numpy takes its traced path."""
  kind = "abstract-eval check"

  def __init__(self):
    super().__init__()
    self.checked = []

  def process_primitive(self, prim, args, params):
    vals = [a.val if isinstance(a, _CaptureTracer) and a._trace is self else a for a in args]
    prev = swap_trace(None)
    try:
      result = prim.impl(*vals, **params)
      avals = core.abstract_eval(prim, vals, params)
    finally:
      swap_trace(prev)
    results = result if prim.multiple_results else [result]
    avals = avals if prim.multiple_results else [avals]
    for r, a in zip(results, avals, strict=True):
      r = np.asarray(r)
      assert (r.shape, r.dtype) == (a.shape, a.dtype), (
          f"abstract eval of {prim.name} gives {a}, impl gives {r.dtype}{list(r.shape)}")
    self.checked.append(prim)
    wrapped = [_CaptureTracer(self, r) for r in results]
    return wrapped if prim.multiple_results else wrapped[0]

  def run(self, fun, args):
    prev = swap_trace(self)
    try:
      out = fun(*[_CaptureTracer(self, a) if isinstance(a, (np.ndarray, np.generic)) else a
                  for a in args])
    finally:
      swap_trace(prev)
      self.alive = False
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.val if isinstance(o, _CaptureTracer) else o for o in outs]


def assert_same_array(actual, expected, rtol=1e-12, atol=0.0):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def differentiable_part(spec, args, shapes):
  """`spec.fun` as a function of its differentiated arguments only (the others fixed to
  `args`), and those arguments."""
  argnums = spec.differentiated(shapes)

  def f(*diff_args):
    full = list(args)
    for i, a in zip(argnums, diff_args):
      full[i] = a
    return spec.fun(*full)
  f.__name__ = spec.name
  return f, tuple(args[i] for i in argnums)
