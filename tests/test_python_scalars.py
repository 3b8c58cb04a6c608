"""Python scalars under jit: the types NumPy gives them.

Eagerly, Python's arithmetic on Python numbers gives Python numbers, which promote weakly
(`x32 + s * 2.0` stays float32), while any NumPy function makes a NumPy value
(`x32 + np.exp(s)` is float64). A jitted function with a Python number argument must give
the same dtypes, and the same kind of result (a Python number or a NumPy value), as the
function run eagerly; so must `make_expr`'s program and vmap under jit. These tests call each
function both ways and compare.
"""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import core
from dfdx._src.ir import Eqn, Program, ProgramTypeError, Var, typecheck_program
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import reduction
from dfdx.testing import check_grads

X32 = np.array([0.5, 1.5, -2.0], np.float32)

# f(s, x): s a Python number, x a float32 array.
CASES = {
    # Python's arithmetic: s stays a Python number, x keeps float32
    "s * 2.0": lambda s, x: x + s * 2.0,
    "-s": lambda s, x: x + (-s),
    "abs(s)": lambda s, x: x + abs(s),
    "s ** 2": lambda s, x: x + s ** 2,
    "s / 3.0": lambda s, x: x + s / 3.0,
    "s // 0.3": lambda s, x: x + s // 0.3,
    "s % 0.3": lambda s, x: x + s % 0.3,
    "2 ** s": lambda s, x: x + 2 ** s,
    "s * 2 (int)": lambda s, x: x + s * 2,
    "(s > 0.1) * 1.0": lambda s, x: x * ((s > 0.1) * 1.0),
    "stop_gradient": lambda s, x: x + dfdx.stop_gradient(s),
    "bools add as ints": lambda s, x: x + ((s > 0.1) + (s > 0.2)),
    "-bool, abs(bool)": lambda s, x: x * (-(s > 0.1)) + abs(s > 0.2),
    "sqrt(True + True)": lambda s, x: x + dnp.sqrt((s > 0.1) + (s > 0.2)),
    "~bool": lambda s, x: x + ~(s > 0.1),
    "round(s)": lambda s, x: x + round(s + 2.0),
    "round(s, 1)": lambda s, x: x + round(s * 3.3, 1),
    "round(bool), round(bool, 1)": lambda s, x: x + round(s > 0.1) + round(s > 0.2, 1),
    "round(n), round(n, 1)": lambda s, x: x + round(int(3) + (s > 0)) * round(int(2), 1),
    # Python's round of a NumPy scalar: a Python int
    "round(sum(x))": lambda s, x: x + round(dnp.sum(x) * s),
    "round(count_nonzero)": lambda s, x: x + round(dnp.count_nonzero(x > s)),
    # NumPy functions: a NumPy float64
    "exp": lambda s, x: x + dnp.exp(s),
    "dnp.add": lambda s, x: x + dnp.add(s, 1.0),
    "dnp.multiply": lambda s, x: x + dnp.multiply(s, 2.0),
    "square": lambda s, x: x + dnp.square(s),
    "deg2rad": lambda s, x: x + dnp.deg2rad(s),
    "sum": lambda s, x: x + dnp.sum(s),
    "asarray": lambda s, x: x + dnp.asarray(s),
    "array": lambda s, x: x + dnp.array(s),
    "broadcast_to": lambda s, x: x + dnp.broadcast_to(s, (3,)),
    "full": lambda s, x: x + dnp.full(3, s),
    "dot": lambda s, x: dnp.dot(x, s),
    "broadcast_to(s, ())": lambda s, x: x + dnp.broadcast_to(s, ()),
    # NumPy functions that give back their operand's value: still a NumPy value
    "power(s, 1.0)": lambda s, x: x + dnp.power(s, 1.0),
    "positive(s)": lambda s, x: x + dnp.positive(s),
    "negative(-s)": lambda s, x: x + dnp.negative(-s),
    "stop_gradient(asarray(s))": lambda s, x: x + dfdx.stop_gradient(dnp.asarray(s)),
    "copysign(True, s)": lambda s, x: x + dnp.copysign(True, s),
    "clip(s, x)": lambda s, x: dnp.clip(s, x, None),
    "jvp's output": lambda s, x: x + dfdx.jvp(lambda y: s * 2.0, (x,), (x,))[0],
    "exp(s * 2.0)": lambda s, x: x + dnp.exp(s * 2.0),
    "exp(s) * 2.0": lambda s, x: x + dnp.exp(s) * 2.0,
    "round(bool) (float16)": lambda s, x: x + dnp.sum(dnp.round(s > 0.1)),
    "where(s > 0.1, s, exp(s))": lambda s, x: dnp.where(s > 0.1, s, dnp.exp(s)) + np.float32(1),
    "(x[0] > s) ** 2": lambda s, x: x + (x[0] > s) ** 2,
    # a NumPy function of the array and the Python number: weak, float32
    "maximum": lambda s, x: dnp.maximum(x, s),
    "power": lambda s, x: dnp.power(x, s),
    "power (reflected)": lambda s, x: dnp.power(s, x),
    "where": lambda s, x: dnp.where(x > 0, s, x),
    "select": lambda s, x: dnp.select([x > 0], [s], x),
    "clip": lambda s, x: dnp.clip(x, s, 1.0),
    "copysign": lambda s, x: dnp.copysign(x, s),
    "logaddexp2": lambda s, x: dnp.logaddexp2(s, x),
    "add, dtype=float32": lambda s, x: dnp.add(x, s, dtype=np.float32),
    # cond: a Python number every branch gives stays one
    "cond of Python numbers": lambda s, x: x + dfdx.cond(s > 0, lambda: s * 2.0, lambda: -s),
    "cond of NumPy values": lambda s, x: x + dfdx.cond(s > 0, dnp.exp, dnp.sin, s),
    "switch": lambda s, x: x + dfdx.switch(1, [lambda: s, lambda: s * 3.0]),
    # results that are Python numbers or NumPy scalars themselves
    "s * 2.0 alone": lambda s, x: s * 2.0,
    "sin alone": lambda s, x: dnp.sin(s),
    "s * 2.0, then sin": lambda s, x: dnp.sin(s * 2.0) + s,
    "round alone": lambda s, x: round(s * 5.0),
    "cond alone": lambda s, x: dfdx.cond(s > 0, lambda: s * 2.0, lambda: s * 3.0),
}


