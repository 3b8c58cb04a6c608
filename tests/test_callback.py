"""pure_callback (NumPy code called from traced functions: eager, jit, vmap per example and
vectorized, custom derivatives around it, the errors) and eval_shape."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx import ShapeDtypeStruct as S
from dfdx.testing import check_grads
from tests.checks import assert_same_array

scipy_special = pytest.importorskip("scipy.special")
X = np.array([0.5, 2.5, 5.0])


def counted(fn, calls):
  def callback(*args, **kwargs):
    calls.append([np.shape(a) for a in args])
    return fn(*args, **kwargs)
  callback.__name__ = fn.__name__
  return callback


def test_values_eager_jit_and_vmap():
  calls = []
  cb = counted(scipy_special.gammaln, calls)
  f = lambda x: dfdx.pure_callback(cb, S(x.shape, x.dtype), x) * 2  # noqa: E731
  expected = 2 * scipy_special.gammaln(X)
  assert_same_array(f(X), expected)
  assert_same_array(dfdx.jit(f)(X), expected)
  xs = np.stack([X, X + 1, X + 2])
  calls.clear()
  assert_same_array(dfdx.vmap(f)(xs), 2 * scipy_special.gammaln(xs))
  assert calls == [[(3,)]] * 3  # (one call per example)
  calls.clear()
  assert_same_array(dfdx.jit(dfdx.vmap(f))(xs), 2 * scipy_special.gammaln(xs))
  assert calls == [[(3,)]] * 3


def test_vectorized_calls_once_per_batch():
  calls = []
  cb = counted(lambda x, y: x * y, calls)
  f = lambda x, y: dfdx.pure_callback(cb, S(x.shape, x.dtype), x, y,  # noqa: E731
                                      vectorized=True)
  xs, y = np.arange(6.0).reshape(2, 3), np.array([1.0, 10.0, 100.0])
  for run in (lambda g: g, dfdx.jit):
    calls.clear()
    assert_same_array(run(dfdx.vmap(f, in_axes=(0, None)))(xs, y), xs * y)
    assert calls == [[(2, 3), (2, 3)]]  # (y broadcast along the batch)
  # nested vmaps: the inner batch is one call per example of the outer one
  calls.clear()
  xss = np.arange(12.0).reshape(2, 2, 3)
  assert_same_array(dfdx.vmap(dfdx.vmap(f, in_axes=(0, None)), in_axes=(0, None))(xss, y),
                    xss * y)
  assert calls == [[(2, 3), (2, 3)]] * 2


def test_pytrees_keywords_static_arguments_and_casts():
  def cb(d, mode, scale=1.0):
    assert mode == "sum" and isinstance(d["a"], np.ndarray)
    return {"total": np.sum(d["a"]) * scale, "count": d["a"].size}
  shapes = {"total": S((), np.float32), "count": S((), np.int64)}
  f = lambda a: dfdx.pure_callback(cb, shapes, {"a": a}, "sum", scale=2.0)  # noqa: E731
  for run in (lambda g: g, dfdx.jit):
    out = run(f)(X)
    assert out["total"].dtype == np.float32 and out["total"] == np.float32(16.0)
    assert out["count"] == 3


def test_errors_name_the_callback():
  x = X
  with pytest.raises(ValueError, match=r"pure_callback\(head\): result 0 has shape \(2,\), "
                                       r"but \(3,\) was declared"):
    def head(v):
      return v[:2]
    dfdx.jit(lambda x: dfdx.pure_callback(head, S(x.shape, x.dtype), x))(x)
  with pytest.raises(TypeError, match="result 0 has dtype complex128, but float64 was declared"):
    dfdx.jit(lambda x: dfdx.pure_callback(lambda v: v * 1j, S(x.shape, x.dtype), x))(x)
  with pytest.raises(ValueError, match="the callback returned .* but result_shape_dtypes"):
    dfdx.jit(lambda x: dfdx.pure_callback(lambda v: (v, v), S(x.shape, x.dtype), x))(x)
  with pytest.raises(TypeError, match="result_shape_dtypes must be a pytree of objects with "
                                      ".shape and .dtype"):
    dfdx.pure_callback(np.sin, (3,), x)
  with pytest.raises(TypeError, match="expected a function to call, got int"):
    dfdx.pure_callback(3, S((), float), x)
  with pytest.raises(ValueError, match="vectorized=True: it gets every array argument"):
    dfdx.vmap(lambda x: dfdx.pure_callback(lambda v: v[0], S(x.shape, x.dtype), x,
                                           vectorized=True))(np.ones((2, 3)))


def test_no_derivative_unless_one_is_given():
  lg = lambda x: dfdx.pure_callback(scipy_special.gammaln, S(x.shape, x.dtype), x)  # noqa: E731
  with pytest.raises(dfdx.MissingRuleError, match=r"pure_callback\(gammaln\) has no derivative"
                                                  ".*custom_jvp"):
    dfdx.grad(lambda x: dnp.sum(lg(x)))(X)
  with pytest.raises(dfdx.MissingRuleError, match="has no derivative"):
    dfdx.jit(dfdx.grad(lambda x: dnp.sum(lg(x))))(X)
  # a value that does not depend on the differentiated input needs none
  g = dfdx.grad(lambda x: dnp.sum(lg(dfdx.stop_gradient(x)) * x))(X)
  assert_same_array(g, scipy_special.gammaln(X))

  @dfdx.custom_jvp
  def log_gamma(x):
    return lg(x)

  @log_gamma.defjvp
  def _(primals, tangents):
    (x,), (t,) = primals, tangents
    psi = dfdx.pure_callback(scipy_special.digamma, S(x.shape, x.dtype), x)
    return log_gamma(x), psi * t
  loss = lambda x: dnp.sum(log_gamma(x) ** 2)  # noqa: E731
  expected = 2 * scipy_special.gammaln(X) * scipy_special.digamma(X)
  np.testing.assert_allclose(dfdx.grad(loss)(X), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(loss))(X), expected, rtol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(loss))(np.stack([X, X])),
                             np.stack([expected, expected]), rtol=1e-14)
  check_grads(loss, (X,), order=1)


def test_eval_shape():
  calls = []
  cb = counted(np.cos, calls)

  def f(a, b, mode):
    assert mode == "matmul"
    c = dfdx.pure_callback(cb, S(b.shape, b.dtype), b)
    return {"p": a @ c, "s": dnp.sum(a).astype(np.float32), "n": 2.0}
  out = dfdx.eval_shape(f, S((3, 4), np.float32), np.ones((4, 5)), "matmul")
  assert out == {"p": S((3, 5), np.float64), "s": S((), np.float32),
                 "n": S((), np.float64, weak_type=True)}
  assert calls == []  # (nothing computed)
  assert dfdx.eval_shape(lambda x: x[::2] * 1.5, S((7,), np.float32)) == S((4,), np.float32)
  assert repr(S((2,), np.int32)) == "ShapeDtypeStruct(shape=(2,), dtype=int32)"


def test_results_are_fresh_arrays_that_compiled_code_may_write_into():
  # a callback that returns its argument, a value it keeps, or one array for two results:
  # compiled code writes into the arrays that primitives return, and must not write into these
  kept = np.array([5.0, 6.0, 7.0])

  def f(x):
    same = dfdx.pure_callback(lambda v: v, S(x.shape, x.dtype), x)
    table = dfdx.pure_callback(lambda v: kept, S(x.shape, x.dtype), x)
    a, b = dfdx.pure_callback(lambda v: (v * 1,) * 2, (S(x.shape, x.dtype),) * 2, x)
    return (dnp.sin(same * 2.0) + 1.0) * 3.0, dnp.exp(table * 2.0) * x, (a + 1.0) * 2.0, b
  x = X.copy()
  for _ in range(2):
    out = dfdx.jit(f)(x)
    assert_same_array(x, X)
    assert_same_array(kept, np.array([5.0, 6.0, 7.0]))
    assert_same_array(out[0], (np.sin(X * 2.0) + 1.0) * 3.0)
    assert_same_array(out[1], np.exp(kept * 2.0) * X)
    assert_same_array(out[2], (X + 1.0) * 2.0)
    assert_same_array(out[3], X)


def test_arguments_are_read_only():
  # a callback writing into its argument would change a value the program reads again (or
  # the caller's array): it raises, with a note naming the callback
  def bump(v):
    v += 100.0
    return v

  def f(x):
    y = dnp.sin(x)
    return y, dfdx.pure_callback(bump, S(x.shape, x.dtype), y)
  for run in (lambda g: g, dfdx.jit, dfdx.vmap):
    x = X.copy()
    with pytest.raises(ValueError, match="read-only") as info:
      run(f)(x)
    notes = getattr(info.value, "__notes__", None)  # (Python 3.11 on)
    assert notes is None or "pure_callback(bump)" in notes[0]
    assert_same_array(x, X)
  with pytest.raises(ValueError, match="read-only"):
    dfdx.pure_callback(bump, S(X.shape, X.dtype), x)
  assert_same_array(x, X)


def test_integer_results_that_do_not_fit_the_declared_dtype_raise():
  for run in (lambda g: g, dfdx.jit):
    with pytest.raises(OverflowError, match=r"pure_callback\(big\): result 0 has dtype int64 "
                                            "and values out of the bounds of the declared int32"):
      def big(v):
        return np.int64(2 ** 40) + v
      run(lambda x: dfdx.pure_callback(big, S((), np.int32), x))(np.int64(1))
    out = run(lambda x: dfdx.pure_callback(lambda v: v + 1, S((), np.int32), x))(np.int64(1))
    assert out == 2 and out.dtype == np.int32


def test_scalar_results_and_eval_shape_of_non_array_outputs_as_jit_gives_them():
  f = lambda x: dfdx.pure_callback(lambda v: (v * 2, np.int32(1)),  # noqa: E731
                                   (S((), np.float32), S((), np.int32)), x)
  for got, expected in zip(f(np.float32(3.0)), dfdx.jit(f)(np.float32(3.0))):
    assert type(got) is type(expected) and got == expected
  g = lambda x: (x * 2, "label", np.sin)  # noqa: E731
  assert dfdx.jit(g)(X)[1:] == ("label", np.sin)
  assert dfdx.eval_shape(g, X) == (S((3,), np.float64), "label", np.sin)


def test_exports_refuse_code_of_this_process():
  f = lambda x: dfdx.pure_callback(scipy_special.gammaln, S(x.shape, x.dtype), x) * 2  # noqa: E731
  with pytest.raises(TypeError, match="to_source: the function calls pure_callback, which calls "
                                      "a Python function of this process"):
    dfdx.export.to_source(f, X)
  with pytest.raises(TypeError, match="to_source: the function calls minimize"):
    import dfdx.scipy.optimize as dso
    dfdx.export.to_source(lambda c: dso.minimize(lambda x, c: dnp.sum((x - c) ** 2),
                                                 np.zeros(3), args=(c,)).x, X)
  pytest.importorskip("sympy")
  with pytest.raises(NotImplementedError, match=r"pure_callback\(gammaln\) calls code dfdx "
                                                "does not trace"):
    dfdx.export.to_sympy(f, X)
