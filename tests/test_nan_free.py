"""Derivatives that do not turn into NaN (issue 5): a branch that `where` does not select,
a zero derivative factor meeting an infinite one, subgradients at kinks and ties, and the
zero-absorbing primitives that make them exact."""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.special as dss
from dfdx._src import ad, core
from dfdx._src.ops import elementwise as ew
from dfdx.testing import check_grads

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _safe_log(x):
  return dnp.where(x > 0, dnp.log(x), 0.0)


def _sinc(x):
  return dnp.where(x != 0, dnp.sin(x) / x, 1.0)


def _sqrt_square(x):
  return dnp.sqrt(x * x)


def _arccos_clip(x):
  return dnp.arccos(dnp.clip(x, -1, 1))


def _where_exp(x):
  return dnp.where(x < 100, dnp.exp(x), 0.0)


def _where_sqrt(x):
  return dnp.where(x > 0, dnp.sqrt(x), 0.0)


# function, point, exact first derivative there
CASES = [
    (_safe_log, 0.0, 0.0), (_safe_log, 2.0, 0.5), (_safe_log, -1.0, 0.0),
    (_sinc, 0.0, 0.0), (_sinc, 1.0, np.cos(1.0) - np.sin(1.0)),
    (_sqrt_square, 0.0, 0.0), (_sqrt_square, -3.0, -1.0),
    (_arccos_clip, 2.0, 0.0), (_arccos_clip, -2.0, 0.0), (_arccos_clip, 0.5, -1 / np.sqrt(0.75)),
    (_where_exp, 1000.0, 0.0), (_where_exp, 1.0, np.e),
    (_where_sqrt, -1.0, 0.0), (_where_sqrt, 4.0, 0.25),
]
IDS = [f"{f.__name__}@{x}" for f, x, _ in CASES]


@pytest.mark.parametrize("f,x,want", CASES, ids=IDS)
def test_reverse_mode(f, x, want):
  np.testing.assert_allclose(dfdx.grad(f)(x), want, rtol=1e-12)


@pytest.mark.parametrize("f,x,want", CASES, ids=IDS)
def test_forward_mode(f, x, want):
  np.testing.assert_allclose(dfdx.jvp(f, (x,), (1.0,))[1], want, rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacfwd(f)(x), want, rtol=1e-12)


@pytest.mark.parametrize("f,x,want", CASES, ids=IDS)
def test_jit_vmap_vjp_linearize(f, x, want):
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(x), want, rtol=1e-12)
  np.testing.assert_allclose(dfdx.grad(dfdx.jit(f))(x), want, rtol=1e-12)
  xs = np.array([x, x])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(xs), [want, want], rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.grad(f)))(xs), [want, want], rtol=1e-12)
  np.testing.assert_allclose(dfdx.vjp(f, x)[1](1.0)[0], want, rtol=1e-12)
  np.testing.assert_allclose(dfdx.linearize(f, x)[1](1.0), want, rtol=1e-12)


def test_second_derivatives_stay_finite():
  assert dfdx.hessian(_safe_log)(0.0) == 0.0
  assert dfdx.hessian(_sinc)(0.0) == 0.0  # the branch is constant there
  np.testing.assert_allclose(dfdx.hessian(_safe_log)(2.0), -0.25)
  assert dfdx.hessian(_arccos_clip)(2.0) == 0.0
  assert dfdx.hessian(_where_exp)(1000.0) == 0.0


def test_arrays_mix_selected_and_unselected_entries():
  x = np.array([-1.0, 0.0, 0.5, 2.0])
  g = dfdx.grad(lambda x: dnp.sum(_safe_log(x)))(x)
  np.testing.assert_allclose(g, [0.0, 0.0, 2.0, 0.5])
  g = dfdx.grad(lambda x: dnp.sum(_sinc(x)))(x)
  want = np.where(x != 0, (x * np.cos(x) - np.sin(x)) / np.where(x != 0, x, 1) ** 2, 0.0)
  np.testing.assert_allclose(g, want, rtol=1e-12)


