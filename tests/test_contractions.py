"""dfdx.numpy's contractions (dot, matmul, vdot, inner, outer, tensordot, einsum, trace,
diagonal, diag, tril, triu, kron) against NumPy on their traced path, their derivatives
against finite differences, vmap against stacked calls, and NumPy's errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.checks import AbstractEvalChecker, assert_same_array


def traced(fun, *args):
  """fun(*args) on dfdx's traced path (not NumPy's fast path), with every primitive's
  abstract eval checked against its impl."""
  return AbstractEvalChecker().run(fun, args)[0]


def _args(rng, shapes, dtype=np.float64):
  return tuple(np.asarray(rng.uniform(0.3, 2.0, s) * rng.choice([-1, 1], s), dtype)
               for s in shapes)


def case(name, shapes, **kw):
  label = "-".join("x".join(map(str, s)) or "scalar" for s in shapes)
  extra = ",".join(f"{k}={v}" for k, v in kw.items())
  return pytest.param(name, shapes, kw, id=f"{name}[{label}]{'(' + extra + ')' if extra else ''}")


CASES = [
    case("dot", [(), ()]), case("dot", [(3,), ()]), case("dot", [(3,), (3,)]),
    case("dot", [(2, 3), (3,)]), case("dot", [(3,), (3, 4)]), case("dot", [(2, 3), (3, 4)]),
    case("dot", [(2, 3, 4), (5, 4, 2)]), case("dot", [(0, 3), (3, 2)]),
    case("dot", [(2, 0), (0, 3)]),
    case("matmul", [(3,), (3,)]), case("matmul", [(2, 3), (3,)]),
    case("matmul", [(3,), (3, 4)]), case("matmul", [(2, 3), (3, 4)]),
    case("matmul", [(5, 2, 3), (3, 4)]), case("matmul", [(2, 3), (5, 3, 4)]),
    case("matmul", [(3,), (5, 3, 4)]), case("matmul", [(5, 2, 3), (3,)]),
    case("matmul", [(5, 2, 3), (5, 3, 4)]), case("matmul", [(5, 1, 2, 3), (4, 3, 2)]),
    case("matmul", [(0, 2, 3), (3, 4)]), case("matmul", [(2, 0), (0, 3)]),
    case("vdot", [(3,), (3,)]), case("vdot", [(2, 3), (3, 2)]), case("vdot", [(), ()]),
    case("vdot", [(0,), (0,)]),
    case("inner", [(), (3,)]), case("inner", [(3,), (3,)]), case("inner", [(2, 3), (4, 3)]),
    case("inner", [(2, 3), (3,)]), case("inner", [(0, 3), (2, 3)]),
    case("outer", [(3,), (4,)]), case("outer", [(2, 3), (2,)]), case("outer", [(), (3,)]),
    case("outer", [(0,), (3,)]),
    case("tensordot", [(2, 3, 4), (3, 4, 5)]), case("tensordot", [(2, 3), (3, 4)], axes=1),
    case("tensordot", [(2,), (3,)], axes=0),
    case("tensordot", [(2, 3), (3, 2)], axes=([1, 0], [0, 1])),
    case("tensordot", [(2, 3), (3, 4)], axes=(1, 0)),
    case("tensordot", [(2, 3, 4), (4, 2)], axes=([-1, 0], [0, -1])),
    case("tensordot", [(0, 3), (3, 2)], axes=1),
    case("trace", [(3, 3)]), case("trace", [(2, 4)], offset=1),
    case("trace", [(3, 2, 4)], offset=-1, axis1=1, axis2=2),
    case("trace", [(4, 3, 2)], axis1=2, axis2=0), case("trace", [(0, 0)]),
    case("trace", [(2, 3)], offset=5),
    case("diagonal", [(3, 3)]), case("diagonal", [(2, 4)], offset=1),
    case("diagonal", [(4, 2)], offset=-1), case("diagonal", [(2, 3, 4)], axis1=2, axis2=0),
    case("diagonal", [(2, 3, 4)], offset=2, axis1=-1, axis2=1),
    case("diagonal", [(0, 3)]), case("diagonal", [(2, 3)], offset=-3),
    case("diag", [(3,)]), case("diag", [(3,)], k=1), case("diag", [(3,)], k=-2),
    case("diag", [(1,)]), case("diag", [(0,)], k=2), case("diag", [(3, 4)]),
    case("diag", [(3, 4)], k=1), case("diag", [(3, 4)], k=-1),
    case("tril", [(3, 3)]), case("tril", [(2, 3, 4)], k=1), case("tril", [(4, 3)], k=-1),
    case("tril", [(3,)]), case("tril", [(0, 3)]),
    case("triu", [(3, 3)]), case("triu", [(2, 3, 4)], k=1), case("triu", [(4, 3)], k=-1),
    case("triu", [(3,)]), case("triu", [(0, 3)]),
    case("kron", [(2,), (3,)]), case("kron", [(2, 3), (2, 2)]), case("kron", [(), (3,)]),
    case("kron", [(2, 3), (4,)]), case("kron", [(2, 1, 2), (3, 2)]), case("kron", [(0, 2), (2,)]),
]


@pytest.mark.parametrize("name,shapes,kw", CASES)
def test_matches_numpy(name, shapes, kw, rng):
  args = _args(rng, shapes)
  expected = getattr(np, name)(*args, **kw)
  assert_same_array(traced(lambda *a: getattr(dnp, name)(*a, **kw), *args), expected,
                    rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,shapes,kw", CASES)
def test_grads(name, shapes, kw, rng):
  check_grads(lambda *a: getattr(dnp, name)(*a, **kw), _args(rng, shapes), order=2, rng=rng)


@pytest.mark.parametrize("name", ["dot", "matmul", "inner", "tensordot", "kron", "vdot"])
@pytest.mark.parametrize("dtypes", [(np.int8, np.int8), (np.int64, np.float32),
                                    (np.float32, np.float64), (np.float32, np.float32),
                                    (np.bool_, np.bool_)], ids=str)
def test_dtypes_follow_numpy(name, dtypes, rng):
  shapes = {"dot": [(2, 3), (3, 2)], "matmul": [(4, 2, 3), (3, 2)], "inner": [(2, 3), (3,)],
            "tensordot": [(2, 3), (2, 3)], "kron": [(2,), (3,)], "vdot": [(3,), (3,)]}[name]
  args = [np.asarray(rng.integers(0, 3, s)).astype(d) for s, d in zip(shapes, dtypes)]
  assert_same_array(traced(getattr(dnp, name), *args), getattr(np, name)(*args))


@pytest.mark.parametrize("name", ["dot", "inner", "kron", "outer"])
def test_python_scalar_operand_is_strongly_typed_as_in_numpy(name):
  x = np.arange(3, dtype=np.float32)
  assert_same_array(traced(lambda a: getattr(dnp, name)(a, 2.0), x), getattr(np, name)(x, 2.0))


def test_untraced_calls_are_numpy():
  a, b = np.ones((2, 3)), np.ones((3, 4))
  assert type(dnp.dot(a, b)) is np.ndarray
  assert dnp.matmul(a, b).shape == (2, 4)
  assert float(dnp.einsum("ij,jk->", a, b)) == 24.0


# ---- einsum -----------------------------------------------------------------------------------
EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("i,i", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]),
    ("ij,kl->ijkl", [(2, 1), (3, 2)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iii->i", [(2, 2, 2)]),
    ("iij->j", [(3, 3, 2)]),
    ("ji", [(2, 3)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("bij,bjk->bik", [(4, 2, 3), (4, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
    ("...i,...i", [(2, 3), (3,)]),
    ("i...->...", [(2, 3, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 4), (4, 5), (5, 2)]),
    ("i,i,i->", [(3,), (3,), (3,)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 3), (2, 3)]),
    ("ijk,jil->kl", [(2, 3, 4), (3, 2, 5)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->ij", [(2, 3), (1, 3)]),
    (",ij->ij", [(), (2, 3)]),
    ("Ab,bC->AC", [(2, 3), (3, 2)]),
    ("ij,jk", [(2, 0), (0, 3)]),
    ("ij,jk->ik", [(0, 3), (3, 2)]),
    ("ij,jk,ki->", [(2, 3), (3, 4), (4, 2)]),
    ("ab,cd,bd->ac", [(2, 3), (4, 5), (3, 5)]),
]


@pytest.mark.parametrize("subscripts,shapes", EINSUM, ids=[s or "scalar" for s, _ in EINSUM])
def test_einsum_matches_numpy(subscripts, shapes, rng):
  args = _args(rng, shapes)
  assert_same_array(traced(lambda *a: dnp.einsum(subscripts, *a), *args),
                    np.einsum(subscripts, *args), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("subscripts,shapes", EINSUM, ids=[s or "scalar" for s, _ in EINSUM])
def test_einsum_grads(subscripts, shapes, rng):
  check_grads(lambda *a: dnp.einsum(subscripts, *a), _args(rng, shapes), order=2, rng=rng)


def test_einsum_interleaved_form_and_integer_dtypes(rng):
  a, b = _args(rng, [(2, 3), (3, 4)])
  assert_same_array(traced(lambda x, y: dnp.einsum(x, [0, 1], y, [1, Ellipsis], [0, Ellipsis]),
                           a, b), np.einsum(a, [0, 1], b, [1, Ellipsis], [0, Ellipsis]))
  m = np.arange(9, dtype=np.int8).reshape(3, 3) * 20
  for subscripts in ("ii->i", "ij->", "ij,jk->ik"):
    ops = (m,) * subscripts.split("->")[0].count(",") + (m,)
    assert_same_array(traced(lambda *x: dnp.einsum(subscripts, *x), *ops),
                      np.einsum(subscripts, *ops))


def test_einsum_uses_greedy_pairwise_order(rng, monkeypatch):
  from dfdx._src.ops import contraction as con
  shapes = []
  original = con.dot_general

  def spy(x, y, dimension_numbers):
    shapes.append((np.shape(x), np.shape(y)))
    return original(x, y, dimension_numbers)
  monkeypatch.setattr(con, "dot_general", spy)
  a, b, v = _args(rng, [(20, 20), (20, 20), (20,)])
  traced(lambda *ops: dnp.einsum("ij,jk,k->i", *ops), a, b, v)
  assert shapes == [((20, 20), (20,)), ((20, 20), (20,))]  # b @ v first: no matrix product


# Products that are not matrix products: batch dims and nothing summed (a broadcast multiply),
# batch and contracting dims only (batched dot products, by np.einsum on the operands as laid
# out). (x shape, y shape, dimension_numbers, the impl's form)
ELEMENTWISE_PRODUCTS = [
    ((4, 5, 6), (4, 6), (((), ()), ((0, 2), (0, 1))), "mul"),
    ((3, 4, 5), (5, 3, 2), (((), ()), ((0, 2), (1, 0))), "mul"),
    ((3, 4), (4, 3), (((), ()), ((0, 1), (1, 0))), "mul"),
    ((6, 2, 7), (6, 2, 7), (((1,), (1,)), ((0, 2), (0, 2))), "einsum"),
    ((2, 3, 4), (3, 2, 4), (((2,), (2,)), ((1, 0), (0, 1))), "einsum"),
    ((5, 3, 2), (2, 5, 3), (((1, 2), (2, 0)), ((0,), (1,))), "einsum"),
    ((0, 3), (0, 3), (((1,), (1,)), ((0,), (0,))), "einsum"),
    ((4, 0, 2), (4, 0, 2), (((2,), (2,)), ((0, 1), (0, 1))), "einsum"),
    ((0, 3), (0,), (((), ()), ((0,), (0,))), "mul"),
]


@pytest.mark.parametrize("xs,ys,dims,form", ELEMENTWISE_PRODUCTS)
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32),
                                    (np.int8, np.int8), (np.int32, np.float32), (bool, bool),
                                    (np.complex128, np.float64)])
def test_dot_general_forms_that_are_not_matrix_products(xs, ys, dims, form, dtypes, rng):
  """The impl's broadcast multiply and batched np.einsum: NumPy's values and dtypes (int8
  wraps as matmul's does), the same form in compiled code, and derivatives."""
  from dfdx._src.ops import contraction as con
  (xc, yc), (xb, yb) = dims
  x = (rng.uniform(-3, 3, xs) * 40).astype(dtypes[0])
  y = (rng.uniform(-3, 3, ys) * 40).astype(dtypes[1])
  assert con._dot_plan(xs, ys, dims)[0] == form
  letters = "abcdefgh"
  xsub, ysub = letters[:len(xs)], list(letters[len(xs):len(xs) + len(ys)])
  for i, j in zip(xc + xb, yc + yb):
    ysub[j] = xsub[i]
  free = [xsub[i] for i in range(len(xs)) if i not in xc + xb] + \
      [ysub[j] for j in range(len(ys)) if j not in yc + yb]
  out = "".join(xsub[i] for i in xb) + "".join(free)
  want = np.einsum(f"{xsub},{''.join(ysub)}->{out}", x, y).astype(np.result_type(x, y))
  got = traced(lambda a, b: con.dot_general(a, b, dims), x, y)
  assert_same_array(got, want)
  assert_same_array(dfdx.jit(lambda a, b: con.dot_general(a, b, dims))(x, y), got)
  if dtypes[0] == np.float64 and all(xs) and all(ys):
    check_grads(lambda a, b: con.dot_general(a, b, dims), (x / 40, y / 40), order=2)


def test_batched_dot_products_are_not_batched_matrix_products(rng, monkeypatch):
  """sum(a * b, axis) written as einsum: one np.einsum forward, broadcast multiplies back,
  and no matmul (which would first copy the operands with their batch dims outermost)."""
  y = rng.standard_normal((5, 4, 30))
  calls = []
  real = np.matmul
  monkeypatch.setattr(np, "matmul", lambda *a, **k: calls.append(1) or real(*a, **k))
  f = lambda y: dnp.sum(dnp.exp(-dnp.einsum("kdn,kdn->kn", y, y)))
  value, grad = dfdx.value_and_grad(f)(y)
  e = np.exp(-np.einsum("kdn,kdn->kn", y, y))
  np.testing.assert_allclose(value, e.sum(), rtol=1e-14)
  np.testing.assert_allclose(grad, -2 * e[:, None, :] * y, rtol=1e-14)
  jv, jg = dfdx.jit(dfdx.value_and_grad(f))(y)
  np.testing.assert_allclose(jg, grad, rtol=1e-14)
  assert not calls


# ---- the @ operator with traced values on either side ------------------------------------------
def test_matmul_operator_with_numpy_arrays_on_either_side(rng):
  a, x, b, m = _args(rng, [(2, 3), (3, 4), (4, 3), (3, 3)])
  check_grads(lambda x: a @ x, (x,), order=2, rng=rng)
  check_grads(lambda x: x @ b, (x,), order=2, rng=rng)
  check_grads(lambda m: m @ m @ m, (m,), order=2, rng=rng)
  check_grads(lambda x: [1.0, 2.0] @ (a @ x), (x,), order=1, rng=rng)
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(a @ x))(x), a.T @ np.ones((2, 4)))
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(x @ b))(x), np.ones((3, 3)) @ b.T)
  out = dfdx.vmap(lambda x: a @ x)(np.stack([x, 2 * x]))
  assert_same_array(out, np.stack([a @ x, a @ (2 * x)]), rtol=1e-12)