def _kind(v):
  return "python" if type(v) in (float, int, bool, complex) else "numpy"


@pytest.mark.parametrize("name", CASES)
def test_jit_and_make_expr_give_the_types_of_eager_numpy(name):
  f = CASES[name]
  want = f(0.5, X32)
  got = dfdx.jit(f)(0.5, X32)
  assert np.asarray(got).dtype == np.asarray(want).dtype, name
  assert _kind(got) == _kind(want), name
  # (jit may fold scalar factors: logaddexp2's ln 2 and 1 / ln 2, say)
  np.testing.assert_allclose(got, want, rtol=2e-7 if np.asarray(want).dtype == np.float32
                             else 1e-15)
  (out,) = dfdx.make_expr(f)(0.5, X32).program.outs
  assert out.aval.dtype == np.asarray(want).dtype
  assert out.aval.weak_type == (_kind(want) == "python")


@pytest.mark.parametrize("name", [n for n in CASES if "alone" not in n])
def test_vmap_under_jit_gives_the_types_of_eager_vmap(name):
  f = dfdx.vmap(CASES[name], in_axes=(None, 0))
  xs = np.stack([X32, X32[::-1]])
  want = f(0.5, xs)
  got = dfdx.jit(f)(0.5, xs)
  assert got.dtype == want.dtype
  np.testing.assert_array_equal(got, want)


def test_a_python_int_argument():
  f = lambda n, x: x * (n + 1) + dnp.sum(dnp.arange(3) * n)  # noqa: E731
  assert dfdx.jit(f)(2, X32).dtype == f(2, X32).dtype == np.float64
  g = lambda n, x: x * (n + 1)  # noqa: E731
  assert dfdx.jit(g)(2, X32).dtype == g(2, X32).dtype == np.float32
  h = lambda n: n ** -1  # noqa: E731  (Python: 0.5; NumPy's int power would refuse)
  assert type(dfdx.jit(h)(2)) is float and dfdx.jit(h)(2) == h(2)