def test_norms_at_zero_and_at_equal_points():
  x = np.array([1.0, -2.0, 3.0])
  np.testing.assert_array_equal(dfdx.grad(dnp.linalg.norm)(np.zeros(3)), np.zeros(3))
  np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.linalg.norm(x - x.copy()))(x), 0 * x)
  y = x.copy()
  np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.linalg.norm(x - y))(x), 0 * x)
  np.testing.assert_array_equal(
      dfdx.grad(lambda x: dnp.sqrt(dnp.sum((x - y) ** 2)))(x), 0 * x)


def test_ties_and_kinks_follow_one_convention():
  # abs at 0: 0 (the midpoint of the subdifferential); maximum/minimum/clip ties: one half
  # to each side; sort ties: each value takes the tangent of one entry, in order.
  assert dfdx.grad(dnp.abs)(0.0) == 0.0
  assert dfdx.grad(lambda x: dnp.maximum(x, 1.0))(1.0) == 0.5
  assert dfdx.grad(lambda x: dnp.minimum(x, 1.0))(1.0) == 0.5
  assert dfdx.grad(lambda x: dnp.clip(x, 1.0, 2.0))(1.0) == 0.5
  assert dfdx.grad(lambda x: dnp.clip(x, 1.0, 2.0))(2.0) == 0.5
  assert dfdx.grad(lambda x: dnp.clip(x, 1.0, 2.0))(3.0) == 0.0
  np.testing.assert_array_equal(dfdx.jacobian(dnp.sort)(np.array([1.0, 1.0])), np.eye(2))


def test_softmax_and_logsumexp_stay_finite():
  x = np.array([-np.inf, 0.0, 1.0])
  g = dfdx.grad(dss.logsumexp)(x)
  np.testing.assert_allclose(g, [0.0, *np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()])
  big = np.array([1000.0, -1000.0, 0.0])
  jac = dfdx.jacobian(dss.softmax)(big)
  assert np.all(np.isfinite(jac))
  np.testing.assert_allclose(jac, np.zeros((3, 3)), atol=1e-300)


def test_linear_algebra_at_degenerate_points():
  a = np.eye(3)
  # Near a repeated eigenvalue the basis-independent sum((V * w) @ V.T) = sum(A) has the
  # exact gradient (eigh reads the lower triangle); at the repeated value itself it stays
  # finite (the part inside the eigenspace is dropped: see dfdx.numpy.linalg.eigh).
  f = lambda a: dnp.sum((lambda w, v: (v * w) @ v.T)(*dnp.linalg.eigh(a)))  # noqa: E731
  b = np.array([[0.0, 1.0, 2.0], [1.0, 0.5, -1.0], [2.0, -1.0, 0.3]])
  np.testing.assert_allclose(dfdx.grad(f)(a + 1e-6 * b),
                             np.tril(np.ones((3, 3))) + np.tril(np.ones((3, 3)), -1), rtol=1e-6)
  assert np.all(np.isfinite(dfdx.grad(f)(a)))
  np.testing.assert_allclose(dfdx.grad(lambda a: dnp.sum(dnp.linalg.eigvalsh(a) ** 2))(a),
                             2 * a)
  np.testing.assert_allclose(
      dfdx.grad(lambda a: dnp.sum(dnp.linalg.svd(a, full_matrices=False)[1]))(a), np.eye(3))
  ones = np.ones((3, 3))
  np.testing.assert_allclose(dfdx.grad(dnp.linalg.det)(ones), np.zeros((3, 3)), atol=1e-15)


def test_no_recomputation_when_nothing_is_nan():
  calls = []

  def f(x):
    calls.append(1)
    return dnp.sin(x)
  dfdx.grad(f)(1.0)
  assert len(calls) == 1
  calls.clear()
  # a NaN in the value alone (nothing differentiated) is not computed twice under vmap
  dfdx.vmap(f)(np.array([np.nan, 1.0]))
  assert len(calls) == 1


