"""dfdx.export.to_sympy: the formulas evaluate to dfdx's own values (casts, complex arguments,
real cube roots, indexing with constants, comparisons used as numbers, max/min, special
functions, small dense linear algebra), and primitives with no formula are refused with an
error that names them and the line that made them."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
import dfdx.scipy.special as dss

sp = pytest.importorskip("sympy")


def _symbols(f, *args):
  """The symbols to_sympy gives the arguments of `f` (a leaf per argument), with their values:
  the parameter name, `name_i` for an array entry; complex arguments get plain symbols."""
  import inspect
  names = list(inspect.signature(f).parameters)
  subs = {}
  for name, a in zip(names, args):
    real = {} if np.iscomplexobj(a) else {"real": True}
    if np.ndim(a) == 0:
      subs[sp.Symbol(name, **real)] = a
    else:
      for i, v in enumerate(np.ravel(a)):
        subs[sp.Symbol(f"{name}_{i}", **real)] = v
  return subs


def _values(expr, subs):
  """`expr` (an expression or sympy.Array) at `subs`, as a complex NumPy array."""
  entries = expr if isinstance(expr, sp.NDimArray) else sp.Array([expr])
  shape = expr.shape if isinstance(expr, sp.NDimArray) else ()
  return np.array([complex(sp.N(e.subs(subs), 30)) for e in sp.flatten(entries)]).reshape(shape)


def assert_formula_agrees(f, *args, rtol=1e-10):
  """to_sympy(f, *args) evaluated at args gives f(*args) (each output). (Unsimplified:
  SymPy's simplify takes minutes on a log-sum-exp's Piecewise maxima.)"""
  expr = dfdx.export.to_sympy(f, *args, simplify=False)
  want = f(*args)
  exprs, wants = (expr, want) if isinstance(want, tuple) else ((expr,), (want,))
  subs = _symbols(f, *args)
  for e, w in zip(exprs, wants):
    assert e.free_symbols <= set(subs), (e, subs)
    got = _values(e, subs)
    np.testing.assert_allclose(got, np.asarray(w, dtype=complex), rtol=rtol, atol=1e-12)


X = np.array([0.65, -1.3, 2.6])


@pytest.mark.parametrize("f", [
    lambda x: dnp.sum(x.astype(np.int64)) * 1.0,
    lambda x: x.astype(np.int32) * 2.0,
    lambda x: x.astype(bool) * 3.0,
    lambda x: (x * 60).astype(np.int64).astype(np.int8) * 1.0,  # wraps around
    lambda x: dnp.trunc(x) + dnp.floor(x) * 10 + dnp.ceil(x) * 100,
    lambda x: (x.astype(np.complex128) * 1j).astype(np.float64) + x,  # drops the imaginary part
], ids=["int64", "int32", "bool", "int8", "trunc/floor/ceil", "complex->float"])
def test_casts_round_toward_zero_as_numpy_does(f):
  for x in (X, np.array([-0.5, 0.0, 3.0])):
    assert_formula_agrees(f, x)


def test_complex_arguments_get_complex_symbols():
  z0 = np.complex128(1 + 2j)
  for f in (lambda z: z * dnp.conj(z), lambda z: dnp.real(z) + 2 * dnp.imag(z),
            lambda z: dnp.abs(z), lambda z: dnp.sign(z) * dnp.exp(z)):
    assert_formula_agrees(f, z0)
  assert dfdx.export.to_sympy(lambda z: z * dnp.conj(z), z0) != sp.Symbol("z") ** 2
  # (real arguments stay real symbols, also next to a complex one)
  e = dfdx.export.to_sympy(lambda x, z: x * z, 2.0, z0)
  assert e.free_symbols == {sp.Symbol("x", real=True), sp.Symbol("z")}


def test_cbrt_is_the_real_cube_root():
  for x in (-8.0, -0.3, 2.0):
    for f in (dnp.cbrt, dfdx.grad(dnp.cbrt), dfdx.grad(dfdx.grad(dnp.cbrt))):
      got = _values(dfdx.export.to_sympy(f, x), {sp.Symbol("x", real=True): x})
      np.testing.assert_allclose(got, f(x), rtol=1e-12)


def test_scalars_stored_into_arrays():
  xs = np.array([0.5, -1.0, 2.0])
  assert_formula_agrees(lambda w, xs: dfdx.scan(lambda h, x: (dnp.tanh(w * h + x), h), 0.0,
                                                xs), 0.3, xs)
  assert_formula_agrees(lambda x: dnp.at(x)[1].set(x[0] * 5), xs)
  assert_formula_agrees(lambda w: dfdx.scan(lambda h, x: (h * w + x, h * 1.0), w,
                                            np.arange(3.0))[1], 0.7)


def test_integer_and_boolean_constants_index():
  for f in (lambda x: x[np.array([0, 2])],
            lambda x: dnp.at(x)[np.array([0, 0])].add(x[2]),
            lambda x: dnp.take(x, np.array([2, 1])),
            lambda x: x[np.array([True, False, True])],
            lambda x: dnp.where(np.array([True, False, True]), x, -x),
            lambda x: x[np.arange(3) % 2 == 0] * np.array([1, 2])):
    assert_formula_agrees(f, X)


def test_indexing_with_computed_positions_is_refused():
  with pytest.raises(NotImplementedError,
                     match=r"the primitive `gather` \(from .*test_sympy_export.py:\d+.*\) has no "
                           r"SymPy formula; it indexes with positions computed from the"):
    dfdx.export.to_sympy(lambda x: dnp.take(x, (x * 0).astype(np.int64)), X)


M = np.array([[1.0, 2.0], [3.0, 4.5]])


@pytest.mark.parametrize("f, x", [
    pytest.param(f, x, id=name) for name, f, x in [
        ("max", dnp.max, X), ("min", dnp.min, X),
        ("max axis", lambda x: dnp.max(x.reshape(3, 1) * x, axis=0), X),
        ("min where", lambda x: dnp.min(x, where=x > 0, initial=10.0), X),
        ("grad max", dfdx.grad(dnp.max), X), ("logsumexp", dss.logsumexp, X),
        ("softmax", dss.softmax, X), ("count", lambda x: dnp.sum(x > 0), X),
        ("mask times x", lambda x: (x > 0) * x, X),
        ("and", lambda x: dnp.logical_and(x > 0, x < 1) * 2.0, X),
        ("maximum nan", lambda x: dnp.maximum(x, np.nan), 1.0),
        ("fmax nan", lambda x: dnp.fmax(x, np.nan), 1.0),
        ("isnan", lambda x: dnp.where(dnp.isnan(x), 0.0, x), 0.3)]])
def test_max_min_and_comparisons_used_as_numbers(f, x):
  assert_formula_agrees(f, x)


def test_rounding_remainders_and_choices():
  for f in (lambda x: dnp.fmod(x, 0.7), lambda x: dnp.remainder(x, 0.7), lambda x: x // 0.7,
            lambda x: dnp.sign(x) * dnp.abs(x), lambda x: dnp.where(x > 0, x, -x),
            lambda x: dnp.maximum(x, 0.3) + dnp.minimum(x, 0.3),
            dfdx.grad(lambda x: dnp.sum(dnp.maximum(x, 0.3)))):
    assert_formula_agrees(f, X)


@pytest.mark.parametrize("f", [
    pytest.param(f, id=name) for name, f in [
        ("det", dnp.linalg.det), ("grad det", dfdx.grad(dnp.linalg.det)),
        ("inv", dnp.linalg.inv), ("solve", lambda a: dnp.linalg.solve(a, np.ones(2))),
        ("slogdet", lambda a: tuple(dnp.linalg.slogdet(a))),
        ("batched solve", lambda a: dnp.linalg.solve(dnp.stack([a, a.T]), np.ones((2, 2, 1))))]])
def test_small_dense_linear_algebra(f):
  assert_formula_agrees(f, M)


@pytest.mark.parametrize("name, args", [
    ("erf", (0.3,)), ("gammaln", (-0.5,)), ("erfc", (0.3,)), ("erfinv", (0.3,)),
    ("erfcinv", (0.3,)),
    ("erfcx", (0.3,)), ("ndtr", (0.3,)), ("log_ndtr", (-1.5,)), ("ndtri", (0.3,)),
    ("ndtri_exp", (-0.5,)), ("gamma", (-0.5,)), ("gammaln", (2.5,)), ("rgamma", (2.5,)),
    ("digamma", (2.5,)), ("polygamma", (2, 0.7)), ("beta", (1.5, 0.5)),
    ("betaln", (1.5, 0.5)), ("gammainc", (1.5, 0.5)), ("gammaincc", (1.5, 0.5)),
    ("betainc", (1.5, 0.5, 0.3)), ("exp1", (0.7,)), ("expi", (0.7,)), ("zeta", (2.5, 1.5)),
    ("binom", (5.5, 2.0)), ("j0", (0.7,)), ("j1", (0.7,)), ("y0", (0.7,)), ("y1", (0.7,)),
    ("i0", (0.7,)), ("i1", (0.7,)), ("i0e", (-0.7,)), ("i1e", (-0.7,)), ("k0", (0.7,)),
    ("k1", (0.7,)), ("k0e", (0.7,)), ("k1e", (0.7,)), ("jv", (1.5, 0.7)), ("yv", (1.5, 0.7)),
    ("yn", (2, 0.7)), ("iv", (1.5, 0.7)), ("ive", (1.5, 0.7)), ("kv", (1.5, 0.7)),
    ("kve", (1.5, 0.7))])
def test_special_functions(name, args):
  fun = getattr(dss, name)
  arity = len(args)
  # (the values as the arguments' symbols, so that the formula is of all of them)
  f = [lambda a: fun(a), lambda a, b: fun(a, b), lambda a, b, c: fun(a, b, c)][arity - 1]
  args = tuple(float(a) for a in args)
  if name in ("polygamma", "yn"):  # (an integer order: a constant, not a symbol)
    n, args = int(args[0]), args[1:]
    f = lambda a: fun(n, a)  # noqa: E731
  assert_formula_agrees(f, *args, rtol=1e-9)


@pytest.mark.parametrize("f, x, name", [
    (dnp.sort, X, "sort"), (dnp.argmax, X, "argmax"),
    (lambda x: dnp.round(x * 1.3), X, "round"), (lambda x: dnp.rint(x), X, "round"),
    (lambda a: dnp.linalg.cholesky(a @ a.T), M, "cholesky"),
    (lambda a: dnp.linalg.svd(a)[1], M, "svd"),
    (lambda x: dss.stdtr(3.0, x), 0.3, "stdtr"),
    (lambda x: dnp.signbit(x), X, "signbit"),
])
def test_primitives_with_no_formula_are_refused_clearly(f, x, name):
  with pytest.raises(NotImplementedError,
                     match=rf"^to_sympy: the primitive `{name}` \(from .*test_sympy_export.py:"
                           rf"\d+.*\) has no SymPy formula; .*to_source"):
    dfdx.export.to_sympy(f, x)


def test_static_arguments_are_fixed_in_the_formulas():
  sp = pytest.importorskip("sympy")
  x = sp.Symbol("x", real=True)
  e = dfdx.export.to_sympy(lambda x, n: dnp.sum(dnp.ones(n) * x ** 2), 2.0, 3, static_argnums=1)
  assert sp.simplify(e - 3 * x ** 2) == 0