def test_grad_makes_a_differentiated_python_number_a_numpy_value_under_jit_too():
  f = lambda s: dnp.sum(X32 + s * 2.0)  # noqa: E731
  eager, jitted = dfdx.value_and_grad(f)(0.5), dfdx.jit(dfdx.value_and_grad(f))(0.5)
  assert [np.asarray(v).dtype for v in eager] == [np.asarray(v).dtype for v in jitted]
  np.testing.assert_allclose(jitted, eager, rtol=1e-15)
  # its casts go where nothing reads them differently: sin of the argument has none
  program = dfdx.make_expr(dfdx.grad(dnp.sin), optimize=True)(1.0).program
  assert [e.prim.name for e in program.eqns] == ["cos"]


@dfdx.custom_jvp
def _twice(s):
  return s * 2.0


_twice.defjvp(lambda primals, tangents: (primals[0] * 2.0, tangents[0] * 2.0))


@dfdx.custom_vjp
def _thrice(s):
  return s * 3.0


_thrice.defvjp(lambda s: (s * 3.0, None), lambda res, g: (g * 3.0,))
_inner_jit = dfdx.jit(lambda s: s * 2.0)
_inner_jit_exp = dfdx.jit(dnp.exp)
_checkpointed = dfdx.checkpoint(lambda s: s * 2.0)

# functions that give what their function gives
CALLS = {
    "custom_jvp": lambda s, x: x + _twice(s),
    "custom_vjp": lambda s, x: x + _thrice(s),
    "jit in jit": lambda s, x: x + _inner_jit(s),
    "jit of exp in jit": lambda s, x: x + _inner_jit_exp(s),
    "checkpoint": lambda s, x: x + _checkpointed(s),
}


@pytest.mark.parametrize("name", CALLS)
def test_custom_rules_nested_jit_and_checkpoint_give_what_their_function_gives(name):
  f = CALLS[name]
  assert dfdx.jit(f)(0.5, X32).dtype == f(0.5, X32).dtype
  np.testing.assert_array_equal(dfdx.jit(f)(0.5, X32), f(0.5, X32))
  g = lambda s: dnp.sum(f(s, X32))  # noqa: E731
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(g))(0.5), dfdx.grad(g)(0.5), rtol=1e-15)


def test_custom_jvp_with_a_python_number_argument_differentiated_under_jit():
  @dfdx.custom_jvp
  def pair(a, b):
    return a * b, b * 2.0
  pair.defjvp(lambda p, t: (pair(*p), (t[0] * p[1] + p[0] * t[1], t[1] * 2.0)))
  f = lambda s, x: dfdx.grad(lambda y: dnp.sum(pair(y, s)[0] + pair(y, s)[1]))(x)  # noqa: E731
  np.testing.assert_array_equal(dfdx.jit(f)(3.0, X32), f(3.0, X32))
  np.testing.assert_array_equal(f(3.0, X32), np.full(3, 3.0, np.float32))


# ---- loops ----------------------------------------------------------------------------------


def test_a_scan_carry_the_body_keeps_a_python_number():
  xs = np.ones((3, 2), np.float32)
  f = lambda xs: dfdx.scan(lambda c, x: (c * 0.5 + 1.0, x + c), 0.0, xs)  # noqa: E731
  (c, ys), (cj, ysj) = f(xs), dfdx.jit(f)(xs)
  assert type(c) is type(cj) is float and c == cj
  assert ys.dtype == ysj.dtype == np.float32
  np.testing.assert_array_equal(ysj, ys)
  g = lambda xs: xs + f(xs)[0]  # noqa: E731
  assert dfdx.jit(g)(xs).dtype == g(xs).dtype == np.float32


def test_a_scan_carry_the_body_makes_a_numpy_value_is_one_from_the_first_step():
  # Eagerly too: the Python loop starts again from a NumPy init, so every step, the first
  # included, computes with a float64 carry.
  xs = np.ones((3, 2), np.float32)
  f = lambda xs: dfdx.scan(lambda c, x: (dnp.sin(c) + 1.0, x + c), 0.0, xs)  # noqa: E731
  (c, ys), (cj, ysj) = f(xs), dfdx.jit(f)(xs)
  assert ys.dtype == ysj.dtype == np.float64
  assert np.asarray(c).dtype == np.asarray(cj).dtype == np.float64
  np.testing.assert_array_equal(ysj, ys)
  assert dfdx.make_expr(f)(xs).program.outs[1].aval.dtype == np.float64