def test_matmul_methods_on_traced_values(rng):
  a, b = _args(rng, [(3, 3), (3, 2)])
  assert_same_array(traced(lambda x, y: x.dot(y), a, b), a.dot(b))
  assert_same_array(traced(lambda x: x.trace(offset=1), a), a.trace(offset=1))
  assert_same_array(traced(lambda x: x.diagonal(), a), a.diagonal())
  assert_same_array(traced(lambda x, y: np.matmul(x, y), a, b), a @ b)
  assert_same_array(traced(lambda x, y: np.einsum("ij,jk", x, y), a, b), a @ b, rtol=1e-12)


# ---- vmap against stacked calls -------------------------------------------------------------
VMAP = [
    ("dot", [(2, 3), (3, 4)], (0, 0)), ("dot", [(2, 3), (3, 4)], (1, None)),
    ("dot", [(2, 3), (3,)], (None, 0)), ("matmul", [(5, 2, 3), (3, 4)], (2, 0)),
    ("matmul", [(2, 3), (5, 3, 4)], (None, 1)), ("matmul", [(3,), (3,)], (0, None)),
    ("tensordot", [(2, 3, 4), (3, 4, 5)], (2, 0)), ("outer", [(2,), (3,)], (0, 0)),
    ("trace", [(3, 4)], (1,)), ("diagonal", [(3, 4, 2)], (2,)), ("diag", [(3,)], (0,)),
    ("diag", [(3, 3)], (1,)), ("triu", [(3, 4)], (0,)), ("kron", [(2,), (2, 3)], (None, 1)),
]


