"""dfdx.numpy.vectorize on traced arguments against numpy.vectorize: gufunc signatures with
broadcast loop dimensions, excluded arguments, otypes and size-0 loops (values and dtypes
under vmap, row by row, under jvp and under jit), derivatives, NumPy's errors, and the
decorator forms."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_numpy_elementwise import assert_same_tree, check_traced, check_untraced, sample


def R(*shape, seed=0):
  return sample(shape, (-2.0, 2.0), seed=seed)


A314, B54 = R(3, 1, 4, seed=1), R(5, 4, seed=2)
M234, V4, S23 = R(2, 3, 4, seed=3), R(4, seed=4), R(2, 3, seed=5)
EMPTY = np.ones((0, 4))


def pair(name, sig=None, **kw):
  """numpy.vectorize and dfdx.numpy.vectorize of the NumPy and dfdx versions of a function."""
  np_f, dnp_f = FUNS[name]
  if sig is not None:
    kw["signature"] = sig
  return np.vectorize(np_f, **kw), dnp.vectorize(dnp_f, **kw)


def _excl(np_mod):
  def f(x, coeffs, y, *, scale, shift=0.0):  # coeffs and scale excluded: a list and a callable
    return np_mod.sum(scale(np_mod.polyval(coeffs, x) * y)) + shift
  return f


FUNS = {
    "dot": (np.dot, dnp.dot),
    "matvec": (np.matmul, dnp.matmul),
    "powers": (lambda x: np.array([x, x ** 2, np.sin(x)]),
               lambda x: dnp.stack([x, x ** 2, dnp.sin(x)])),
    "sum_and_twice": (lambda x: (np.sum(x * x), 2 * np.tanh(x)),
                      lambda x: (dnp.sum(x * x), 2 * dnp.tanh(x))),
    "cumprod": (lambda x: np.cumsum(np.sin(x)) * x, lambda x: dnp.cumsum(dnp.sin(x)) * x),
    "mul": (lambda x, y: x * y + np.sin(x), lambda x, y: x * y + dnp.sin(x)),
    "excl": (_excl(np), _excl(dnp)),
    "sum": (np.sum, dnp.sum),
    "two": (lambda x: (x * 2, x ** 2), lambda x: (x * 2, x ** 2)),
}

# name, signature, arguments, vectorize's keywords, call's keywords
CASES = [
    ("dot", "(n),(n)->()", (A314, B54), {}, {}),
    ("matvec", "(m,n),(n)->(m)", (M234, V4), {}, {}),
    ("powers", "()->(k)", (S23,), {}, {}),
    ("sum_and_twice", "(n)->(),(n)", (A314,), {}, {}),
    ("cumprod", "(n)->(n)", (A314,), {}, {}),
    ("dot", "(n),(n)->()", (V4, B54), dict(otypes=[np.float32]), {}),
    ("sum_and_twice", "(n)->(),(n)", (B54,), dict(otypes="fd"), {}),
    ("mul", None, (A314, B54), {}, {}),
    ("mul", None, (S23, 1.5), dict(otypes=[np.float32]), {}),
    ("two", None, (S23,), dict(otypes="df"), {}),
    ("dot", "(n),(n)->()", (EMPTY, V4), dict(otypes=[np.float64]), {}),
    ("dot", "(n),(n)->()", (EMPTY, V4), {}, {}),
    ("sum_and_twice", "(n)->(),(n)", (np.ones((2, 0, 4)),), dict(otypes="dd"), {}),
    ("powers", "()->(k)", (np.ones((0, 2)),), dict(otypes="d"), {}),  # NumPy's error
    ("mul", None, (EMPTY, V4), dict(otypes="d"), {}),
    ("mul", None, (EMPTY, V4), {}, {}),
    ("mul", None, (S23,), {}, dict(y=R(3, seed=6))),  # keywords not excluded: broadcast
    ("excl", None, (S23, [0.5, -1.0, 2.0], R(3, seed=7)),
     dict(excluded={1, "scale"}), dict(scale=np.tanh, shift=R(2, 1, seed=8))),
    ("excl", "(),(n)->()", (V4, [0.5, 2.0], R(2, 4, 3, seed=9)),
     dict(excluded={1, "scale", "shift"}), dict(scale=np.tanh, shift=0.25)),
]


def _ids(case):
  name, sig, _, kw, call_kw = case
  return "-".join([name, sig or "elementwise"] + sorted(kw) + sorted(call_kw))


def _scale(kw, np_mod):  # the excluded callable, in the NumPy or the dfdx version
  return {k: (getattr(np_mod, v.__name__) if callable(v) else v) for k, v in kw.items()}


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_values(case):
  name, sig, args, kw, call_kw = case
  np_v, dnp_v = pair(name, sig, **kw)

  def np_fun(*a):
    return np_v(*a, **call_kw)

  def dnp_fun(*a):
    return dnp_v(*a, **_scale(call_kw, dnp))
  check_traced(np_fun, dnp_fun, *args)  # under vmap, row by row, and under jvp
  check_untraced(np_fun, dnp_fun, *args)
  try:
    expected = np_fun(*args)
  except ValueError:
    return
  arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]

  def jitted(*xs):
    full = list(args)
    for i, x in zip(arrays, xs):
      full[i] = x
    return dnp_fun(*full)
  assert_same_tree(dfdx.jit(jitted)(*[args[i] for i in arrays]), expected)


GRAD_CASES = [c for c in CASES[:5]] + [CASES[7], CASES[16]]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[_ids(c) for c in GRAD_CASES])
def test_grads(case):
  name, sig, args, kw, call_kw = case
  _, dnp_v = pair(name, sig, **kw)
  check_grads(lambda *a: dnp_v(*a, **call_kw), args, order=2, modes=("fwd", "rev"))


def test_grads_of_excluded_arguments():
  # the excluded argument is traced: it is passed whole to every call
  def f(x, w):
    return dnp.vectorize(lambda v, w: dnp.dot(w, v) * v[0], signature="(n)->()",
                         excluded={1})(x, w)
  x, w = R(3, 4, seed=10), R(4, seed=11)
  expected = np.vectorize(lambda v, w: np.dot(w, v) * v[0], signature="(n)->()",
                          excluded={1})(x, w)
  assert_same_tree(dfdx.jit(f)(x, w), expected)
  check_grads(f, (x, w), order=2)
  check_grads(lambda w: dnp.vectorize(lambda v, *, w: dnp.sin(v * w[1]), excluded={"w"})(x, w=w),
              (w,), order=2)


def test_python_control_flow_on_concrete_values():
  def f(v):
    return dnp.sum(v) if v[0] > 0 else -dnp.prod(v)

  def g(v):
    return np.sum(v) if v[0] > 0 else -np.prod(v)
  x = R(6, 3, seed=12)
  primal, tangent = dfdx.jvp(dnp.vectorize(f, signature="(n)->()"), (x,), (np.ones_like(x),))
  assert_same_tree(primal, np.vectorize(g, signature="(n)->()")(x))
  check_grads(dnp.vectorize(f, signature="(n)->()"), (x,), order=2)
  check_grads(dnp.vectorize(lambda a: a * a if a > 0 else dnp.sin(a)), (x,), order=2)


def test_decorators():
  @dnp.vectorize(signature="(n),(n)->()")
  def dot(a, b):
    """A dot product."""
    return dnp.dot(a, b)

  @dnp.vectorize
  def mul(a, b):
    return a * b
  assert dot.__doc__ == "A dot product." and dot.__name__ == "dot"
  assert_same_tree(dfdx.jit(dot)(A314, B54), np.vectorize(np.dot, signature="(n),(n)->()")(
      A314, B54))
  assert_same_tree(dfdx.jit(mul)(A314, B54), A314 * B54)
  assert_same_tree(dfdx.grad(lambda a: dot(a, B54).sum())(A314),
                   np.broadcast_to(B54.sum(0), A314.shape))


def test_no_vectorized_arguments():
  f = dnp.vectorize(lambda w: dnp.sum(w * w), excluded={0})
  assert_same_tree(dfdx.grad(f)(V4), 2 * V4)


ERRORS = [  # (signature, function, arguments): NumPy's error type, with traced arguments
    ("(m,n),(n)->(m)", np.matmul, (M234, R(3, seed=13))),  # wrong core size of an argument
    ("(n),(n)->()", np.dot, (A314, R(5, 3, seed=14))),  # inconsistent sizes of n
    ("(m,n),(n)->(m)", np.matmul, (V4, V4)),  # too few core dimensions
    ("(n)->(n)", lambda x: x[:2], (A314,)),  # output of the wrong core size
    ("(n)->(n)", lambda x: np.stack([x, x]), (A314,)),  # an output with extra dimensions
    ("(n)->(n,n)", lambda x: x, (A314,)),  # output with too few core dimensions
    ("(n)->()", lambda x: x, (A314,)),  # an array for a 0-d core
    ("()->(k)", lambda x: np.ones(3) if x > 0 else np.ones(2), (np.array([1.0, -1.0]),)),
    ("(n)->(),()", lambda x: x.sum(), (A314,)),  # wrong number of outputs
    ("(n)->()", lambda x: (x.sum(), x.sum()), (A314,)),
    ("(n),(n)->()", np.dot, (A314,)),  # wrong number of arguments
    ("()->(k)", lambda x: x * np.ones(3), (EMPTY,)),  # new output dimension on a size-0 loop
]


@pytest.mark.parametrize("sig,fun,args", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors(sig, fun, args):
  otypes = "d" if 0 in args[0].shape else None
  with pytest.raises(Exception) as info:
    np.vectorize(fun, signature=sig, otypes=otypes)(*args)
  vec = dnp.vectorize(fun, signature=sig, otypes=otypes)
  with pytest.raises(info.type):
    dfdx.jvp(vec, args, tuple(np.ones_like(a) for a in args))
  if sig != "()->(k)" or otypes:  # (the others branch on values)
    with pytest.raises(info.type):
      dfdx.jit(vec)(*args)


def test_elementwise_errors():
  x = R(2, 3, seed=15)
  for fun, otypes in [(lambda a: np.ones(2) * a, None), (lambda a: (a, a), [float])]:
    with pytest.raises(ValueError):
      np.vectorize(fun, otypes=otypes)(x)
    with pytest.raises(ValueError):
      dfdx.jit(dnp.vectorize(fun, otypes=otypes))(x)
  with pytest.raises(ValueError, match="otypes"):
    dfdx.jit(dnp.vectorize(lambda a: a))(EMPTY)


def test_entries_of_integers_and_bools_are_python_numbers_as_numpy_passes_them():
  b, c = np.array([True, False]), np.array([False, True])
  minus = lambda a, c: a - c  # noqa: E731  (Python bools subtract; NumPy's refuse)
  for transform in (lambda f: f, dfdx.jit):
    np.testing.assert_array_equal(transform(dnp.vectorize(minus, otypes=[int]))(b, c),
                                  np.vectorize(minus, otypes=[int])(b, c))
  square = lambda a: a ** 2  # noqa: E731
  assert dfdx.jit(dnp.vectorize(square))(b).dtype == np.vectorize(square)(b).dtype
  # an untraced integer argument beside a traced float one: as NumPy, a NumPy scalar in a
  # first call (which fixes the result's dtype), then Python ints for every entry
  kinds, np_kinds = [], []
  f = dnp.vectorize(lambda a, k: (kinds.append(type(k)), a * k)[1])
  np.testing.assert_array_equal(dfdx.jacobian(lambda x: f(x, np.array([2, 3])))(
      np.array([0.5, 1.5])), np.diag([2.0, 3.0]))
  np.vectorize(lambda a, k: (np_kinds.append(type(k)), a * k)[1])(np.ones(2), np.array([2, 3]))
  assert kinds == np_kinds == [np.int64, int, int]


def test_a_function_closing_over_a_traced_value_of_untraced_arguments():
  x32 = np.array([0.5, 1.5, -2.0], np.float32)  # (NumPy's loop could not hold s under jit)
  for sig in (None, "(k)->(k)"):
    f = lambda s: dnp.vectorize(lambda v: v * s, signature=sig)(x32)  # noqa: E731
    want, got = f(0.5), dfdx.jit(f)(0.5)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dfdx.grad(lambda s: dnp.sum(f(s)))(0.5), np.sum(x32))
