"""dfdx.numpy.linalg.eig and eigvals on general (non-symmetric, real or complex) matrices:
NumPy's results and dtypes on traced values, derivatives against finite differences of
NumPy's own eig (eigenvalues, and eigenvectors with LAPACK's normalization), finite results
at repeated eigenvalues, batching and jit."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_complex import wirtinger_fd

la = dnp.linalg
RNG = np.random.default_rng(11)
A = RNG.normal(size=(4, 4))  # two real eigenvalues and a complex pair
Z = RNG.normal(size=(4, 4)) + 1j * RNG.normal(size=(4, 4))
S = A + A.T + np.diag([0.0, 3.0, 6.0, 9.0])  # real eigenvalues only
W = np.arange(16.0).reshape(4, 4) / 8


def real_fd(f, a, eps=1e-6):
  """The gradient of real-valued f at real a by central differences."""
  out = np.zeros_like(a)
  for idx in np.ndindex(a.shape):
    e = np.zeros_like(a)
    e[idx] = eps
    out[idx] = (float(f(a + e)) - float(f(a - e))) / (2 * eps)
  return out


# real-valued functions of eig's results, written once for NumPy and dfdx.numpy
LOSSES = {
    "abs_w": lambda m, a: m.sum(m.abs(m.linalg.eigvals(a)) ** 2),
    "real_w": lambda m, a: m.sum(m.real(m.linalg.eigvals(a)) * W[0]),
    "imag_w": lambda m, a: m.sum(m.imag(m.linalg.eigvals(a)) * W[1]),
    "abs_v": lambda m, a: m.sum(m.abs(m.linalg.eig(a).eigenvectors) ** 3 * W),
    "real_v": lambda m, a: m.sum(m.real(m.linalg.eig(a).eigenvectors) * W),  # LAPACK's phase
    "imag_v": lambda m, a: m.sum(m.imag(m.linalg.eig(a).eigenvectors) * W),
    "reconstruct": lambda m, a: m.sum(m.abs(_reconstruct(m, *m.linalg.eig(a))) * W),
}


def _reconstruct(m, w, v):
  return v @ (w[..., None] * m.linalg.inv(v))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_of_real_matrix(name):
  f = LOSSES[name]
  np.testing.assert_allclose(dfdx.grad(lambda a: f(dnp, a))(A), real_fd(lambda a: f(np, a), A),
                             rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_of_complex_matrix(name):
  f = LOSSES[name]
  got = dfdx.grad(lambda a: f(dnp, a))(Z)
  np.testing.assert_allclose(got, wirtinger_fd(lambda a: f(np, a), Z), rtol=1e-6, atol=1e-7)
  v = RNG.normal(size=(4, 4)) + 1j * RNG.normal(size=(4, 4))  # forward mode agrees
  t = dfdx.jvp(lambda a: f(dnp, a), (Z,), (v,))[1]
  np.testing.assert_allclose(t, np.real(np.vdot(got, v)), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("a", [A, S], ids=["complex_pair", "real_eigenvalues"])
def test_second_order(a):
  def parts(a):
    w, v = la.eig(a)
    return dnp.concatenate([dnp.real(w), dnp.imag(w), dnp.ravel(dnp.abs(v) ** 2),
                            dnp.ravel(dnp.real(v))])
  check_grads(parts, (a,), order=2, modes=("fwd", "rev"))
  f = lambda a: dnp.sum(dnp.real(la.eigvals(a)) ** 3)  # noqa: E731
  h = dfdx.hessian(f)(a)
  np.testing.assert_allclose(h, dfdx.jacrev(dfdx.jacfwd(f))(a), rtol=1e-8, atol=1e-8)
  np.testing.assert_allclose(h.reshape(16, 16), h.reshape(16, 16).T, rtol=1e-8, atol=1e-8)


def test_results_and_dtypes_are_numpys():
  for a in (A, S, Z, A.astype(np.float32), np.array([[2, 1], [0, 3]]), np.zeros((0, 0))):
    want = np.linalg.eig(a)
    assert la.eig(a)[0] is not None
    got = dfdx.jvp(la.eig, (a,), (np.zeros_like(a, dtype=float),))[0]
    for g, e in zip(got, want):
      assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, e.dtype)
      np.testing.assert_allclose(g, e, rtol=1e-5 if e.dtype == np.complex64 else 1e-12)
    w = dfdx.jvp(la.eigvals, (a,), (np.zeros_like(a, dtype=float),))[0]
    assert w.dtype == np.linalg.eigvals(a).dtype


def test_real_eigenvalues_give_real_arrays_where_concrete():
  # NumPy: real arrays for real input with real eigenvalues only. Eagerly dfdx does that, so
  # the gradient of a sum of eigenvalues needs no real part; under jit the values are abstract
  # and the results stay complex.
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(la.eigvals(a) ** 2))(S), 2 * S.T,
                             rtol=1e-10)
  assert dfdx.jit(la.eigvals)(S).dtype == np.complex128
  np.testing.assert_allclose(dfdx.jit(la.eigvals)(S), np.linalg.eigvals(S), rtol=1e-12)
  assert dfdx.jit(la.eigvals)(A).dtype == np.complex128


def test_repeated_eigenvalues_are_finite():
  a = np.diag([1.0, 1.0, 2.0])
  # the eigenvalues' sum is the trace: its derivative is exact at repeated eigenvalues
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(dnp.real(la.eigvals(a))))(a),
                             np.eye(3), atol=1e-12)
  for f in (lambda a: dnp.sum(dnp.abs(la.eig(a).eigenvectors) ** 2 * W[:3, :3]),
            lambda a: dnp.sum(dnp.real(la.eigvals(a)) ** 2)):
    g = dfdx.grad(f)(a)
    assert np.all(np.isfinite(g))
    assert np.all(np.isfinite(dfdx.hessian(f)(a)))
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(dnp.real(la.eigvals(a)) ** 2))(a),
                             2 * a, atol=1e-12)


def test_reconstruction_is_the_identity_map():
  t = RNG.normal(size=(4, 4))
  out, t_out = dfdx.jvp(lambda a: _reconstruct(dnp, *la.eig(a)), (A,), (t,))
  np.testing.assert_allclose(out, A, atol=1e-12)
  np.testing.assert_allclose(t_out, t, atol=1e-10)


def test_vmap_and_jit():
  stack = RNG.normal(size=(3, 2, 4, 4))
  f = LOSSES["real_v"]
  g = dfdx.grad(lambda a: f(dnp, a))
  want = np.stack([np.stack([g(m) for m in row]) for row in stack])
  np.testing.assert_allclose(dfdx.vmap(dfdx.vmap(g))(stack), want, rtol=1e-10, atol=1e-12)
  # batch axis 1 of (2, 3, 4, 4): each example is a stack of two matrices
  np.testing.assert_allclose(dfdx.vmap(g, in_axes=1)(np.swapaxes(stack, 0, 1)), want,
                             rtol=1e-10, atol=1e-12)
  w, v = dfdx.vmap(la.eig)(stack.reshape(6, 4, 4))
  w_np, v_np = np.linalg.eig(stack.reshape(6, 4, 4))
  np.testing.assert_allclose(w, w_np, rtol=1e-12)
  np.testing.assert_allclose(v, v_np, rtol=1e-12, atol=1e-14)
  # a stack in one call (leading batch dims, as numpy.linalg)
  loss = lambda a: dnp.sum(dnp.abs(la.eigvals(a)) ** 2)  # noqa: E731
  np.testing.assert_allclose(dfdx.grad(loss)(stack),
                             real_fd(lambda a: np.sum(np.abs(np.linalg.eigvals(a)) ** 2), stack),
                             rtol=1e-6, atol=1e-7)
  for fun in (g, dfdx.grad(lambda z: f(dnp, z))):
    np.testing.assert_allclose(dfdx.jit(fun)(A), fun(A), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(lambda z: f(dnp, z)))(Z),
                             dfdx.grad(lambda z: f(dnp, z))(Z), rtol=1e-12, atol=1e-12)


def test_numpy_functions_on_traced_values_dispatch_here():
  f = lambda a: np.sum(np.abs(np.linalg.eigvals(a)))  # noqa: E731
  np.testing.assert_allclose(dfdx.grad(f)(A), real_fd(f, A), rtol=1e-6, atol=1e-7)


def test_errors_are_numpys():
  for bad in (np.ones(3), np.ones((2, 3))):
    for fun in (la.eig, la.eigvals):
      with pytest.raises(np.linalg.LinAlgError):
        fun(bad)
      with pytest.raises(np.linalg.LinAlgError):
        dfdx.jacfwd(lambda a: dnp.abs(fun(a)[0]))(bad)