@pytest.mark.parametrize("name,shapes,in_axes", VMAP)
def test_vmap_matches_stacked_calls(name, shapes, in_axes, rng):
  fun = getattr(dnp, name)
  examples = [_args(rng, shapes) for _ in range(3)]
  batched = [examples[0][i] if ax is None else np.stack([e[i] for e in examples], ax)
             for i, ax in enumerate(in_axes)]
  expected = np.stack([fun(*[e[i] if ax is not None else examples[0][i]
                             for i, ax in enumerate(in_axes)]) for e in examples])
  assert_same_array(dfdx.vmap(fun, in_axes=in_axes)(*batched), expected, rtol=1e-12)


def test_vmap_einsum_and_jacobians_agree(rng):
  a, b, c = _args(rng, [(2, 3), (3, 4), (4, 2)])
  f = lambda x: dnp.einsum("ij,jk,kl->il", x, b, c)  # noqa: E731
  stacked = np.stack([a, 2 * a, -a])
  assert_same_array(dfdx.vmap(f)(stacked), np.stack([f(x) for x in stacked]), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacfwd(f)(a), dfdx.jacrev(f)(a), rtol=1e-12)
  # d(x b c)[i, l] / dx[a, k] = delta(i, a) (b c)[k, l]
  np.testing.assert_allclose(dfdx.jacrev(f)(a), np.einsum("ia,kl->ilak", np.eye(2), b @ c),
                             rtol=1e-12)