def test_recomputation_starts_from_the_variables_before_the_call():
  counter = dfdx.Variable(np.float64(0.0))

  def f(x):
    counter.value = counter.value + 1.0
    return _safe_log(x)
  assert dfdx.grad(f)(0.0) == 0.0
  assert counter.value == 1.0


def test_true_nans_stay_nan():
  # the input itself is invalid where the branch is selected: the derivative is NaN
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assert np.isnan(dfdx.grad(lambda x: dnp.log(x) * 0 + dnp.sqrt(x))(-1.0))


@pytest.mark.parametrize("x,y", [(0.0, 5.0), (3.0, 0.0), (0.0, np.inf), (np.inf, 0.0),
                                 (0.0, np.nan), (2.0, 3.0)])
def test_zmul_absorbs_zeros(x, y):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    got = ew.zmul(np.float64(x), np.float64(y))
  want = 0.0 if x == 0 or y == 0 else x * y
  assert got == want
  assert ew.zmul(np.array([x, 1.0]), np.array([y, 2.0]))[0] == want


@pytest.mark.parametrize("x,y", [(0.0, 0.0), (np.inf, np.inf), (0.0, np.nan), (3.0, 2.0),
                                 (1.0, 0.0)])
def test_zdiv_absorbs_zeros(x, y):
  got = ew.zdiv(np.float64(x), np.float64(y))
  want = 0.0 if x == 0 or np.isinf(y) else np.float64(x) / np.float64(y)
  assert got == want


def test_zdot_general_absorbs_zeros_term_by_term():
  # each term a_ik b_kj is 0 where either factor is 0 (0 * inf = 0 * NaN = 0), summed; a
  # non-finite factor meeting a nonzero one leaves the entry non-finite
  from dfdx._src.ops import contraction
  a = np.array([[1.0, np.inf, 0.0], [np.nan, 2.0, 3.0], [0.0, 0.0, -np.inf]])
  b = np.array([[0.0, 1.0], [0.0, 2.0], [np.nan, 0.0]])
  want = np.zeros((3, 2))
  for i in range(3):
    for j in range(2):
      terms = [0.0 if a[i, k] == 0 or b[k, j] == 0 else a[i, k] * b[k, j] for k in range(3)]
      want[i, j] = np.sum(terms)
  dims = (((1,), (0,)), ((), ()))
  got = contraction.zdot_general_p.bind(a, b, dimension_numbers=dims)
  np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
  np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])
  compiled = dfdx.jit(lambda a, b: contraction.zdot_general_p.bind(a, b,
                                                                   dimension_numbers=dims))
  np.testing.assert_array_equal(compiled(a, b), got)


def test_zero_absorbing_primitives_differentiate_like_mul_and_div():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
  check_grads(ew.zmul, (x, y), order=2)
  check_grads(ew.zdiv, (x, y), order=2)
  assert core.context.zero_absorbing is False


def test_rows_that_where_discards_do_not_poison_contractions():
  # A NaN (sqrt of a negative) or inf (log of 0) in a row that `where` discards after a
  # matmul, einsum, dot or tensordot: its cotangent is 0 there, and the zero-absorbing
  # contraction counts 0 * NaN and 0 * inf as 0. The exact derivatives: 1, and log 2.
  x = np.array([1.0, -1.0])
  keep = np.array([True, False])
  nan_row, inf_row = dnp.sqrt(x)[:, None] * np.ones((2, 2)), -dnp.log((x + 1) / 4)[:, None]
  cases = [
      (lambda v: dnp.where(keep, nan_row @ v, 0.0), 1.0),
      (lambda v: dnp.where(keep, dnp.einsum("i,j->i", dnp.sqrt(x), v), 0.0), 1.0),
      (lambda v: dnp.where(keep, dnp.dot(nan_row, v), 0.0), 1.0),
      (lambda v: dnp.where(keep, dnp.tensordot(nan_row, v, axes=1), 0.0), 1.0),
      (lambda v: dnp.where(keep, (inf_row * np.ones((2, 2))) @ v, 0.0), np.log(2.0))]
  for f, exact in cases:
    loss = lambda v, f=f: dnp.sum(f(v))  # noqa: E731
    v = np.ones(2)
    for g in (dfdx.grad(loss), dfdx.jit(dfdx.grad(loss)), dfdx.jacfwd(loss)):
      np.testing.assert_allclose(g(v), [exact, exact], rtol=1e-15)
    np.testing.assert_allclose(dfdx.vmap(dfdx.grad(loss))(np.ones((3, 2))), exact, rtol=1e-15)
    namespace = {}
    exec(dfdx.export.to_source(dfdx.grad(loss), v, name="exported"), namespace)
    np.testing.assert_allclose(namespace["exported"](v), [exact, exact], rtol=1e-15)
  # a row that is kept stays NaN: only zeros absorb
  kept = lambda v: dnp.sum(dnp.where(np.array([True, True]), nan_row @ v, 0.0))  # noqa: E731
  assert np.isnan(dfdx.grad(kept)(np.ones(2))).all()


