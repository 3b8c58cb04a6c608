"""What jit generates: rewrites that save NumPy calls (passes.py), the code written for them
(codegen.py: methods, scalar operators, memory layouts) and jit's call path. Every test
checks the program or source no longer has the pattern, and that the results equal eager
evaluation (or the unoptimized program)."""
import re

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import codegen, passes
from dfdx._src import jit as jit_module
from dfdx._src.ir import eval_program
from dfdx._src.ops import shape as shape_ops


def _names(expr):
  return [e.prim.name for e in expr.eqns]


def _unoptimized_equals(f, *args, rtol=0):
  raw = dfdx.make_expr(f)(*args)
  opt = dfdx.make_expr(f, optimize=True)(*args)
  for a, b in zip(eval_program(raw.program, *args), eval_program(opt.program, *args)):
    np.testing.assert_allclose(b, a, rtol=rtol, atol=0)
  return opt


# ---- passes ---------------------------------------------------------------------------------


def test_sum_of_a_sum_is_one_sum(rng):
  x = rng.standard_normal((4, 5))
  f = lambda x: dnp.sum(dnp.sum(x ** 2, axis=1)) + dnp.sum(dnp.sum(dnp.exp(x), axis=0))
  expr = _unoptimized_equals(f, x, rtol=1e-14)
  sums = [e for e in expr.eqns if e.prim.name == "reduce_sum"]
  assert [e.params["axes"] for e in sums] == [(0, 1), (0, 1)], expr
  # the sum of squares becomes one einsum over both axes
  assert "np.einsum('ab,ab->', " in expr.to_source()


def test_pads_of_adjacent_blocks_summed_are_one_concatenation(rng):
  a, b = rng.standard_normal((5, 1)), rng.standard_normal((5, 3))
  pad = lambda x, lo, hi: shape_ops.pad(x, ((0, 0, 0), (lo, hi, 0)))

  def f(a, b):  # as the cotangents of two slices of one input
    return pad(dnp.sin(a), 0, 3) + pad(b * 2.0, 1, 0)
  expr = _unoptimized_equals(f, a, b)
  assert "pad" not in _names(expr) and _names(expr).count("concatenate") == 1, expr
  np.testing.assert_array_equal(dfdx.jit(f)(a, b), f(a, b))

  def ends(a, b):  # adjacent blocks leaving zeros at both ends: one pad of the concatenation
    return pad(b[:, :1] * 2.0, 2, 1) + pad(dnp.sin(a), 1, 2)
  expr = _unoptimized_equals(ends, a, b)
  assert _names(expr).count("pad") == 1 and "concatenate" in _names(expr), expr
  padding = next(e for e in expr.eqns if e.prim.name == "pad")
  assert padding.params["config"] == ((0, 0, 0), (1, 1, 0))
  np.testing.assert_array_equal(dfdx.jit(ends)(a, b), ends(a, b))

  def gap(a, b):  # blocks that do not touch: left alone
    return pad(dnp.sin(a), 0, 3) + pad(b[:, 1:] * 2.0, 2, 0)
  expr = _unoptimized_equals(gap, a, b)
  assert _names(expr).count("pad") == 2 and "concatenate" not in _names(expr), expr


def test_scalar_factors_move_out_of_reshapes_and_fold(rng):
  y, w = rng.standard_normal((5, 10)), rng.standard_normal((5, 2, 10))

  def f(y, w):
    return shape_ops.reshape(y * -0.5, (5, 1, 10)) * 2.0 * w
  expr = _unoptimized_equals(f, y, w)
  literals = [a.val for e in expr.eqns if e.prim.name == "mul" for a in e.inputs
              if not isinstance(a, dfdx._src.ir.Var)]
  assert literals == [-1.0], expr  # -0.5 * 2 (exact: a power of two)
  np.testing.assert_array_equal(dfdx.jit(f)(y, w), f(y, w))


def test_reshapes_adding_leading_axes_are_left_to_broadcasting(rng):
  x, y = rng.standard_normal((3, 5)), rng.standard_normal(5)
  f = lambda x, y: (x - shape_ops.reshape(y, (1, 5))) * shape_ops.reshape(dnp.max(y), (1,))
  expr = _unoptimized_equals(f, x, y)
  assert "reshape" not in _names(expr), expr
  np.testing.assert_array_equal(dfdx.jit(f)(x, y), f(x, y))
  # a reshape adding a trailing axis changes the broadcasting: it stays
  expr = _unoptimized_equals(lambda x, y: x - shape_ops.reshape(y[:3], (3, 1)), x, y)
  assert "reshape" in _names(expr)