FORI = {
    # (stop 25's jit raised: the carry became float64)
    "y + i * dt": lambda s, y: dfdx.fori_loop(0, 4, lambda i, c: c + i * 0.1, y),
    "c * i": lambda s, y: y + dfdx.fori_loop(1, 4, lambda i, c: c * i, s),
    "sin(i * s)": lambda s, y: y + dfdx.fori_loop(0, 4, lambda i, c: c + dnp.sin(i * s), s),
    "take(table, i)": lambda s, y: dfdx.fori_loop(
        0, 4, lambda i, c: c + dnp.take(np.arange(12.0, dtype=np.float32).reshape(4, 3), i,
                                        axis=0) * s, y),
}


@pytest.mark.parametrize("name", FORI)
def test_fori_loop_index_is_a_python_int_under_jit_too(name):
  f, y = FORI[name], X32
  want, got = f(0.5, y), dfdx.jit(f)(0.5, y)
  assert got.dtype == want.dtype
  np.testing.assert_allclose(got, want, rtol=1e-6)
  ys = np.stack([y, 2 * y])
  assert dfdx.jit(dfdx.vmap(f, in_axes=(None, 0)))(0.5, ys).dtype == want.dtype
  g = lambda y: dnp.sum(f(0.5, y) ** 2)  # noqa: E731
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(g))(y), dfdx.grad(g)(y), rtol=1e-6)


def test_indexing_a_numpy_array_with_a_traced_index_says_what_to_use():
  table = np.arange(12.0).reshape(4, 3)
  f = dfdx.jit(lambda y: dfdx.fori_loop(0, 4, lambda i, c: c + table[i], y))
  with pytest.raises(dfdx.TracerArrayConversionError, match=r"dfdx\.numpy\.take\(a, i"):
    f(np.ones(3))


def test_numpy_scalar_types_of_a_traced_value_say_how_to_cast():
  with pytest.raises(dfdx.TracerArrayConversionError, match=r"x\.astype\(np\.float32\)"):
    dfdx.jit(lambda s, x: x * np.float32(s))(0.5, X32)
  cast = dfdx.jit(lambda s, x: x * dnp.asarray(s, np.float32))
  assert cast(0.5, X32).dtype == np.float32


def test_a_carried_sum_of_python_numbers_stays_one():
  f = lambda s, x: x + dfdx.scan(lambda c, r: (c + s, r), 0.0, x)[0]  # noqa: E731
  assert dfdx.jit(f)(0.5, X32).dtype == f(0.5, X32).dtype == np.float32
  np.testing.assert_array_equal(dfdx.jit(f)(0.5, X32), f(0.5, X32))


def test_a_python_int_carry_the_body_makes_a_python_float():
  f = lambda n, x: x + dfdx.fori_loop(0, 3, lambda i, c: c * 0.5, n)  # noqa: E731
  g = lambda n, x: x + dfdx.while_loop(lambda c: c < 10, lambda c: c * 2.5, n)  # noqa: E731
  for h in (f, g):
    assert dfdx.jit(h)(2, X32).dtype == h(2, X32).dtype == np.float32
    np.testing.assert_array_equal(dfdx.jit(h)(2, X32), h(2, X32))


def test_a_python_bool_carry_the_body_makes_an_int():
  # (True + 1 is 2 in Python: the carry becomes a Python int, under jit too)
  f = lambda s: dfdx.while_loop(lambda c: c < 2, lambda c: c + 1, s > 0)  # noqa: E731
  assert type(dfdx.jit(f)(0.5)) is type(f(0.5)) is int and dfdx.jit(f)(0.5) == f(0.5) == 2


# Carries that a step turns into a narrower kind (a float count, an int compared): the
# first step reads init as it is (cast, 0.5 would read as 0), under jit too.
NARROWING = {
    "count of x > c, c = s": lambda s, x: dfdx.fori_loop(
        0, 3, lambda i, c: dnp.count_nonzero(x > c), s),
    "1.0 != c, c = n": lambda s, x: dfdx.fori_loop(0, 4, lambda i, c: 1.0 != c, 2),
    "int(s) -> bool": lambda s, x: dfdx.fori_loop(0, 3, lambda i, c: c > 1, 2),
    "scan: count, ys stacked": lambda s, x: dfdx.scan(
        lambda c, r: (dnp.count_nonzero(x > c + r), c * r), s, x),
    "scan reverse": lambda s, x: dfdx.scan(
        lambda c, r: (dnp.count_nonzero(x > c + r), c + r), s, x, reverse=True),
    "scan of one step": lambda s, x: dfdx.scan(
        lambda c, r: (dnp.count_nonzero(x > c), c * r), s, x[:1]),
    "scan of no step": lambda s, x: dfdx.scan(
        lambda c, r: (dnp.count_nonzero(x > c), c * r), s, x[:0]),
    "a float leaf beside": lambda s, x: dfdx.scan(
        lambda c, r: ((c[0] + r * c[1], dnp.sum(x > c[1])), c[0] * r), (s, s), x),
}


