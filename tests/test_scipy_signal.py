"""dfdx.scipy.signal: convolve and correlate against scipy.signal for every mode, 1-d to 3-d
and both size orders; check_grads in both inputs, vmap, jit, errors, and no SciPy needed.
"""
import subprocess
import sys

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.signal as dss
from dfdx.testing import check_grads

signal = pytest.importorskip("scipy.signal")

RNG = np.random.default_rng(0)
SHAPES = [((5,), (3,)), ((3,), (5,)), ((4,), (4,)), ((1,), (1,)), ((4, 5), (2, 3)),
          ((2, 3), (4, 5)), ((3, 4, 2), (2, 2, 2)), ((4, 3), (4, 3)), ((3, 1), (1, 4))]


@pytest.mark.parametrize("name", ["convolve", "correlate"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("s1,s2", SHAPES)
def test_matches_scipy(s1, s2, mode, name):
  a, b = RNG.standard_normal(s1), RNG.standard_normal(s2)
  try:
    expected = getattr(signal, name)(a, b, mode)
  except ValueError:
    with pytest.raises(ValueError):
      getattr(dss, name)(a, b, mode)
    return
  got = getattr(dss, name)(a, b, mode)
  assert got.shape == expected.shape and got.dtype == expected.dtype
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
  traced = dfdx.jvp(lambda a: getattr(dss, name)(a, b, mode), (a,), (a,))[0]
  np.testing.assert_allclose(traced, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a,b", [(np.arange(4), np.arange(3)), (np.float32([1, 2]), [0.5, 1]),
                                 (np.array(2.0), np.array(3.0))])
def test_dtypes_and_edge_cases(a, b):
  expected = signal.convolve(a, b)
  got = dss.convolve(a, b)
  assert np.asarray(got).dtype == np.asarray(expected).dtype
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_empty_inputs_give_an_empty_array():
  # (SciPy itself is inconsistent here: it raises for some modes, returns [] for others.)
  assert dss.convolve(np.zeros((0, 2)), np.ones((2, 2))).size == 0


@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_empty_operand_same_keeps_in1s_shape_and_valid_checks_shapes(name):
  a, b = np.zeros((0, 3)), np.ones((2, 2))
  expected = getattr(signal, name)(a, b, mode="same", method="direct")
  got = getattr(dss, name)(a, b, mode="same")
  assert got.shape == expected.shape == (0, 3) and got.dtype == expected.dtype
  with pytest.raises(ValueError, match="at least as large"):
    getattr(signal, name)(a, b, mode="valid")
  with pytest.raises(ValueError, match="at least as large"):
    getattr(dss, name)(a, b, mode="valid")
  # an empty kernel: every output entry is an empty sum
  np.testing.assert_array_equal(dss.convolve(np.ones((2, 3)), np.zeros((0, 3)), "same"),
                                np.zeros((2, 3)))


CSHAPES = [((5,), (3,)), ((3,), (5,)), ((4, 3), (2, 2)), ((2, 3), (4, 5))]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("s1,s2", CSHAPES)
@pytest.mark.parametrize("kinds", ["cc", "cr", "rc"])
def test_correlate_conjugates_complex_in2_as_scipy(s1, s2, mode, kinds):
  def make(shape, kind):
    x = RNG.standard_normal(shape)
    return x + 1j * RNG.standard_normal(shape) if kind == "c" else x
  a, b = make(s1, kinds[0]), make(s2, kinds[1])
  try:
    expected = signal.correlate(a, b, mode)
  except ValueError:
    return
  for got in (dss.correlate(a, b, mode), dfdx.jit(lambda a, b: dss.correlate(a, b, mode))(a, b),
              dfdx.vmap(lambda a, b: dss.correlate(a, b, mode))(a[None], b[None])[0]):
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_correlate_of_complex_inputs_derivatives():
  a = RNG.standard_normal(4) + 1j * RNG.standard_normal(4)
  b = RNG.standard_normal(3) + 1j * RNG.standard_normal(3)
  check_grads(lambda a, b: dss.correlate(a, b), (a, b), order=2)
  # d/db of sum(Re correlate(a, b)) = sum_n sum_m Re(a[n + m] conj(b[m])): real part in b's
  # real direction, the conjugate's sign in its imaginary direction.
  f = lambda br, bi: dnp.sum(dnp.real(dss.correlate(a, br + 1j * bi)))
  gr, gi = dfdx.grad(f, argnums=(0, 1))(b.real, b.imag)
  np.testing.assert_allclose(gr, np.full(3, a.sum().real), rtol=1e-12)
  np.testing.assert_allclose(gi, np.full(3, a.sum().imag), rtol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_check_grads(mode):
  a, b = RNG.standard_normal((4, 5)), RNG.standard_normal((2, 3))
  check_grads(lambda a, b: dss.convolve(a, b, mode), (a, b), order=2)
  check_grads(lambda a, b: dss.correlate(a, b, mode), (a[0], b[0]), order=1)


def test_gradient_is_correlation():
  # d/d in1 of <convolve(in1, in2, 'valid'), g> is correlate(g, in2, 'full')... written as
  # convolve(g, in2 reversed, 'full')
  a, b = RNG.standard_normal(7), RNG.standard_normal(3)
  g = RNG.standard_normal(5)
  grad = dfdx.grad(lambda a: dnp.sum(dss.convolve(a, b, "valid") * g))(a)
  np.testing.assert_allclose(grad, signal.convolve(g, b[::-1], "full"), rtol=1e-12)


def test_vmap_and_jit():
  xs, k = RNG.standard_normal((3, 6, 5)), RNG.standard_normal((2, 2))
  out = dfdx.vmap(lambda x: dss.convolve(x, k, "same"))(xs)
  np.testing.assert_allclose(out, [signal.convolve(x, k, "same") for x in xs], rtol=1e-12)
  ks = RNG.standard_normal((3, 2, 2))
  out = dfdx.vmap(lambda x, k: dss.convolve(x, k, "valid"))(xs, ks)
  np.testing.assert_allclose(out, [signal.convolve(x, k, "valid") for x, k in zip(xs, ks)],
                             rtol=1e-12)
  f = dfdx.jit(dfdx.grad(lambda x, k: dnp.sum(dss.convolve(x, k) ** 2), (0, 1)))
  for got, want in zip(f(xs[0], k), dfdx.grad(lambda x, k: dnp.sum(dss.convolve(x, k) ** 2),
                                               (0, 1))(xs[0], k)):
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_errors():
  with pytest.raises(ValueError, match="same dimensionality"):
    dss.convolve(np.ones(3), np.ones((2, 2)))
  with pytest.raises(ValueError, match="mode"):
    dss.convolve(np.ones(3), np.ones(2), mode="circular")
  with pytest.raises(ValueError, match="'valid' mode"):
    dss.convolve(np.ones((4, 2)), np.ones((2, 4)), mode="valid")


def test_no_scipy_needed():
  code = ("import sys; sys.modules['scipy'] = None\n"
          "import dfdx.scipy.signal as s\nprint(s.convolve([1.0, 2.0], [1.0, 1.0]))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[1. 3. 2.]"