def test_a_fused_reshape_that_gives_back_its_input_disappears(rng):
  x = rng.standard_normal(5)

  def f(x):
    row = shape_ops.reshape(x, (1, 5))  # used twice: reshape(reshape(x)) fuses to reshape(x)
    return dnp.exp(row), shape_ops.reshape(row, (5,)) * 3.0
  expr = _unoptimized_equals(f, x)
  assert _names(expr).count("reshape") == 1, expr


def test_stop_gradient_goes_only_from_programs_that_are_only_run(rng, jit_sources):
  x = rng.standard_normal((4, 6))

  def lse(x):
    mx = dfdx.stop_gradient(dnp.max(x, axis=0, keepdims=True))
    return dnp.sum(dnp.log(dnp.sum(dnp.exp(x - mx), axis=0)) + dnp.squeeze(mx, axis=0))
  expr = dfdx.make_expr(lse, optimize=True)(x)
  assert "stop_gradient" in _names(expr)  # make_expr's programs stay differentiable
  stripped = passes.optimize(expr.program, evaluate_only=True)
  assert "stop_gradient" not in [e.prim.name for e in stripped.eqns]
  # without it, reshape(reshape(max)) simplifies to the max itself: no reshape is left
  assert [e.prim.name for e in stripped.eqns].count("reshape") == 0, stripped
  np.testing.assert_allclose(eval_program(stripped, x)[0], lse(x), rtol=1e-15)
  vg = dfdx.jit(dfdx.value_and_grad(lse))
  value, grad = vg(x)
  np.testing.assert_allclose(value, lse(x), rtol=1e-15)
  np.testing.assert_allclose(grad, dfdx.grad(lse)(x), rtol=1e-14)
  assert "stop_gradient" not in jit_sources[-1]


def test_a_settled_program_is_not_optimized_again_unless_stripping_changes_it(rng, monkeypatch):
  """jit optimizes a program for transformations, then for its compiled code: the second
  time gets no rounds where the first reached a fixed point and nothing was inlined or
  stripped (LSTM (2, 256): 1 s of a 5.6 s first call)."""
  rounds = []
  fold = passes.fold_constants
  monkeypatch.setattr(passes, "fold_constants", lambda p: rounds.append(1) or fold(p))
  x = rng.standard_normal((4, 6))
  plain = dfdx.make_expr(lambda x: dnp.sum(dnp.sin(x) * 2.0 * 3.0))(x).program
  settled = passes.optimize(plain, inline=False)
  first = len(rounds)
  compiled = passes.optimize(settled, evaluate_only=True)
  assert first >= 1 and len(rounds) == first
  assert [e.prim.name for e in compiled.eqns] == [e.prim.name for e in settled.eqns]
  np.testing.assert_allclose(eval_program(compiled, x)[0], np.sum(np.sin(x) * 6.0), rtol=1e-15)
  marked = dfdx.make_expr(lambda x: dnp.sum(dfdx.stop_gradient(x * 2.0) * 3.0))(x).program
  settled = passes.optimize(marked, inline=False)
  first = len(rounds)
  compiled = passes.optimize(settled, evaluate_only=True)  # stop_gradient goes: more rounds
  assert len(rounds) > first and "stop_gradient" not in [e.prim.name for e in compiled.eqns]


# ---- code generation ------------------------------------------------------------------------


def test_scalar_arithmetic_is_written_with_operators(rng, jit_sources):
  x = rng.standard_normal(6)

  def f(x, a):
    s = dnp.sum(x)
    return (s * 0.5 - dnp.max(x)) / (dnp.sum(x ** 2) + 1.0) * a - s
  jf = dfdx.jit(f)
  out = jf(x, 2.0)  # a Python float argument
  assert out == f(x, 2.0) and isinstance(out, np.float64)
  body = [line.strip() for line in jit_sources[-1].splitlines()[1:]]
  ops = [line for line in body if re.fullmatch(r"v\d+ = \S+ [-+*/] \S+", line)]
  assert len(ops) >= 5, jit_sources[-1]
  assert not any(re.search(r"np\.(add|subtract|multiply|true_divide)\(", line)
                 for line in body), jit_sources[-1]
  # NumPy's scalar division: inf with NumPy's warning machinery, never ZeroDivisionError
  with np.errstate(divide="ignore", invalid="ignore"):
    assert dfdx.jit(lambda x: dnp.sum(x) / (dnp.max(x) - dnp.max(x)))(np.ones(3)) == np.inf
    assert np.isnan(dfdx.jit(lambda x: (dnp.max(x) - dnp.max(x)) / (dnp.max(x) - dnp.max(x)))(x))
  # two Python numbers stay with the ufunc (Python's / would raise)
  with np.errstate(divide="ignore"):
    assert dfdx.jit(lambda a, b: a / b)(1.0, 0.0) == np.inf
  assert "np.true_divide(" in jit_sources[-1]