def test_masked_attention_gradient_is_finite():
  # padded query rows are all -inf before the softmax (NaN after it), and the loss discards
  # them with where: every weight's gradient is finite, and equals that of the same
  # attention computed on the unpadded rows alone
  rng = np.random.default_rng(0)
  t, d = 4, 3
  x, wv, wq = rng.normal(size=(t, d)), rng.normal(size=(d, d)), rng.normal(size=(d, d))
  pad = np.array([True, True, True, False])

  def loss(wv, wq, rows):
    s = (x[rows] @ wq) @ (x[rows] @ wq).T
    mask = pad[rows][:, None] & pad[rows][None, :]
    a = dss.softmax(dnp.where(mask, s, -np.inf), axis=-1)
    return dnp.sum(dnp.where(pad[rows][:, None], a @ (x[rows] @ wv), 0.0) ** 2)
  full = dfdx.grad(loss, argnums=(0, 1))(wv, wq, np.arange(t))
  alone = dfdx.grad(loss, argnums=(0, 1))(wv, wq, np.arange(3))
  for a, b in zip(full, alone):
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_exported_source_computes_what_dfdx_computes():
  source = dfdx.export.to_source(dfdx.grad(_safe_log), 0.0, name="dlog")
  assert "_dlog_zero_absorbing" in source
  namespace = {}
  exec(source, namespace)
  assert namespace["dlog"](np.float64(0.0)) == 0.0
  assert namespace["dlog"](np.float64(2.0)) == 0.5
  # a plain program that needs helpers of its own (the slice's transpose pads)
  sliced = dfdx.grad(lambda x: dnp.sum(_safe_log(x[1:])))
  x = np.array([1.0, 0.0, 2.0])
  namespace = {}
  exec(dfdx.export.to_source(sliced, x, name="dsliced"), namespace)
  np.testing.assert_array_equal(namespace["dsliced"](x), sliced(x))
  # with nothing to absorb, one plain program
  assert "zero_absorbing" not in dfdx.export.to_source(dfdx.grad(dnp.sin), 1.0)


def test_reverse_passes_raise_no_numpy_warnings():
  # The forward pass warns as NumPy does (log(0)); the reverse pass, whose NaN is then removed
  # by the zero-absorbing rerun, does not add "invalid value" or "divide by zero" warnings.
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert dfdx.grad(lambda x: dnp.where(x > 0, dnp.log(x), 0.0))(0.0) == 0.0
    assert dfdx.grad(lambda x: dnp.sqrt(x * x))(0.0) == 0.0
    np.testing.assert_array_equal(dfdx.grad(dnp.linalg.norm)(np.zeros(3)), np.zeros(3))
    # (grad of a function of one array, jacrev and vjp: sqrt's reverse rule at 0)
    guarded = lambda x: dnp.where(x > 0, dnp.sqrt(dnp.abs(x)), 0.0)  # noqa: E731
    x = np.array([-1.0, 0.0, 4.0])
    np.testing.assert_array_equal(dfdx.grad(lambda x: dnp.sum(guarded(x)))(x), [0, 0, 0.25])
    np.testing.assert_array_equal(dfdx.jacrev(guarded)(x), np.diag([0, 0, 0.25]))
    np.testing.assert_array_equal(dfdx.vjp(guarded, x)[1](np.ones(3))[0], [0, 0, 0.25])
  messages = sorted({str(w.message) for w in caught})
  assert messages == ["divide by zero encountered in log"], messages
  assert np.geterr()["invalid"] == "warn"  # the reverse pass's quiet settings are undone


