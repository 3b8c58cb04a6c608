"""bench/compile_time.py: the jitted gradient its fresh interpreter computes is the gradient."""
import os
import sys

import numpy as np

import dfdx
import dfdx.numpy as dnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))
import compile_time  # noqa: E402


def test_the_first_call_computes_the_loops_gradient():
  a = np.random.default_rng(0).standard_normal((40, 40)) / 8  # (the child's A)
  x = np.linspace(0.1, 0.9, 40)

  def f(x, n=7):
    h = x
    for _ in range(n):
      h = dnp.tanh(a @ h + x)
    return dnp.sum(h)
  want = dfdx.grad(f)(x)
  for scanned in (False, True):
    first, later, gradient = compile_time.first_call("dfdx", 7, scanned, timeout=120)
    assert first > 0 and later > 0
    np.testing.assert_allclose(gradient, want, rtol=1e-12)
  # a first call past the timeout is reported as such, not as a time
  assert compile_time.first_call("dfdx", 7, False, timeout=1e-3) == (None, None, None)