def test_views_use_methods_on_arrays_and_functions_on_standalone_inputs(rng, jit_sources):
  x = rng.standard_normal((2, 3))
  f = lambda x: dnp.sum(dnp.exp(shape_ops.reshape(shape_ops.transpose(x, (1, 0)), (6,)))
                        * shape_ops.reshape(x, (6,))[:4].sum())
  dfdx.jit(dfdx.grad(f))(x)
  source = jit_sources[-1]
  assert ".T" in source and ".reshape((6, ))" in source and "np.reshape(" not in source, source
  assert "np.transpose(" not in source and "np.asarray(" not in source, source
  # the standalone source also takes lists: its inputs go through the functions
  exported = dfdx.export.to_source(dfdx.grad(f), x, name="g")
  namespace = {}
  exec(exported, namespace)
  np.testing.assert_allclose(namespace["g"](x.tolist()), dfdx.grad(f)(x), rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(x), dfdx.grad(f)(x), rtol=1e-14)


def test_gathers_and_reshapes_of_numpy_scalars_use_methods(rng, jit_sources):
  x = rng.standard_normal((6, 5))
  rows, cols = np.array([0, 2, 5, 1, 3, 4, 0]), np.array([4, 0, 1])

  def f(x):
    s = dnp.sum(x[:, cols]) * dnp.max(x)  # a NumPy scalar, reshaped
    return dnp.reshape(s, (1, 1)) * x[rows] + dnp.take(x, cols, axis=1).sum()
  np.testing.assert_allclose(dfdx.jit(f)(x), f(x), rtol=1e-13, atol=1e-14)
  source = jit_sources[-1]
  assert ".take(" in source and "np.take(" not in source, source
  assert "np.reshape(" not in source and "np.asarray(" not in source, source


def test_sums_of_products_along_a_vector_are_dot_products(rng, jit_sources):
  a, v, w = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((4, 3))
  cases = [  # (function, whether it is a dot product)
      (lambda a, v, w: dnp.sum(v * v), True),
      (lambda a, v, w: dnp.sum(a * v, axis=1), True),  # a matrix times a vector
      (lambda a, v, w: dnp.sum(v * a, axis=-1), True),  # the vector first
      (lambda a, v, w: dnp.sum(a * w, axis=1), False),  # rows of two matrices: einsum
      (lambda a, v, w: dnp.sum(a * w[:, :1], axis=0), False),  # not along the last axis
      (lambda a, v, w: dnp.sum(a * w), False),
  ]
  for f, dot in cases:
    np.testing.assert_allclose(dfdx.jit(f)(a, v, w), f(a, v, w), rtol=1e-14)
    source = jit_sources[-1]
    assert ("np.dot(" in source) == dot and ("np.einsum(" in source) != dot, source


def test_vectors_built_from_numpy_scalars_are_one_array_call(rng, jit_sources):
  x = rng.standard_normal(5)

  def f(x):  # a 2 x 2 matrix entry by entry, from traced numbers
    a, b = dnp.sum(x), dnp.max(x)
    m = dnp.reshape(dnp.array([a * b, a - b, b / a, a * a]), (2, 2))
    return m @ x[:2]
  np.testing.assert_allclose(dfdx.jit(f)(x), f(x), rtol=1e-14)
  assert "np.array((" in jit_sources[-1] and "np.concatenate(" not in jit_sources[-1]
  # a Jacobian through it: the tangents' reshapes are not of 0-d values and stay
  np.testing.assert_allclose(dfdx.jit(dfdx.jacfwd(f))(x), dfdx.jacfwd(f)(x), rtol=1e-14)

  def g(x):  # an entry's reshape also an output: the concatenation stays
    a, b = dnp.sum(x), dnp.max(x)
    first = dnp.reshape(a * b, (1,))
    return dnp.concatenate([first, dnp.reshape(a - b, (1,))]), first
  for got, want in zip(dfdx.jit(g)(x), g(x)):
    np.testing.assert_allclose(got, want, rtol=1e-14)
  assert "np.array((" not in jit_sources[-1] and "np.concatenate(" in jit_sources[-1]