def test_jitted_reverse_passes_raise_no_numpy_warnings_either():
  # A compiled derivative runs the equations its reverse pass staged with the warnings off
  # (a `with np.errstate` block in the code), as the eager reverse pass runs: log(0)'s forward
  # warning stays, the reverse rules' division by zero and 0 * inf do not add any.
  guarded = lambda x: dnp.where(x > 0, dnp.sqrt(dnp.abs(x)), 0.0)  # noqa: E731
  x = np.array([-1.0, 0.0, 4.0])
  functions = [
      (dfdx.jit(dfdx.grad(lambda x: dnp.where(x > 0, dnp.log(x), 0.0))), 0.0, 0.0),
      (dfdx.jit(dfdx.grad(lambda x: dnp.sum(guarded(x)))), x, [0, 0, 0.25]),
      (dfdx.jit(dfdx.jacrev(guarded)), x, np.diag([0, 0, 0.25])),
      (dfdx.jit(dfdx.hessian(lambda x: dnp.sum(guarded(x) ** 3))), x,
       np.diag([0, 0, 0.375])),
  ]
  # (and eager forward-mode Jacobians, whose tangents are pushed through the linearization)
  functions += [(dfdx.jacfwd(guarded), x, np.diag([0, 0, 0.25])),
                (dfdx.hessian(lambda x: dnp.sum(guarded(x) ** 3)), x, np.diag([0, 0, 0.375])),
                (lambda x: dfdx.jacobian(guarded, sparse=True)(x).toarray(), x,
                 np.diag([0, 0, 0.25])),
                (lambda x: dfdx.linearize(guarded, x)[1](np.ones(3)), x, [0, 0, 0.25])]
  for fn, arg, expected in functions:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      np.testing.assert_allclose(fn(arg), expected, rtol=1e-12)  # (compiled at the first call)
      np.testing.assert_allclose(fn(arg), expected, rtol=1e-12)
    messages = sorted({str(w.message) for w in caught})
    assert messages in ([], ["divide by zero encountered in log"]), messages
  assert np.geterr()["invalid"] == "warn"
  # (exported source reads as plain NumPy code, without the blocks)
  source = dfdx.export.to_source(dfdx.grad(lambda x: dnp.sum(guarded(x))), x)
  assert "errstate" not in source.split("def _zero_absorbing")[0]
  # a jitted forward pass warns as NumPy does
  with pytest.warns(RuntimeWarning, match="divide by zero encountered in log"):
    dfdx.jit(dnp.log)(np.zeros(2))


@pytest.mark.parametrize("name,good,bad", [
    ("ndtri", 0.3, 1.5), ("erfinv", 0.3, 1.5), ("erfcinv", 0.3, 2.5), ("digamma", 0.7, 0.0),
    ("gamma", 0.7, -1.0), ("y0", 0.7, -1.0), ("k0", 0.7, -1.0), ("log_ndtr", 0.3, np.nan)])
def test_where_discards_special_functions_outside_their_domains(name, good, bad):
  # the derivative at a discarded point is NaN or infinite: its zero cotangent absorbs it
  f = getattr(dss, name)
  x = np.array([good, bad])
  keep = np.array([True, False])
  loss = lambda v: dnp.sum(dnp.where(keep, f(v), 0.0))  # noqa: E731
  want = [dfdx.grad(f)(good), 0.0]
  with np.errstate(all="ignore"):
    for g in (dfdx.grad(loss), dfdx.jit(dfdx.grad(loss)), dfdx.jacfwd(loss)):
      np.testing.assert_allclose(g(x), want, rtol=1e-14)