# ---- errors -----------------------------------------------------------------------------------
def _numpy_message(fun, *args):
  with pytest.raises(Exception) as info:
    fun(*args)
  return str(info.value)


@pytest.mark.parametrize("name,shapes", [
    ("matmul", [(2, 3), (4, 2)]), ("matmul", [(3,), (4,)]), ("matmul", [(2, 3), (4,)]),
    ("matmul", [(), (3,)]), ("matmul", [(3,), ()]), ("dot", [(2, 3), (4, 2)]),
    ("dot", [(3,), (4,)]), ("dot", [(5, 2, 3), (6, 4, 2)]), ("inner", [(2, 3), (4,)])])
def test_shape_mismatch_raises_numpys_error(name, shapes):
  args = [np.ones(s) for s in shapes]
  message = _numpy_message(getattr(np, name), *args)
  with pytest.raises(ValueError) as info:
    traced(getattr(dnp, name), *args)
  assert str(info.value) == message


def test_shape_mismatch_messages():
  with pytest.raises(ValueError, match=r"mismatch in its core dimension 0.*size 4 is different "
                     r"from 3"):
    traced(lambda x: x @ np.ones((4, 2)), np.ones((2, 3)))
  with pytest.raises(ValueError, match=r"shapes \(2,3\) and \(4,2\) not aligned"):
    traced(dnp.dot, np.ones((2, 3)), np.ones((4, 2)))
  with pytest.raises(ValueError, match="shape-mismatch for sum"):
    traced(lambda x: dnp.tensordot(x, np.ones((4, 2)), 1), np.ones((2, 3)))
  with pytest.raises(ValueError, match="same number of elements"):
    traced(dnp.vdot, np.ones(3), np.ones(4))
  with pytest.raises(ValueError, match="Input must be 1- or 2-d"):
    traced(dnp.diag, np.ones((2, 2, 2)))
  with pytest.raises(ValueError, match="axis1 and axis2 cannot be the same"):
    traced(lambda x: dnp.trace(x, axis1=1, axis2=-1), np.ones((2, 2)))