def test_entries_of_arrays_are_indexed_as_numpy_scalars(rng, jit_sources):
  th, m = rng.standard_normal(3), rng.standard_normal((2, 3))

  def f(th, m):
    a = th[0] * th[1] - th[2] / m[1, 2]
    return a * a + m[0, 0], th[1:] * a
  for got, want in zip(dfdx.jit(f)(th, m), f(th, m)):
    np.testing.assert_allclose(got, want, rtol=1e-15)
  source = jit_sources[-1]
  assert re.search(r"= v0\[0, \]", source) and re.search(r"= v1\[1, 2, \]", source), source
  assert ".reshape(())" not in source, source
  # the scalar arithmetic on them is written with operators (one ufunc: th[1:] * a)
  assert len(re.findall(r"= v\d+ [-+*/] v\d+", source)) == 5, source
  assert source.count("np.multiply(") == 1, source
  # a standalone function's inputs may be lists: slices of them stay behind np.asarray
  exported = dfdx.export.to_source(lambda th: th[0] * th[1], th, name="g")
  namespace = {}
  exec(exported, namespace)
  assert namespace["g"](th.tolist()) == th[0] * th[1]


def test_a_constant_nonzero_in_a_box_is_added_on_the_box_only(rng, jit_sources):
  x = rng.standard_normal((40, 3, 200))
  c = np.zeros((40, 3, 1))
  c[5:8, :, 0] = np.eye(3)  # forward mode's tangent of a translation: one-hot rows
  dense = rng.standard_normal((40, 3, 1))
  cases = [  # (function, whether the sum is made on the box)
      (lambda x: np.sin(1.0) * dnp.exp(x) + c, True),
      (lambda x: c + dnp.exp(x), True),
      (lambda x: dnp.exp(x) - c, True),
      (lambda x: c - dnp.exp(x), False),  # (the entries outside the box change sign)
      (lambda x: dnp.exp(x) + dense, False),
      (lambda x: dnp.exp(x[:, :, :20]) + c, False),  # little to save
      (lambda x: (dnp.exp(x) + c, dnp.exp(x) * 2.0), False),  # exp(x) read again
  ]
  for f, boxed in cases:
    for got, want in zip(_as_tuple(dfdx.jit(f)(x)), _as_tuple(f(x))):
      np.testing.assert_allclose(got, want, rtol=1e-15)
    assert ("_ufunc_into(" in jit_sources[-1]) == boxed, jit_sources[-1]
  # the standalone source computes it too; the exact compilation (eager reverse passes,
  # which must give the interpreter's bits) adds everywhere
  program = dfdx.make_expr(cases[0][0], optimize=True)(x).program
  namespace = {}
  exec(codegen.program_source(program, "g", single_output=True), namespace)
  np.testing.assert_allclose(namespace["g"](x), cases[0][0](x), rtol=1e-15)
  assert "_ufunc_into(" not in codegen.program_source(program, fuse_reductions=False)