@pytest.mark.parametrize("name", NARROWING)
def test_a_carry_made_a_narrower_kind_reads_init_as_it_is(name):
  f = NARROWING[name]
  x = np.array([0.25, 0.75, 1.5, -2.0])
  for s in (0.5, 1.0):
    want, got = f(s, x), dfdx.jit(f)(s, x)
    assert str(got) == str(want)
    for a, b in zip(dfdx.tree.tree_leaves(want), dfdx.tree.tree_leaves(got)):
      assert type(a) is type(b) and np.asarray(a).dtype == np.asarray(b).dtype
  xs = np.stack([x, x[::-1]])
  batched = dfdx.vmap(f, in_axes=(None, 0))(0.5, xs)
  for i in range(2):
    for a, b in zip(dfdx.tree.tree_leaves(f(0.5, xs[i])), dfdx.tree.tree_leaves(batched)):
      np.testing.assert_array_equal(np.asarray(b)[i], a)


def test_derivatives_through_a_step_run_alone():
  x = np.array([0.3, 0.75, 1.5, -2.0])  # (no x_j = c + x_i: the counts are constant near)
  f = lambda x: NARROWING["a float leaf beside"](0.5, x)[0][0]  # noqa: E731
  check_grads(f, (x,), order=2, modes=("fwd", "rev"))
  check_grads(dfdx.jit(f), (x,), order=2, modes=("fwd", "rev"))
  g = lambda x: dnp.sum(NARROWING["scan: count, ys stacked"](0.5, x)[1] ** 2)  # noqa: E731
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(g))(x), dfdx.grad(g)(x), rtol=1e-12)
  check_grads(g, (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.int8])
def test_a_python_int_carry_summing_small_integers_keeps_their_dtype_under_jit(dtype):
  # (the loop's sum moved after it: NumPy's sum of int32 is int64, cast back; the loop wraps)
  x = np.array([100, 120, 3], dtype)
  f = lambda x: dfdx.scan(lambda c, r: (c + r, None), 0, x)[0]  # noqa: E731
  g = lambda x: dfdx.fori_loop(0, 2, lambda i, c: c + x[0], 0)  # noqa: E731
  for h in (f, g):
    with np.errstate(over="ignore"):
      want = h(x)
    got = dfdx.jit(h)(x)
    assert got.dtype == want.dtype == dtype and got == want


def test_a_fori_loop_carry_made_its_index_stays_a_python_int_under_jit():
  # (the index, computed for every step before the loop, is a Python int again in it)
  k = lambda s, x: x + dfdx.fori_loop(0, 3, lambda i, c: i, s)  # noqa: E731
  for s, x in [(2, np.array([1, 2], np.int32)), (False, X32)]:
    want, got = k(s, x), dfdx.jit(k)(s, x)
    assert got.dtype == want.dtype == x.dtype
    np.testing.assert_array_equal(got, want)


def test_a_loop_of_no_step_returns_init_as_it_is():
  # (as the Python loop, and as fori_loop(0, 0, ...) does: no cast to the body's type)
  f = lambda s: dfdx.scan(lambda c, r: (c + 0.5, c), s, length=0)  # noqa: E731
  g = lambda s: dfdx.fori_loop(0, 0, lambda i, c: c + 0.5, s)  # noqa: E731
  for h in (f, dfdx.jit(f)):
    c, ys = h(2)
    assert type(c) is int and c == 2 and ys.shape == (0,) and ys.dtype == np.float64
  assert type(g(2)) is type(dfdx.jit(g)(2)) is int