@pytest.mark.parametrize("subscripts,shapes,match", [
    ("ij,jk", [(2, 3), (3, 4), (4,)], "name 2 operands but 3 were given"),
    ("i1", [(2, 3)], "invalid subscript '1'"),
    ("ijk", [(2, 3)], "has 3 indices but the operand has 2 dims"),
    ("ij->k", [(2, 3)], "output index 'k' appears in no input"),
    ("ij->ii", [(3, 3)], "output repeats an index"),
    ("...i->i", [(2, 3)], "output has no '...'"),
    ("ij,jk", [(2, 3), (4, 5)], "index 'j' has size 4 in operand 1 but 3"),
    ("i..j", [(2, 3)], "stray '.'"),
    ("...i...", [(2, 3)], "more than one ellipsis"),
])
def test_bad_einsum_subscripts(subscripts, shapes, match):
  with pytest.raises(ValueError, match=match):
    traced(lambda *a: dnp.einsum(subscripts, *a), *[np.ones(s) for s in shapes])


def test_einsum_of_mixed_dtypes_computes_in_their_common_dtype():
  # (two float32 operands were contracted first in float32: 1.6e-8 off a float64 result)
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=s).astype(np.float32) for s in ((3, 4), (4, 5)))
  c = rng.normal(size=(5, 2))
  exact = a.astype(float) @ b.astype(float) @ c
  for f in (lambda a, b, c: dnp.einsum("ij,jk,kl->il", a, b, c), None):
    f = f or dfdx.jit(lambda a, b, c: dnp.einsum("ij,jk,kl->il", a, b, c))
    out = f(a, b, c)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, exact, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtypes,kw", [
    ((np.float64,), dict(dtype=np.float32)), ((np.int32,), dict(dtype=np.float32)),
    ((np.float64,), dict(dtype=np.float32, casting="same_kind")),
    ((np.float64,), dict(dtype=np.int32, casting="same_kind")),
    ((np.float64,), dict(dtype=np.int32, casting="unsafe")),
    ((np.int32,), dict(dtype=np.float64)), ((np.float32, np.float64), dict(casting="no")),
    ((np.float32, np.float64), dict(casting="equiv")), ((np.float32, np.float64), {}),
    ((np.float64,), dict(dtype=np.float64, casting="no")),
    ((np.float64,), dict(casting="bogus")),
], ids=str)
def test_einsum_dtype_follows_numpys_casting_rule(dtypes, kw):
  # NumPy casts each operand to `dtype` (or their common dtype) under `casting`, 'safe' by
  # default, and raises where the rule forbids it
  args = [np.arange(1.0, 7.0).reshape(2, 3).astype(d) for d in dtypes]
  subscripts = ",".join(["ij"] * len(args)) + "->i"
  np_fun = lambda *a: np.einsum(subscripts, *a, **kw)  # noqa: E731
  dnp_fun = lambda *a: dnp.einsum(subscripts, *a, **kw)  # noqa: E731
  try:
    want = np_fun(*args)
  except (TypeError, ValueError) as e:
    for f in (dfdx.jit(dnp_fun), dfdx.vmap(dnp_fun)):
      with pytest.raises(type(e), match=str(e).replace("(", r"\(").replace(")", r"\)")):
        f(*args)
    return
  assert_same_array(dfdx.jit(dnp_fun)(*args), want)
  assert_same_array(dfdx.vmap(dnp_fun)(*[a[None] for a in args])[0], want)
