"""Exact derivatives at exactly repeated eigenvalues and singular values (ops/gaps.py).

A function that does not depend on the basis chosen inside a repeated eigenspace has a
derivative there, but it is a limit that no eigh/svd rule sees from one cotangent. A reverse
pass that meets such a tie is computed again with the spectrum split by an infinitesimal;
these tests compare the results with closed forms and with central differences of NumPy.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp


def _orthogonal(n, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
  return q


def _with_eigenvalues(w, seed=0):
  q = _orthogonal(len(w), seed)
  return (q * np.asarray(w, float)) @ q.T


def _with_singular_values(s, m, n, seed=0):
  k = len(s)
  return _orthogonal(m, seed)[:, :k] @ np.diag(s) @ _orthogonal(n, seed + 1)[:k, :]


def _central_differences(f, a, h=1e-5):
  g = np.zeros_like(a)
  for idx in np.ndindex(a.shape):
    e = np.zeros_like(a)
    e[idx] = h
    g[idx] = (f(a + e) - f(a - e)) / (2 * h)
  return g


def _lower_read(a):
  """The gradient of sum(A) as eigh (lower triangle) reads A: 1 on the diagonal, 2 below
  (each entry stands for itself and its mirror), 0 above (never read)."""
  n = a.shape[-1]
  return np.broadcast_to(np.tril(np.full((n, n), 2.0), -1) + np.eye(n), a.shape)


def reconstruct_sum(a):
  w, v = dnp.linalg.eigh(a)
  return dnp.sum((v * w[..., None, :]) @ dnp.swapaxes(v, -1, -2))


@pytest.mark.parametrize("a", [np.eye(3), 2.5 * np.eye(4), _with_eigenvalues([1, 1, 2]),
                               _with_eigenvalues([-1, 3, 3, 3], seed=4), np.zeros((3, 3))],
                         ids=["identity", "scaled-identity", "double", "triple", "zero"])
def test_eigh_basis_independent_gradient_is_exact_at_ties(a):
  # sum((V * w) @ V.T) is sum(A) as eigh reads it, whatever the basis: the example.
  np.testing.assert_allclose(dfdx.grad(reconstruct_sum)(a), _lower_read(a), atol=1e-12)


def test_eigh_upper_triangle_at_a_tie():
  def f(a):
    w, v = dnp.linalg.eigh(a, UPLO="U")
    return dnp.sum((v * w) @ v.T)
  np.testing.assert_allclose(dfdx.grad(f)(np.eye(3)), _lower_read(np.eye(3)).T, atol=1e-12)


def test_eigh_matrix_function_gradient_at_a_triple_eigenvalue_matches_differences():
  c = np.random.default_rng(1).normal(size=(4, 4))
  a = _with_eigenvalues([0.5, 0.5, 0.5, 2.0], seed=2)

  def f(a):  # <C, expm(A)> through the eigendecomposition: a smooth function of A
    w, v = dnp.linalg.eigh(a)
    return dnp.sum(((v * dnp.exp(w)) @ v.T) * c)

  def f_numpy(a):
    w, v = np.linalg.eigh(a)
    return np.sum(((v * np.exp(w)) @ v.T) * c)
  expected = _central_differences(f_numpy, a)
  np.testing.assert_allclose(dfdx.grad(f)(a), expected, atol=1e-8)
  value, grad = dfdx.value_and_grad(f)(a)
  assert value == pytest.approx(f_numpy(a), rel=1e-14)
  np.testing.assert_allclose(grad, expected, atol=1e-8)
  _, vjp_fn = dfdx.vjp(f, a)
  np.testing.assert_allclose(vjp_fn(1.0)[0], expected, atol=1e-8)
  np.testing.assert_allclose(vjp_fn(2.0)[0], 2 * expected, atol=2e-8)


def test_eigh_jacrev_at_a_tie_matches_differences():
  a = _with_eigenvalues([1.0, 1.0, 3.0], seed=5)

  def f(a):  # the matrix square root's first row
    w, v = dnp.linalg.eigh(a)
    return ((v * dnp.sqrt(w)) @ v.T)[0]

  def f_numpy(a, i):
    w, v = np.linalg.eigh(a)
    return ((v * np.sqrt(w)) @ v.T)[0, i]
  jac = dfdx.jacrev(f)(a)
  for i in range(3):
    np.testing.assert_allclose(jac[i], _central_differences(lambda b: f_numpy(b, i), a),
                               atol=1e-8)


def test_eigh_ties_in_a_stack_of_matrices():
  rng = np.random.default_rng(3)
  b = rng.normal(size=(3, 3))
  a = np.stack([np.eye(3), b + b.T, _with_eigenvalues([2, 2, 5])])
  np.testing.assert_allclose(dfdx.grad(reconstruct_sum)(a), _lower_read(a), atol=1e-12)


def test_the_split_pass_runs_only_when_a_reverse_pass_meets_a_tie():
  runs = []

  def counted(f):
    def g(a):
      runs.append(1)
      return f(a)
    return g

  def eigenvalues_only(a):  # no eigenvector: no gap is divided by
    return dnp.sum(dnp.linalg.eigvalsh(a) ** 2)
  b = np.random.default_rng(6).normal(size=(4, 4))
  dfdx.grad(counted(reconstruct_sum))(b + b.T)  # distinct eigenvalues
  assert len(runs) == 1
  np.testing.assert_allclose(dfdx.grad(counted(eigenvalues_only))(np.eye(3)), 2 * np.eye(3),
                             atol=1e-14)
  assert len(runs) == 2
  dfdx.jvp(counted(reconstruct_sum), (np.eye(3),), (np.ones((3, 3)),))  # no reverse pass
  assert len(runs) == 3
  dfdx.grad(counted(reconstruct_sum))(np.eye(3))
  assert len(runs) == 5


def test_a_basis_dependent_function_at_a_tie_stays_finite():
  # The first eigenvector of I is any unit vector: no derivative exists; the answer is finite.
  def f(a):
    _, v = dnp.linalg.eigh(a)
    return dnp.sum(v[:, 0] * np.arange(1.0, 4.0))
  assert np.isfinite(dfdx.grad(f)(np.eye(3))).all()


def test_split_and_zero_absorbing_reruns_together():
  # A tie (split pass) and a where-guarded log at 0 (zero-absorbing pass) in one function.
  def f(a, x):
    return reconstruct_sum(a) + dnp.where(x > 0, dnp.log(x), 0.0)
  ga, gx = dfdx.grad(f, argnums=(0, 1))(np.eye(3), 0.0)
  np.testing.assert_allclose(ga, _lower_read(np.eye(3)), atol=1e-12)
  assert gx == 0.0


def test_jit_of_a_gradient_at_ties_is_exact():
  # the compiled reverse pass notes the tie; the call is then computed again without jit
  g = dfdx.jit(dfdx.grad(reconstruct_sum))
  for _ in range(2):
    np.testing.assert_allclose(g(np.eye(3)), _lower_read(np.eye(3)), atol=1e-12)
  b = np.random.default_rng(11).normal(size=(3, 3))
  np.testing.assert_allclose(g(b + b.T), _lower_read(b), atol=1e-12)
  h = dfdx.jit(lambda a, k: dfdx.grad(reconstruct_sum)(a) * k, static_argnums=1)
  np.testing.assert_allclose(h(np.eye(3), 3), 3 * _lower_read(np.eye(3)), atol=1e-12)
  # the exported source runs with NumPy alone, dividing by the gaps as the first pass does
  namespace = {}
  exec(dfdx.export.to_source(dfdx.grad(reconstruct_sum), b + b.T), namespace)
  fn = [v for k, v in namespace.items() if callable(v) and k.startswith("grad")][0]
  np.testing.assert_allclose(fn(b + b.T), _lower_read(b), atol=1e-12)


def test_forward_mode_and_jit_inside_a_derivative_at_ties_stay_finite():
  a = np.eye(3)
  t = np.arange(9.0).reshape(3, 3)
  _, tangent = dfdx.jvp(reconstruct_sum, (a,), (t,))
  assert np.isfinite(tangent)
  assert np.isfinite(dfdx.grad(dfdx.jit(reconstruct_sum))(a)).all()
  assert np.isfinite(dfdx.hessian(reconstruct_sum)(a)).all()


def _svd_reconstruction(c):
  def f(a):
    u, s, vh = dnp.linalg.svd(a, full_matrices=False)
    return dnp.sum(((u * s[..., None, :]) @ vh) * c)
  return f


@pytest.mark.parametrize("s, m, n", [([2.0, 2.0, 1.0], 3, 3), ([1.0, 1.0, 1.0], 3, 3),
                                     ([1.5, 0.0, 0.0], 4, 3), ([1.5, 0.0, 0.0], 3, 5),
                                     ([0.0, 0.0], 2, 2), ([3.0, 3.0], 4, 2)],
                         ids=["double", "orthogonal", "tall-rank-1", "wide-rank-1", "zero",
                              "tall-double"])
def test_svd_basis_independent_gradient_is_exact_at_ties(s, m, n):
  # <C, U diag(s) Vh> is <C, A> whatever the singular vectors: its gradient is C.
  a = _with_singular_values(s, m, n)
  c = np.random.default_rng(7).normal(size=(m, n))
  np.testing.assert_allclose(dfdx.grad(_svd_reconstruction(c))(a), c, atol=1e-12)


@pytest.mark.parametrize("s, m, n", [([2.0, 2.0, 1.0], 3, 3), ([1.5, 1.5, 0.0], 4, 3),
                                     ([1.0, 1.0], 2, 3)])
def test_svd_smooth_function_at_ties_matches_its_closed_form(s, m, n):
  # <C, U diag(s^3) Vh> = <C, A A^T A>: gradient C A^T A + A C^T A + A A^T C.
  a = _with_singular_values(s, m, n, seed=3)
  c = np.random.default_rng(8).normal(size=(m, n))

  def f(a):
    u, s, vh = dnp.linalg.svd(a, full_matrices=False)
    return dnp.sum(((u * s ** 3) @ vh) * c)
  expected = c @ a.T @ a + a @ c.T @ a + a @ a.T @ c
  np.testing.assert_allclose(dfdx.grad(f)(a), expected, atol=1e-11)
  _, vjp_fn = dfdx.vjp(f, a)
  np.testing.assert_allclose(vjp_fn(1.0)[0], expected, atol=1e-11)


def test_svd_ties_in_a_stack_and_complex_matrices():
  rng = np.random.default_rng(9)
  a = np.stack([_with_singular_values([1.0, 1.0, 0.5], 3, 3), rng.normal(size=(3, 3))])
  c = rng.normal(size=(2, 3, 3))
  np.testing.assert_allclose(dfdx.grad(_svd_reconstruction(c))(a), c, atol=1e-12)
  # complex: <C, A> for real-valued Re sum(conj(C) * U S Vh) has gradient C (df/dx + i df/dy)
  z = np.eye(3, dtype=complex) * (1 + 1j) / np.sqrt(2)
  cz = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))

  def f(z):
    u, s, vh = dnp.linalg.svd(z, full_matrices=False)
    return dnp.real(dnp.sum(dnp.conj(cz) * ((u * s) @ vh)))
  np.testing.assert_allclose(dfdx.grad(f)(z), cz, atol=1e-12)


def test_vmap_of_grad_at_ties():
  rng = np.random.default_rng(10)
  b = rng.normal(size=(3, 3))
  a = np.stack([np.eye(3), b + b.T, _with_eigenvalues([2, 2, 5])])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(reconstruct_sum))(a), _lower_read(a),
                             atol=1e-12)
  c = rng.normal(size=(3, 3))
  s = np.stack([_with_singular_values([1.0, 1.0, 0.0], 3, 3), rng.normal(size=(3, 3))])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(_svd_reconstruction(c)))(s),
                             np.broadcast_to(c, s.shape), atol=1e-12)
  # batch axis last
  np.testing.assert_allclose(
      dfdx.vmap(dfdx.grad(reconstruct_sum), in_axes=2, out_axes=2)(np.moveaxis(a, 0, 2)),
      np.moveaxis(_lower_read(a), 0, 2), atol=1e-12)