def test_a_python_int_carry_made_an_unsigned_or_narrower_integer_reads_init_as_it_is():
  # (-2 cast to uint8 first would be 254: the first step runs alone, as in the Python loop)
  f = lambda n: dfdx.fori_loop(0, 2, lambda i, c: dnp.bitwise_count(c), n)  # noqa: E731
  g = lambda n: dfdx.scan(lambda c, r: (dnp.asarray(c * r, np.int8), c), n,  # noqa: E731
                          np.array([3, 2], np.int8))
  for h in (f, g):
    want, got = h(-2), dfdx.jit(h)(-2)
    for a, b in zip(dfdx.tree.tree_leaves(want), dfdx.tree.tree_leaves(got)):
      assert np.asarray(a).dtype == np.asarray(b).dtype
      np.testing.assert_array_equal(b, a)
  assert f(-2) == 1  # (bitwise_count(-2) is 1: |-2| has one bit)


def test_derivatives_of_a_jitted_function_with_a_python_number_result_no_tangent_reaches():
  # (the result is a Python float whose value x only selects: a zero derivative)
  h = dfdx.jit(lambda s, x: dfdx.cond(s > 1, lambda: dfdx.cond(
      dnp.sum(x) > 0, lambda: s, lambda: s * -2.0), lambda: s * 0.5))
  x = np.array([0.5, 1.5, -2.0])
  f = lambda x: h(1.25, x)  # noqa: E731
  np.testing.assert_array_equal(dfdx.grad(f)(x), np.zeros(3))
  np.testing.assert_array_equal(dfdx.hessian(f)(x), np.zeros((3, 3)))
  assert dfdx.vjp(f, x)[1](1.0)[0].shape == (3,)
  value, grad = dfdx.value_and_grad(f)(x)
  assert value == f(x) == -2.5 and isinstance(value, np.floating)


def test_a_comparison_of_a_python_number_made_a_numpy_value_keeps_its_promotion():
  # (equal(float64 0.7, float32 0.7) compares in float64: False; without the cast to a
  # NumPy value the Python number would compare in float32: True)
  x32 = np.ones((2, 3), np.float32)
  g = lambda s, x: dnp.equal(dnp.full((), s), dnp.full_like(x, s)[1, 2])  # noqa: E731
  assert not g(0.7, x32) and not dfdx.jit(g)(0.7, x32)
  assert g(0.5, x32) and dfdx.jit(g)(0.5, x32)


def test_round_of_a_python_bool_is_float16_as_in_numpy():
  for f in (dnp.round, dnp.around):
    assert dfdx.jit(f)(False).dtype == np.round(False).dtype == np.float16
    assert dfdx.vmap(f)(np.array([True])).dtype == np.float16


def test_a_while_loop_carry_made_a_narrower_kind_is_refused_under_jit():
  # (eagerly a loop that runs no step returns 0.5; one type under jit cannot say both)
  f = lambda s: dfdx.while_loop(lambda c: c < 3, lambda c: int(2) + 2, s)  # noqa: E731
  assert f(0.5) == 4 and f(5.5) == 5.5
  with pytest.raises(TypeError, match=r"leaf 0, a Python float -> a Python int.*0 for a count"):
    dfdx.jit(f)(0.5)
  with pytest.raises(TypeError, match="narrower kind"):
    dfdx.vmap(lambda x: f(0.5) + x)(np.ones(2))


def test_a_carry_whose_type_changes_at_every_step_is_refused_under_jit():
  # An int made a bool, a bool made an int (the Python loop runs it, a bool read as 1)
  step = lambda c, r: (c + 1 if dnp.asarray(c).dtype == bool else c > 1, r)  # noqa: E731
  f = lambda xs: dfdx.scan(step, 2, xs)[0]  # noqa: E731
  xs = np.arange(6)
  assert type(f(xs)) is bool
  with pytest.raises(TypeError, match="changes the type of the carry at every step"):
    dfdx.jit(f)(xs)


def test_a_while_loop_init_made_a_numpy_value_is_one_in_the_program_and_in_its_run():
  # (eagerly a loop that runs no step leaves the Python number as it is: jit cannot know)
  f = lambda s, x: x + dfdx.while_loop(lambda c: c < 5.0, lambda c: c + dnp.exp(0.1), s)
  assert dfdx.make_expr(f)(7.0, X32).program.outs[0].aval.dtype == np.float64
  assert dfdx.jit(f)(7.0, X32).dtype == np.float64
  assert dfdx.jit(f)(1.0, X32).dtype == f(1.0, X32).dtype == np.float64