def test_reshape_copies_exactly_where_numpy_copies(rng):
  from dfdx._src.layouts import reshape_copies
  for _ in range(500):
    shape = tuple(rng.choice([1, 2, 3, 4, 6], size=rng.integers(1, 5)))
    x = np.zeros(shape).transpose(rng.permutation(len(shape)))
    if rng.random() < 0.3:
      x = x[..., ::2]
    factors, rest = [], x.size
    for d in (2, 3, 2, 5):
      if rest % d == 0 and rng.random() < 0.6:
        factors.append(d)
        rest //= d
    new_shape = tuple(rng.permutation(factors + [rest]))
    try:
      np.reshape(x, new_shape, copy=False)
      copies = False
    except ValueError:
      copies = True
    strides = tuple(s // x.itemsize for s in x.strides)
    assert reshape_copies(strides, x.shape, new_shape) == copies, (x.shape, strides, new_shape)


def test_a_copying_reshape_read_by_a_ufunc_is_done_after_it(rng, jit_sources):
  x = rng.standard_normal((4, 5, 3))
  transposed = lambda x: dnp.transpose(dnp.sin(x), (0, 2, 1))
  cases = [  # (function, whether the ufunc runs first)
      (lambda x: dnp.exp(dnp.reshape(transposed(x), (4, 15))), True),
      # the transposed value read again after the ufunc: it stays alive until then
      (lambda x: (dnp.exp(dnp.reshape(transposed(x), (4, 15))), transposed(x) * 2.0), True),
      # the reshape read twice: it is made once
      (lambda x: dnp.exp(dnp.reshape(transposed(x), (4, 15))) + dnp.reshape(transposed(x),
                                                                           (4, 15)), False),
      # a reshape that is a view (no axes of the transposed value merged)
      (lambda x: dnp.exp(dnp.reshape(transposed(x), (2, 2, 3, 5))), False),
  ]
  for f, first in cases:
    for got, want in zip(_as_tuple(dfdx.jit(f)(x)), _as_tuple(f(x))):
      np.testing.assert_array_equal(got, want)
    assert ("order='C').reshape(" in jit_sources[-1]) == first, jit_sources[-1]
  # forward mode's Jacobian of a transposed value, negated
  f = lambda th: -dnp.ravel(dnp.transpose(dnp.sin(x * th[0]) * th[1], (0, 2, 1)))
  th = rng.standard_normal(2)
  np.testing.assert_allclose(dfdx.jit(dfdx.jacfwd(f))(th), dfdx.jacfwd(f)(th), rtol=1e-14)
  assert "np.negative(" in jit_sources[-1] and "order='C').reshape(" in jit_sources[-1]


def _as_tuple(out):
  return out if isinstance(out, tuple) else (out,)


def test_layout_model_predicts_numpys_result_layout(rng):
  """`layouts.numpy_order` (the model of codegen's _Layouts and of the eager impls) against
  the strides NumPy gives ufunc results."""
  from dfdx._src import layouts as L
  not_c = 0
  for _ in range(300):
    ndim = int(rng.integers(2, 5))
    shape = tuple(int(n) for n in rng.integers(1, 5, ndim))
    operands = []
    for _ in range(int(rng.integers(1, 3))):
      perm = tuple(int(p) for p in rng.permutation(ndim))
      base = rng.standard_normal(tuple(shape[p] for p in np.argsort(perm)))
      a = base.transpose(perm)
      assert a.shape == shape
      if rng.random() < 0.5:  # broadcast along some axes
        keep = rng.random(ndim) < 0.6
        a = a[tuple(slice(None) if k else slice(0, 1) for k in keep)]
      operands.append(a)
    result = np.negative(operands[0]) if len(operands) == 1 else np.add(*operands)
    if result.shape != shape:
      continue
    axes = [i for i, n in enumerate(shape) if n > 1]
    if len(axes) < 2:
      continue
    strides = [L.broadcast_strides(tuple(s // 8 for s in a.strides), a.shape, shape)
               for a in operands]
    order = L.numpy_order(axes, strides)
    predicted = L.contiguous_in(order, shape)
    actual = tuple(s // 8 for s in result.strides)
    assert all(predicted[i] == actual[i] for i in axes), (shape, [a.strides for a in operands],
                                                         predicted, actual)
    not_c += order != axes[::-1]
  assert not_c > 50  # many of the cases are laid out in an order other than C's


def test_a_transposed_operand_broadcast_with_a_short_inner_axis_is_copied_first(rng,
                                                                                 jit_sources):
  def centered(x, m):  # (k, d, n): the points along the last axis
    return dnp.sum(dnp.tanh(shape_ops.transpose(x, (1, 0))[None, :, :] - m[:, :, None]) ** 2)
  for d, copied in ((2, True), (64, False)):
    x, m = rng.standard_normal((300, d)), rng.standard_normal((3, d))
    jf = dfdx.jit(dfdx.value_and_grad(centered, (0, 1)))
    value, grads = jf(x, m)
    assert ("np.ascontiguousarray(" in jit_sources[-1]) == copied, jit_sources[-1]
    expected_value, expected_grads = dfdx.value_and_grad(centered, (0, 1))(x, m)
    np.testing.assert_allclose(value, expected_value, rtol=1e-13)
    for g, e in zip(grads, expected_grads):
      np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, y_shape, contract", [
    ((3, 3), (26, 3, 544), ((1,), (1,))),          # a matrix applied to axis 1 of a stack
    ((4,), (5, 4, 6), ((0,), (1,))),               # a vector: no free axes in x
    ((2, 3, 4), (5, 3, 4, 6), ((1, 2), (1, 2))),   # two contracted axes
    ((2, 7, 3), (5, 2, 3, 6, 2), ((0, 2), (1, 2))),
])
def test_a_contraction_inside_y_is_a_broadcast_matmul_with_no_copy_of_y(rng, jit_sources,
                                                                        x_shape, y_shape,
                                                                        contract):
  """Where y's contracted axes sit between free ones, np.matmul broadcasts over y's leading
  axes (y is not permuted into a copy); the layout model knows the result is a transposed
  view, and what reads it gets the eager values."""
  from dfdx._src.ops.contraction import dot_general
  x, y = rng.standard_normal(x_shape), rng.standard_normal(y_shape)

  def f(x, y):
    out = dot_general(x, y, (contract, ((), ())))
    return out, dnp.sin(out) * 2.0, dnp.sum(out, axis=-1)
  for a, b in zip(f(x, y), dfdx.jit(f)(x, y)):
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
  # y (v1) goes into np.matmul as it is, at most reshaped (a view)
  assert re.search(r"np\.matmul\(.*, v1(\.reshape\(\([0-9, ]*\)\))?\)", jit_sources[-1]), \
      jit_sources[-1]
  # The layout model's strides of the result are those NumPy gives it (None: C order).
  from dfdx._src import codegen_rules, layouts
  from dfdx._src.core import ShapedArray
  params = {"dimension_numbers": (contract, ((), ()))}
  avals = [ShapedArray(x.shape, x.dtype), ShapedArray(y.shape, y.dtype)]
  out = dot_general(x, y, (contract, ((), ())))
  code = codegen_rules._dot_general_code(["x", "y"], params, avals,
                                         [ShapedArray(out.shape, out.dtype)])
  result = eval(code, {"np": np, "x": x, "y": y})
  modelled = codegen_rules._dot_general_strides(avals, params, None)
  assert (modelled or layouts.c_strides(out.shape)) == tuple(s // 8 for s in result.strides)


def test_a_result_whose_rows_are_taken_is_computed_in_c_order(rng, jit_sources):
  """np.take of rows copies a transposed operand to C order first, one strided row at a time:
  the ufunc before it writes C order instead. Fewer rows taken than there are: no request."""
  x = rng.standard_normal((6, 50))
  for n, asked in ((80, True), (10, False)):
    idx = rng.integers(0, 50, n)
    f = lambda x: dnp.negative(dnp.transpose(x))[idx]
    np.testing.assert_array_equal(dfdx.jit(f)(x), -x.T[idx])
    assert ("order='C'" in jit_sources[-1]) == asked, jit_sources[-1]


def test_integer_literals_of_floating_ufuncs_are_written_as_floats(rng, jit_sources):
  """NumPy resolves a ufunc's loop for a Python int operand more slowly; the float has the
  same value. Integer arithmetic and ldexp's exponent keep their ints."""
  from dfdx._src.ops.sorting import ldexp
  x = rng.standard_normal(5)
  for dtype in (np.float64, np.float32):
    xd = x.astype(dtype)
    out = dfdx.jit(lambda x: 1 - dnp.tanh(x) * 3)(xd)
    assert "np.subtract(1.0, " in jit_sources[-1] and "(1, " not in jit_sources[-1]
    np.testing.assert_array_equal(out, 1 - np.tanh(xd) * 3)
    assert out.dtype == dtype
  n = np.arange(5)
  np.testing.assert_array_equal(dfdx.jit(lambda n: n * 3 - 1)(n), n * 3 - 1)
  assert "1.0" not in jit_sources[-1] and "3.0" not in jit_sources[-1]
  np.testing.assert_array_equal(dfdx.jit(lambda x: ldexp(x, 3))(x), np.ldexp(x, 3))
  # Literals alone (what constant folding leaves to no program) keep their type.
  from dfdx._src.ir import Eqn, Lit, Var
  from dfdx._src.core import all_primitives, ShapedArray
  add = all_primitives["add"]
  both = Eqn(add, [Lit(1), Lit(2)], {}, [Var(ShapedArray((), np.dtype(int)))])
  assert codegen._float_literals(both, ["1", "2"]) == ["1", "2"]


# ---- jit's call path ------------------------------------------------------------------------


def test_calls_with_static_arguments_take_the_fast_path(rng, monkeypatch):
  def f(x, scale, mode):
    return dnp.sum(x * scale) if mode == "sum" else dnp.max(x * scale)
  jf = dfdx.jit(f, static_argnums=(1, 2))
  x = rng.standard_normal(4)
  assert jf(x, 2.0, "sum") == f(x, 2.0, "sum")
  signatures = []
  real = jit_module._Signature
  monkeypatch.setattr(jit_module, "_Signature", lambda *a: signatures.append(a) or real(*a))
  for _ in range(3):
    assert jf(x, 2.0, "sum") == f(x, 2.0, "sum")
  assert not signatures  # served from the fast cache, no flattening nor signature
  assert jf(x, 3.0, "max") == f(x, 3.0, "max")  # another static value: its own entry
  assert jf(x, 3.0, "sum") == f(x, 3.0, "sum")
  assert jf.cache_size() == 3
  assert jf(x, -1, "sum") == f(x, -1, "sum")  # negative static positions count from the end
  jg = dfdx.jit(lambda x, n: dnp.sum(x ** n), static_argnums=-1)
  assert jg(x, 3) == pytest.approx(np.sum(x ** 3)) and jg(x, 2) == pytest.approx(np.sum(x ** 2))
  with pytest.raises(TypeError, match="not hashable"):
    jf(x, [2.0], "sum")
  assert jf({"a": x}["a"], 2.0, "sum") == f(x, 2.0, "sum")
  jt = dfdx.jit(lambda p, k: dnp.sum(p["w"]) * k, static_argnums=1)  # a pytree argument
  assert jt({"w": x}, 2) == 2 * np.sum(x) and jt({"w": x}, 2) == 2 * np.sum(x)


def test_scatter_add_at_constant_indices_is_planned_at_code_generation(rng, jit_sources):
  """The gradient of a gather at constant indices (repeated, negative, along any axis) is a
  scatter_add: planned now, not np.add.at in every call."""
  index = np.array([3, 0, -1, 3, 3, 1, 0])  # 2 never updated; 3 three times; -1 is 4

  for axis, shape in ((0, (5, 3)), (1, (2, 5, 3)), (2, (2, 3, 5))):
    x = rng.standard_normal(shape)
    f = lambda x: dnp.sum(dnp.sin(dnp.take(x, index, axis=axis)) * dnp.arange(7.0).reshape(
        (7,) + (1,) * (x.ndim - axis - 1)))
    g = dfdx.jit(dfdx.grad(f))
    np.testing.assert_array_equal(g(x), dfdx.grad(f)(x))
    assert "_scatter_add_axis(" in jit_sources[-1] and "_scatter(" not in jit_sources[-1]
  # every position updated, many times (sums of 8 or more are pairwise: rounding may differ)
  x = rng.standard_normal((3, 5))
  for idx in (np.array([4, 3, 2, 1, 0, 0, 4]), np.r_[np.arange(5), np.zeros(40, int)]):
    f = lambda x: dnp.sum(dnp.exp(dnp.take(x, idx, axis=1)) * dnp.arange(idx.size))
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(x), dfdx.grad(f)(x), rtol=1e-15)
    assert "_scatter_add_axis(" in jit_sources[-1]
  # onto a nonzero base (x.at[index].add): np.add.at's order of summation is kept
  base, updates = rng.standard_normal((3, 5)), rng.standard_normal((3, 7))
  h = lambda b, u: dnp.at(dnp.exp(b))[:, index].add(u * 2.0)
  np.testing.assert_array_equal(dfdx.jit(h)(base, updates), h(base, updates))
  assert "_scatter(np.add" in jit_sources[-1]
  # the standalone source carries the plan and the helper
  f = lambda x: dnp.sum(dnp.take(x, index, axis=1) ** 2)
  source = dfdx.export.to_source(dfdx.grad(f), base, name="g")
  namespace = {}
  exec(source, namespace)
  np.testing.assert_array_equal(namespace["g"](base), dfdx.grad(f)(base))
  assert "_scatter_add_axis" in source
  # an index array that is not a constant keeps np.add.at
  k = lambda u, i: dnp.at(np.zeros((3, 5)))[:, i].add(u)
  np.testing.assert_array_equal(dfdx.jit(k)(updates, index), k(updates, index))
  assert "_scatter(np.add" in jit_sources[-1]


def test_scatter_add_at_an_index_the_program_receives_is_planned_once(rng, jit_sources):
  """Adding into zeros at an index array that is an input (a reverse pass's, from indexing in
  the forward pass) plans on the first call and keeps the plan while the index's values
  last: np.add.at's values, its IndexError out of bounds, and a standalone source that
  carries every helper it needs."""
  from dfdx._src.ops import indexing as indexing_ops
  k = lambda u, i: dnp.at(np.zeros((3, 600)))[:, i].add(u)
  jk = dfdx.jit(k)
  index = rng.integers(-600, 600, 2000)  # repeated, negative, some positions never updated
  updates = rng.standard_normal((3, 2000))

  def want(i):
    out = np.zeros((3, 600))
    np.add.at(out, (slice(None), i), updates)
    return out
  np.testing.assert_allclose(jk(updates, index), want(index), rtol=1e-13, atol=1e-15)
  assert "_scatter_add_zeros(" in jit_sources[-1]
  index[:10] = 599  # changed in place: the kept plan is not used
  np.testing.assert_allclose(jk(updates, index), want(index), rtol=1e-13, atol=1e-15)
  with pytest.raises(IndexError):
    jk(updates, np.full(2000, 600))
  source = dfdx.export.to_source(k, updates, index, name="k")
  assert all(f"def {h}(" in source for h in
             ("_scatter_add_zeros", "scatter_add_plan", "_scatter_add_axis"))
  namespace = {}
  exec(source, namespace)
  np.testing.assert_allclose(namespace["k"](updates, index), want(index), rtol=1e-13, atol=1e-15)
  # past 65536 positions the stable sort runs in two 16-bit passes
  index = rng.integers(0, 70_000, 5000)
  updates = rng.standard_normal(5000)
  plan = indexing_ops.scatter_add_plan(index, 70_000)
  out = np.zeros(70_000)
  np.add.at(out, index, updates)
  np.testing.assert_allclose(indexing_ops._scatter_add_axis((70_000,), updates, 0, plan), out,
                             rtol=1e-13, atol=1e-15)
  assert np.all(np.diff(plan[0]) > 0) and np.all(np.diff(plan[2]) > 0)  # positions, in order


def test_batched_short_axes_call_the_blocked_impls(rng, jit_sources):
  # (p, 2, 1) * (p, 1, 3) and a sum over 3 trailing entries of (p, 2, 3): compiled code calls
  # the primitives' impls (which avoid NumPy's short inner loops); the results are NumPy's
  # bits; a standalone source calls NumPy.
  x, y = rng.normal(size=(3000, 2, 1)), rng.normal(size=(3000, 1, 3))

  def f(x, y):
    return dnp.sum(x * y, axis=-1), x * y + 1.0
  s, prod = dfdx.jit(f)(x, y)
  source = jit_sources[-1]
  assert "_blocked_multiply(" in source and "_sum_trailing(" in source, source
  np.testing.assert_array_equal(prod, x * y + 1.0)
  np.testing.assert_array_equal(s, np.add.reduce(x * y, axis=-1))
  standalone = dfdx.export.to_source(f, x, y)
  namespace = {}
  exec(standalone, namespace)
  assert "return np.multiply(x, y)" in standalone
  out = [v for k, v in namespace.items() if callable(v) and not k.startswith("_")][0](x, y)
  np.testing.assert_array_equal(out[1], x * y + 1.0)
  np.testing.assert_array_equal(out[0], np.add.reduce(x * y, axis=-1))
  # The standalone helper adds whole slices too, with np.add.reduce's bits (signed zeros
  # included), and leaves non-contiguous input to NumPy.
  sum_trailing = namespace["_sum_trailing"]
  z = np.where(rng.random((500, 4, 3)) < 0.3, -0.0, rng.normal(size=(500, 4, 3)))
  for a, axes in ((z, (2,)), (z, (1, 2)), (z[:, ::2], (2,)), (z.transpose(1, 0, 2), (2,)),
                  (z.astype(np.float32), (2,)), (z[:0], (2,))):
    got, want = sum_trailing(a, axes), np.add.reduce(a, axis=axes)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert not (np.signbit(got) ^ np.signbit(want)).any()
  # small or long-axis results keep plain ufunc calls
  dfdx.jit(lambda a, b: a * b)(rng.normal(size=(10, 2, 1)), rng.normal(size=(10, 1, 3)))
  assert "_blocked_" not in jit_sources[-1]


def test_destinations_write_each_output_into_the_callers_array():
  """codegen's `destinations`: outputs computed into the arrays passed after the inputs."""
  x = np.random.default_rng(0).standard_normal((3, 5))

  def f(x):
    y = dnp.sin(x)
    return (y * 2).T, dnp.concatenate([y, x]), y, x
  program = dfdx.make_expr(f)(x).program
  run = codegen.compile_program(program, "f", destinations=True)
  outs = [np.empty((5, 3)), np.empty((6, 5)), np.empty((3, 5)), np.empty((3, 5))]
  assert run(x, *outs) is None
  for got, expected in zip(outs, f(x)):
    np.testing.assert_array_equal(got, expected)
  assert "out=d0.transpose((1, 0))" in run.__dfdx_source__
  assert "out=d1)" in run.__dfdx_source__


def test_a_checked_value_keeps_its_buffer(rng):
  # a check passes its operand on (weights that sum to zero raise, as NumPy's average does):
  # the checked value is that very array, so no later result may be computed into the
  # buffer while either is live (the jvp of a weighted average was wrong under jit)
  y = rng.normal(size=(3, 4))

  def f(y):
    return dfdx.jvp(lambda v: dnp.average(v, axis=0, weights=dnp.exp(dnp.sin(v))), (y,),
                    (0.7 * dnp.ones_like(y),))
  want = f(y)
  for got in (dfdx.jit(f)(y), _exported(f, y)):
    for a, b in zip(got, want):
      np.testing.assert_allclose(a, b, rtol=1e-13)


def _exported(f, *args):
  namespace = {}
  exec(dfdx.export.to_source(f, *args, name="exported"), namespace)
  return namespace["exported"](*args)