@pytest.mark.parametrize("name", ["checkpoint", "custom_jvp", "custom_vjp", "jit"])
def test_derivatives_through_calls_with_python_number_results(name):
  body = lambda a, b: (a * (b * 2.0), b * 2.0)  # noqa: E731
  if name == "checkpoint":
    w = dfdx.checkpoint(body)
  elif name == "custom_jvp":
    w = dfdx.custom_jvp(body)
    w.defjvp(lambda p, t: (body(*p), (t[0] * (p[1] * 2.0), t[1] * 2.0)))
  elif name == "custom_vjp":
    w = dfdx.custom_vjp(body)
    w.defvjp(lambda a, b: (body(a, b), b), lambda b, g: (g[0] * (b * 2.0), None))
  else:
    w = dfdx.jit(body)
  f = lambda x: w(x, 2.0)[0] + w(x, 2.0)[1]  # noqa: E731
  plain = lambda x: body(x, 2.0)[0] + body(x, 2.0)[1]  # noqa: E731
  for t in (lambda g: g, dfdx.jit):
    assert t(f)(X32).dtype == plain(X32).dtype == np.float32
    grad = t(dfdx.grad(lambda x: dnp.sum(f(x))))(X32)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, np.full(3, 4.0, np.float32))
    out, tangent = t(lambda x: dfdx.jvp(f, (x,), (x,)))(X32)
    assert out.dtype == tangent.dtype == np.float32
    np.testing.assert_array_equal(tangent, 4 * X32)
    if name != "custom_vjp":  # (its batched outputs are all arrays: float64 here)
      xs = np.stack([X32, 2 * X32])
      assert t(dfdx.vmap(f))(xs).dtype == dfdx.vmap(plain)(xs).dtype == np.float32


def test_a_while_loop_keeps_python_numbers():
  w = lambda s: dfdx.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, s)  # noqa: E731
  assert type(w(1.0)) is type(dfdx.jit(w)(1.0)) is float and w(1.0) == dfdx.jit(w)(1.0)
  h = lambda s, x: x + w(s)  # noqa: E731
  assert dfdx.jit(h)(1.0, X32).dtype == h(1.0, X32).dtype == np.float32


def test_a_cond_whose_branches_differ_gives_a_numpy_value():
  # (eagerly the branch taken decides; traced, one type must serve both)
  f = lambda s, x: x + dfdx.cond(s > 0, lambda: s * 2.0, lambda: dnp.exp(s))  # noqa: E731
  assert dfdx.jit(f)(0.5, X32).dtype == np.float64
  g = lambda s: dfdx.cond(s > 0, lambda: s * 2.0, lambda: dnp.exp(s))  # noqa: E731
  assert type(dfdx.jit(g)(0.5)) is np.float64 and dfdx.jit(g)(-1.0) == np.exp(-1.0)


# ---- the program invariants -----------------------------------------------------------------


def test_the_type_checker_refuses_a_python_number_that_a_numpy_function_made():
  s, out = Var(core.ShapedArray((), np.float64, weak_type=True)), Var(
      core.ShapedArray((), np.float64, weak_type=True))
  typecheck_program(Program([s], [], [], [Eqn(ew.exp_p, [s], {}, [out], None)], [out]))
  x = Var(core.ShapedArray((3,), np.float32))
  bad = Var(core.ShapedArray((), np.float32, weak_type=True))
  program = Program([x], [], [], [Eqn(reduction.reduce_sum_p, [x], {"axes": (0,)}, [bad],
                                      None)], [bad])
  with pytest.raises(ProgramTypeError, match="weakly typed"):
    typecheck_program(program)


def test_only_zero_dimensional_values_are_weakly_typed():
  assert core.ShapedArray((), np.float64, weak_type=True).weak_type
  assert not core.ShapedArray((3,), np.float64, weak_type=True).weak_type


def test_common_subexpressions_keep_python_numbers_apart_from_numpy_values():
  f = lambda s, x: x + s * 2.0 + dnp.multiply(s, 2.0)  # noqa: E731
  assert dfdx.jit(f)(0.5, X32).dtype == f(0.5, X32).dtype == np.float64
  g = lambda s, x: (x + s * 2.0, dnp.multiply(s, 2.0) * 1.0)  # noqa: E731
  got, want = dfdx.jit(g)(0.5, X32), g(0.5, X32)
  assert [np.asarray(v).dtype for v in got] == [np.asarray(v).dtype for v in want]
  assert [_kind(v) for v in got] == [_kind(v) for v in want]
