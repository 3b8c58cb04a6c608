"""The transformations' API: argnums and wrt, has_aux and return_value conventions, pytrees
in and out, Jacobian shapes and nesting, vmap's in_axes/out_axes, and the errors."""
import collections
import dataclasses

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx import tree


def f2(x, y):
  return dnp.sum(x ** 2 * y)


X = np.array([1.0, 2.0, 3.0])
Y = np.array([0.5, -1.0, 2.0])


# ---- argnums and wrt ----------------------------------------------------------------------

def test_argnums_int_tuple_and_negative():
  np.testing.assert_allclose(dfdx.grad(f2)(X, Y), 2 * X * Y)
  gx, gy = dfdx.grad(f2, argnums=(0, 1))(X, Y)
  np.testing.assert_allclose(gx, 2 * X * Y)
  np.testing.assert_allclose(gy, X ** 2)
  np.testing.assert_allclose(dfdx.grad(f2, argnums=-1)(X, Y), X ** 2)
  (gy_only,) = dfdx.grad(f2, argnums=(1,))(X, Y)
  np.testing.assert_allclose(gy_only, X ** 2)


def test_wrt_names_positional_and_keyword_calls():
  def loss(x, y):
    return x ** 2 * y
  dx = dfdx.grad(loss, wrt="x")
  assert dx(x=1.0, y=1.0) == 2.0
  assert dx(1.0, 3.0) == 6.0
  assert dx(1.0, y=3.0) == 6.0
  assert dfdx.grad(loss, wrt="x,y")(1.0, 1.0) == (2.0, 1.0)
  assert dfdx.grad(loss, wrt=("y", "x"))(x=2.0, y=1.0) == (4.0, 4.0)
  assert dfdx.grad(loss, wrt="y")(2.0, y=5.0) == 4.0


def test_wrt_with_default_argument():
  def f(x, scale=3.0):
    return scale * x ** 2
  assert dfdx.grad(f, wrt="scale")(2.0) == 4.0
  assert dfdx.grad(f, wrt="x")(2.0, scale=1.0) == 4.0


def test_argnums_out_of_range_is_a_clear_error():
  with pytest.raises(dfdx.ArgnumsError, match=r"argnums=2 is out of range.*2 positional"):
    dfdx.grad(f2, argnums=2)(X, Y)
  with pytest.raises(dfdx.ArgnumsError, match="argnums must be an int"):
    dfdx.grad(f2, argnums="x")
  with pytest.raises(ValueError, match="out of range"):  # ArgnumsError is a ValueError
    dfdx.jacrev(f2, argnums=(0, 5))(X, Y)


def test_wrt_unknown_name_is_a_clear_error():
  with pytest.raises(dfdx.ArgnumsError, match=r"wrt names 'z'.*parameters \(x, y\)"):
    dfdx.grad(f2, wrt="z")
  with pytest.raises(dfdx.ArgnumsError, match="not both"):
    dfdx.grad(f2, argnums=1, wrt="x")


# ---- return conventions -----------------------------------------------------------------

def aux_fun(x):
  return dnp.sum(x ** 2), {"double": 2 * x}


def test_grad_return_conventions():
  g = dfdx.grad(aux_fun, has_aux=True)(X)
  assert isinstance(g, tuple) and len(g) == 2
  np.testing.assert_allclose(g[0], 2 * X)
  np.testing.assert_allclose(g[1]["double"], 2 * X)
  g, v = dfdx.grad(f2, return_value=True)(X, Y)
  np.testing.assert_allclose(g, 2 * X * Y)
  assert v == f2(X, Y)
  g, v, aux = dfdx.grad(aux_fun, has_aux=True, return_value=True)(X)
  assert v == np.sum(X ** 2)
  np.testing.assert_allclose(aux["double"], 2 * X)


def test_aux_holds_plain_arrays_not_tracers():
  _, aux = dfdx.grad(aux_fun, has_aux=True)(X)
  assert type(aux["double"]) is np.ndarray


def test_value_and_grad_conventions():
  v, g = dfdx.value_and_grad(f2)(X, Y)
  assert v == f2(X, Y)
  np.testing.assert_allclose(g, 2 * X * Y)
  (v, aux), g = dfdx.value_and_grad(aux_fun, has_aux=True)(X)
  assert v == np.sum(X ** 2)
  np.testing.assert_allclose(aux["double"], 2 * X)


def test_has_aux_requires_a_pair():
  with pytest.raises(TypeError, match=r"has_aux=True requires.*pair"):
    dfdx.grad(lambda x: x ** 2, has_aux=True)(1.0)


def test_jacobian_and_hessian_return_conventions():
  def f(x):
    return x ** 2, dnp.sum(x)
  jac, value, aux = dfdx.jacobian(f, has_aux=True, return_value=True)(X)
  np.testing.assert_allclose(jac, np.diag(2 * X))
  np.testing.assert_allclose(value, X ** 2)
  assert aux == X.sum()
  for jac_fn in (dfdx.jacfwd, dfdx.jacrev):
    jac, value = jac_fn(lambda x: x ** 3, return_value=True)(X)
    np.testing.assert_allclose(jac, np.diag(3 * X ** 2))
    np.testing.assert_allclose(value, X ** 3)
  hess, value, aux = dfdx.hessian(lambda x: (dnp.sum(x ** 3), x), has_aux=True,
                                  return_value=True)(X)
  np.testing.assert_allclose(hess, np.diag(6 * X))
  assert value == np.sum(X ** 3)
  np.testing.assert_allclose(aux, X)


# ---- scalars, dtypes and outputs ----------------------------------------------------------

def test_python_scalars_in_numpy_scalars_out():
  g = dfdx.grad(lambda x: x ** 2)(3.0)
  assert type(g) is np.float64 and g == 6.0
  g = dfdx.grad(lambda x: x ** 2)(np.float64(3.0))
  assert type(g) is np.float64
  g = dfdx.grad(lambda x: x ** 2)(np.array(3.0))
  assert type(g) is np.ndarray and g.shape == ()


def test_integer_inputs_get_float_derivatives():
  g = dfdx.grad(lambda x: dnp.sum(x ** 3 + x))(np.array([[1, 1], [2, 3], [5, 8]]))
  assert g.dtype == np.float64
  np.testing.assert_array_equal(g, [[4, 4], [13, 28], [76, 193]])
  assert dfdx.grad(lambda x: x * x)(3) == 6.0


def test_float32_stays_float32():
  x = np.ones(3, np.float32)
  g = dfdx.grad(lambda x: dnp.sum(dnp.sin(x) * 2.0))(x)
  assert g.dtype == np.float32


def test_gradients_are_writable_arrays():
  g = dfdx.grad(lambda x: dnp.sum(x))(np.ones((2, 3)))
  g[0, 0] = 5.0
  assert g.flags.writeable


def test_non_scalar_output_error_names_shape_and_alternatives():
  with pytest.raises(dfdx.NonScalarOutputError, match=r"float64\[3\].*vector_grad.*jacobian"):
    dfdx.grad(lambda x: x * 2)(X)
  with pytest.raises(TypeError, match="must return a scalar"):
    dfdx.grad(lambda x: (dnp.sum(x), dnp.sum(x)))(X)


def test_non_numeric_arguments_are_clear_errors():
  with pytest.raises(dfdx.NonDifferentiableInputError, match=r"argument 0.*str"):
    dfdx.grad(lambda s: 1.0)("text")
  with pytest.raises(dfdx.NonDifferentiableInputError, match="boolean"):
    dfdx.grad(lambda b: 1.0)(np.array([True, False]))
  with pytest.raises(dfdx.NonDifferentiableInputError, match=r"argument 'y' at \['k'\]"):
    dfdx.grad(lambda x, y: x, wrt="y")(1.0, {"k": "v"})


# ---- pytrees ------------------------------------------------------------------------------

Point = collections.namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Params:
  w: np.ndarray
  b: float
  name: str = "layer"


class Vec:
  """PhiML's convention: __value_attrs__ lists the differentiated attributes."""

  def __init__(self, x1, x2, label="v"):
    self.x1, self.x2, self.label = x1, x2, label

  def __value_attrs__(self):
    return ("x1", "x2")


class Pair:
  def __init__(self, a, b):
    self.a, self.b = a, b


tree.register_pytree_node(Pair, lambda p: ((p.a, p.b), None), lambda _, ch: Pair(*ch))


def test_grad_of_containers_keeps_structure_and_type():
  g = dfdx.grad(lambda p: dnp.sum(p[0] ** 2) + p[1][0] * p[1][1])((X, [2.0, 3.0]))
  assert isinstance(g, tuple) and isinstance(g[1], list)
  np.testing.assert_allclose(g[0], 2 * X)
  assert g[1] == [3.0, 2.0]
  g = dfdx.grad(lambda d: d["a"] * d["b"] + (0.0 if d["none"] is None else 1.0))(
      {"b": 2.0, "a": 5.0, "none": None})
  assert g == {"a": 2.0, "b": 5.0, "none": None}
  g = dfdx.grad(lambda p: p.x * p.y ** 2)(Point(3.0, 2.0))
  assert type(g) is Point and g == Point(4.0, 12.0)


def test_grad_of_dataclass_without_registration():
  p = Params(np.array([1.0, 2.0]), 3.0)
  g = dfdx.grad(lambda p: dnp.sum(p.w ** 2) * p.b)(p)
  assert type(g) is Params and g.name == "layer"
  np.testing.assert_allclose(g.w, 2 * p.w * p.b)
  assert g.b == np.sum(p.w ** 2)


def test_grad_of_class_with_value_attrs_carries_other_attributes():
  v = Vec(1.0, 2.0, label="mine")
  g = dfdx.grad(lambda v: v.x1 ** 4 / 2 + v.x2 ** 4 / 2)(v)
  assert type(g) is Vec and g.label == "mine"
  assert (g.x1, g.x2) == (2.0, 16.0)


def test_grad_of_registered_node():
  g = dfdx.grad(lambda p: p.a * p.b)(Pair(2.0, 5.0))
  assert type(g) is Pair and (g.a, g.b) == (5.0, 2.0)


def test_jvp_vjp_linearize_with_pytrees():
  def f(p):
    return {"s": p["a"] * p["b"], "t": p["a"] ** 2}
  primals = ({"a": 2.0, "b": 3.0},)
  out, t = dfdx.jvp(f, primals, ({"a": 1.0, "b": 0.0},))
  assert out == {"s": 6.0, "t": 4.0} and t == {"s": 3.0, "t": 4.0}
  out, vjp_fn = dfdx.vjp(f, *primals)
  (ct,) = vjp_fn({"s": 1.0, "t": 1.0})
  assert ct == {"a": 7.0, "b": 2.0}
  out, jvp_fn = dfdx.linearize(f, *primals)
  assert jvp_fn({"a": 0.0, "b": 1.0}) == {"s": 2.0, "t": 0.0}


def test_vjp_and_jvp_check_structures_and_shapes():
  _, vjp_fn = dfdx.vjp(lambda x: (x, x), X)
  with pytest.raises(dfdx.PytreeError, match="expected tuple"):
    vjp_fn([X, X])
  with pytest.raises(ValueError, match=r"cotangent at \[1\] has shape \(2,\)"):
    vjp_fn((X, np.ones(2)))
  with pytest.raises(ValueError, match=r"tangent at \[0\] has shape"):
    dfdx.jvp(lambda x: x, (X,), (np.ones(2),))
  with pytest.raises(TypeError, match="primals must be a tuple or list"):
    dfdx.jvp(lambda x: x, X, X)


def test_jvp_and_vjp_with_has_aux():
  out, t, aux = dfdx.jvp(lambda x: (x ** 2, "aux"), (3.0,), (1.0,), has_aux=True)
  assert (out, t, aux) == (9.0, 6.0, "aux")
  out, vjp_fn, aux = dfdx.vjp(lambda x: (x ** 2, x + 1), 3.0, has_aux=True)
  assert vjp_fn(1.0) == (6.0,) and aux == 4.0


# ---- Jacobians and Hessians ------------------------------------------------------------

def test_jacobian_shapes_are_out_shape_plus_in_shape():
  x = np.random.rand(2, 3)
  f = lambda x: dnp.sin(x)[..., None] * np.ones(4)  # (2, 3, 4)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    j = jac(f)(x)
    assert j.shape == (2, 3, 4, 2, 3)
    expected = np.einsum("ij,jk,ia,l->ijlak", np.cos(x), np.eye(3), np.eye(2), np.ones(4))
    np.testing.assert_allclose(j, expected)


def test_jacobian_nests_output_tree_of_input_trees():
  def f(x, y):
    return {"p": x * y[0], "q": dnp.sum(x) + y[1]}
  x, y = np.array([1.0, 2.0]), (3.0, 4.0)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    j = jac(f, argnums=(0, 1))(x, y)
    assert set(j) == {"p", "q"}
    jx, (jy0, jy1) = j["p"]
    np.testing.assert_allclose(jx, 3 * np.eye(2))
    np.testing.assert_allclose(jy0, x)
    assert jy1.shape == (2,) and not jy1.any()
    jx, (jy0, jy1) = j["q"]
    np.testing.assert_allclose(jx, [1.0, 1.0])
    assert (jy0, jy1) == (0.0, 1.0)


def test_jacobian_auto_mode_agrees_with_both_modes():
  wide = lambda x: dnp.sum(dnp.sin(x)) * dnp.asarray([x[0], x[1]])  # 5 inputs -> 2 outputs
  tall = lambda x: dnp.exp(x[0]) * dnp.ones(7)                       # 5 inputs -> 7 outputs
  x = np.linspace(0.1, 1.0, 5)
  for f in (wide, tall):
    expected = dfdx.jacfwd(f)(x)
    np.testing.assert_allclose(dfdx.jacobian(f)(x), expected)
    np.testing.assert_allclose(dfdx.jacrev(f)(x), expected)
    np.testing.assert_allclose(dfdx.jacobian(f, mode="rev")(x), expected)
    np.testing.assert_allclose(dfdx.jacobian(f, mode="fwd")(x), expected)
  with pytest.raises(ValueError, match="mode must be"):
    dfdx.jacobian(wide, mode="sideways")


def test_hessian_closed_form_and_symmetry():
  A = np.array([[2.0, 1.0], [1.0, 3.0]])
  quad = lambda x: dnp.sum(x * (A[0] * x[0] + A[1] * x[1])) / 2  # x^T A x / 2
  np.testing.assert_allclose(dfdx.hessian(quad)(np.array([0.3, -0.7])), A)
  g = lambda x: dnp.sum(dnp.sin(x) * dnp.exp(x[0]))
  x = np.array([0.1, 0.5, 0.9])
  h = dfdx.hessian(g)(x)
  np.testing.assert_allclose(h, h.T, atol=1e-12)
  closed = np.diag(-np.sin(x)) * np.exp(x[0])
  closed[0, :] += np.cos(x) * np.exp(x[0])
  closed[:, 0] += np.cos(x) * np.exp(x[0])
  closed[0, 0] += np.sum(np.sin(x)) * np.exp(x[0])
  np.testing.assert_allclose(h, closed, rtol=1e-12)


def test_hvp_matches_hessian_times_vector():
  f = lambda x: dnp.sum(dnp.exp(x) * x[0] ** 2)
  x, v = np.array([0.2, 0.4, 0.6]), np.array([1.0, -1.0, 2.0])
  np.testing.assert_allclose(dfdx.hvp(f, (x,), (v,)), dfdx.hessian(f)(x) @ v)
  hx, hy = dfdx.hvp(lambda x, y: x ** 2 * y ** 3, (2.0, 3.0), (1.0, 0.0))
  assert (hx, hy) == (2 * 27.0, 6 * 2.0 * 9.0)


def test_vector_grad_is_elementwise_derivative():
  a, b = np.arange(5.0), np.random.rand(5)
  f = lambda a, b: dnp.sin(b) * a
  np.testing.assert_allclose(dfdx.vector_grad(f)(a, b), np.sin(b))
  ga, gb = dfdx.vector_grad(f, argnums=(0, 1))(a, b)
  np.testing.assert_allclose(gb, np.cos(b) * a)
  g, value = dfdx.vector_grad(lambda x: (x ** 2, x ** 3), return_value=True)(X)
  np.testing.assert_allclose(g, 2 * X + 3 * X ** 2)
  np.testing.assert_allclose(value[1], X ** 3)


# ---- vmap -----------------------------------------------------------------------------------

def test_vmap_in_axes_variants():
  xs = np.random.rand(4, 3)
  w = np.random.rand(3)
  f = lambda x, w: dnp.sum(x * w)
  expected = xs @ w
  np.testing.assert_allclose(dfdx.vmap(f, in_axes=(0, None))(xs, w), expected)
  np.testing.assert_allclose(dfdx.vmap(f, in_axes=(1, None))(xs.T, w), expected)
  np.testing.assert_allclose(dfdx.vmap(f, in_axes=(-1, None))(xs.T, w), expected)
  np.testing.assert_allclose(dfdx.vmap(f, in_axes=[0, None])(xs, w), expected)
  g = lambda d: dnp.sum(d["x"] * d["w"])
  np.testing.assert_allclose(dfdx.vmap(g, in_axes=({"x": 0, "w": None},))({"x": xs, "w": w}),
                             expected)


def test_vmap_out_axes_and_unbatched_outputs():
  xs = np.random.rand(4, 3)
  out = dfdx.vmap(lambda x: x * 2, out_axes=1)(xs)
  np.testing.assert_allclose(out, (xs * 2).T)
  a, b = dfdx.vmap(lambda x: (x, 1.0), out_axes=(0, None))(xs)
  np.testing.assert_allclose(a, xs)
  assert b == 1.0
  c = dfdx.vmap(lambda x: np.ones(2))(xs)  # an unbatched output is broadcast
  assert c.shape == (4, 2)
  with pytest.raises(ValueError, match="out_axes is None.*mapped"):
    dfdx.vmap(lambda x: x, out_axes=None)(xs)


def test_nested_vmap_and_kwargs():
  x = np.random.rand(2, 3)
  y = np.random.rand(3)
  out = dfdx.vmap(dfdx.vmap(lambda a, b: a * b, in_axes=(0, 0)), in_axes=(0, None))(x, y)
  np.testing.assert_allclose(out, x * y)
  out = dfdx.vmap(lambda a, scale: a * scale)(x, scale=np.array([1.0, 2.0]))
  np.testing.assert_allclose(out, x * np.array([[1.0], [2.0]]))


def test_vmap_axis_size_without_mapped_inputs():
  out = dfdx.vmap(lambda: np.float64(1.0), axis_size=3)()
  np.testing.assert_allclose(out, np.ones(3))
  with pytest.raises(ValueError, match="axis_size"):
    dfdx.vmap(lambda x: x, in_axes=None)(1.0)


def test_vmap_mismatched_sizes_is_a_clear_error():
  with pytest.raises(dfdx.AxisSizeError, match=r"size 3: argument 0.*size 4: argument 1"):
    dfdx.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))
  with pytest.raises(ValueError, match="in_axes has 1 entries but .* 2 positional"):
    dfdx.vmap(lambda a, b: a + b, in_axes=(0,))(np.ones(3), np.ones(3))
  with pytest.raises(ValueError, match="axis 0 of the argument at argument 0.*rank 0"):
    dfdx.vmap(lambda a: a)(1.0)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 100])
def test_vmap_chunk_size_gives_the_same_result(chunk_size):
  # 5 examples in chunks (the last one shorter where 5 is not a multiple), pytrees, in_axes
  # and out_axes, an unmapped output, keywords, under jit and grad
  rng = np.random.default_rng(0)
  xs, w = rng.normal(size=(3, 5)), rng.normal(size=3)

  def f(x, d, scale=1.0):
    return {"y": dnp.tanh(x * d["w"]) * scale, "n": 2.0, "s": dnp.sum(x) * d["b"]}
  args = (xs, {"w": w, "b": np.arange(5.0)})
  kw = {"in_axes": (1, {"w": None, "b": 0}), "out_axes": {"y": 1, "n": None, "s": 0}}
  expected = dfdx.vmap(f, **kw)(*args, scale=np.full(5, 0.5))
  for run in (lambda g: g, dfdx.jit):
    got = run(dfdx.vmap(f, **kw, chunk_size=chunk_size))(*args, scale=np.full(5, 0.5))
    tree.tree_map(lambda a, b: np.testing.assert_array_equal(a, b), got, expected)
  loss = lambda w, c: dnp.sum(dfdx.vmap(lambda x: dnp.sin(x * w), in_axes=1,  # noqa: E731
                                        chunk_size=c)(xs) ** 2)
  np.testing.assert_allclose(dfdx.grad(loss)(w, chunk_size), dfdx.grad(loss)(w, None),
                             rtol=1e-14)
  out = dfdx.vmap(lambda: np.float64(1.0), axis_size=5, chunk_size=chunk_size)()
  np.testing.assert_array_equal(out, np.ones(5))
  assert dfdx.vmap(lambda x: x * 2, chunk_size=chunk_size)(np.ones((0, 2))).shape == (0, 2)


def test_chunks_under_jit_are_one_loop():
  # compiled, the chunks after the first run as one scan: the program does not grow with
  # their number, and the values are those without chunks, also differentiated and batched
  def f(x):
    return dnp.sin(x) * dnp.cumsum(x) ** 2 + dnp.exp(dnp.mean(x))
  x = np.linspace(0.0, 1.0, 23)

  def size(k):
    text = str(dfdx.make_expr(dfdx.jacrev(f, chunk_size=k))(x))
    return text.count("\n"), text.count("scan[")
  assert size(1)[1] == 1 and size(2) == size(3) == size(4)  # (23 = 11 * 2 + 1 = 7 * 3 + 2 ...)
  expected = dfdx.jacrev(f)(x)
  for k in (1, 5, 7):
    for jac in (dfdx.jacrev, dfdx.jacfwd):
      np.testing.assert_allclose(dfdx.jit(jac(f, chunk_size=k))(x), expected, rtol=1e-14)
    # reverse mode through a chunked vmap, and a chunked vmap inside another vmap
    loss = lambda x: dnp.sum(dfdx.vmap(lambda a: dnp.sin(a) * x, chunk_size=k)(x) ** 2)  # noqa: E731
    np.testing.assert_allclose(dfdx.jit(dfdx.grad(loss))(x), dfdx.grad(loss)(x), rtol=1e-13)
    outer = dfdx.vmap(dfdx.vmap(lambda a, b: a * b + 1, in_axes=(None, 0), chunk_size=3),
                      in_axes=(0, None), chunk_size=k)
    np.testing.assert_array_equal(dfdx.jit(outer)(x, x[:10]), x[:, None] * x[:10] + 1)
  # no mapped input: the examples of axis_size
  np.testing.assert_array_equal(
      dfdx.jit(lambda s: dfdx.vmap(lambda: s * 2, axis_size=7, chunk_size=2)())(3.0),
      np.full(7, 6.0))


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 1000])
def test_jacobians_chunk_size_give_the_same_result(chunk_size):
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(2, 3)), rng.normal(size=4)

  def f(x, y):
    return {"a": dnp.tanh(dnp.outer(x.ravel(), y)), "b": dnp.sum(x) * y[:2]}, dnp.sum(y)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    expected = jac(f, argnums=(0, 1), has_aux=True, return_value=True)(x, y)
    for run in (lambda g: g, dfdx.jit):
      got = run(jac(f, argnums=(0, 1), has_aux=True, return_value=True,
                    chunk_size=chunk_size))(x, y)
      tree.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15),
                    got, expected)
  g = lambda x: dnp.sum(dnp.tanh(dnp.outer(x, x)) ** 2)  # noqa: E731
  np.testing.assert_allclose(dfdx.hessian(g, chunk_size=chunk_size)(y), dfdx.hessian(g)(y),
                             rtol=1e-13)
  np.testing.assert_allclose(
      dfdx.jacobian(lambda x: x[:2] * x[1:3], mode="fwd", chunk_size=chunk_size)(y),
      dfdx.jacobian(lambda x: x[:2] * x[1:3])(y))


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True, "4"])
def test_chunk_size_errors(chunk_size):
  message = f"chunk_size must be None or a positive integer, got {chunk_size!r}"
  for transform, name in ((dfdx.vmap, "vmap"), (dfdx.jacrev, "jacrev"), (dfdx.hessian, "hessian")):
    with pytest.raises(ValueError, match=f"{name}: {message}"):
      transform(dnp.sin, chunk_size=chunk_size)


def test_jacobians_under_vmap_with_batched_primal_outputs():
  i = np.arange(6.0).reshape(2, 3)
  v = np.array([1.0, 2.0, 3.0])
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    out = dfdx.vmap(lambda i, v: jac(lambda v: v * i)(v), in_axes=(0, None))(i, v)
    np.testing.assert_allclose(out, np.stack([np.diag(row) for row in i]))


def test_per_example_gradients():
  w = np.array([0.5, -0.2, 0.1])
  xs = np.random.rand(6, 3)
  ys = np.random.rand(6)
  loss = lambda w, x, y: (dnp.sum(w * x) - y) ** 2
  per_example = dfdx.vmap(dfdx.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)
  stacked = np.stack([dfdx.grad(loss)(w, x, y) for x, y in zip(xs, ys)])
  np.testing.assert_allclose(per_example, stacked)
  closed = 2 * (xs @ w - ys)[:, None] * xs
  np.testing.assert_allclose(per_example, closed)


# ---- the contract's edges (an audit of DESIGN.md's conventions) -----------------------------

def test_an_argument_chosen_twice_is_an_error_not_a_zero():
  g = lambda x, y: x ** 2 * y  # noqa: E731
  for transform in (dfdx.grad, dfdx.jacrev, dfdx.hessian, dfdx.value_and_grad,
                    dfdx.vector_grad):
    with pytest.raises(dfdx.ArgnumsError, match=r"argnums=\(0, 0\) chooses the same"):
      transform(g, argnums=(0, 0))(3.0, 2.0)
    with pytest.raises(dfdx.ArgnumsError, match=r"argnums=\(0, -2\) chooses the same"):
      transform(g, argnums=(0, -2))(3.0, 2.0)
    with pytest.raises(dfdx.ArgnumsError, match="names a parameter more than once"):
      transform(g, wrt="x,x")
  assert dfdx.grad(g, argnums=(0, 1))(3.0, 2.0) == (12.0, 9.0)
  with pytest.raises(dfdx.ArgnumsError, match=r"not both \(got argnums=0 and wrt='y'\)"):
    dfdx.grad(g, argnums=0, wrt="y")


def test_scalar_outputs_are_numpy_scalars_whatever_computed_them():
  cases = [
      dfdx.jvp(lambda t: t, (3.0,), (1.0,)),
      dfdx.jvp(lambda t: 5.0, (3.0,), (1.0,)),
      dfdx.jvp(lambda t: np.asarray(5.0), (3.0,), (1.0,)),
      (dfdx.linearize(lambda t: t, 3.0)[0], dfdx.linearize(lambda t: t, 3.0)[1](1.0)),
      (dfdx.vjp(lambda t: t, 3.0)[0],),
      (dfdx.value_and_grad(lambda t: 5.0)(3.0)[0],),
      dfdx.jacrev(lambda t: 5.0, return_value=True)(3.0),
      dfdx.grad(lambda t: (t * t, t), has_aux=True)(3.0),
  ]
  for outputs in cases:
    for out in outputs:
      assert type(out) is np.float64, cases
  assert [float(x) for x in cases[0] + cases[1]] == [3.0, 1.0, 5.0, 0.0]
  # arrays stay arrays
  out, tangent = dfdx.jvp(lambda t: t, (np.ones(2),), (np.ones(2),))
  assert type(out) is np.ndarray and type(tangent) is np.ndarray


def test_holomorphic_needs_complex_arguments():
  f = lambda z: 1j * z ** 3  # noqa: E731
  for transform in (dfdx.grad, dfdx.jacrev, dfdx.jacfwd):
    with pytest.raises(TypeError, match="holomorphic=True differentiates with respect to "
                       "complex arguments, but a differentiated argument has dtype float64"):
      transform(f, holomorphic=True)(2.0)
    assert transform(f, holomorphic=True)(2.0 + 0j) == 12j


def test_tangents_and_cotangents_of_a_lossy_or_foreign_dtype_are_errors():
  x = np.array([1.0, 2.0])
  lossy = r"the (co)?tangent at (\[0\]|\(root\)) has dtype complex128, but the value it pairs with is float64"
  with pytest.raises(TypeError, match=lossy):
    dfdx.jvp(dnp.sin, (x,), (np.array([1j, 1j]),))
  with pytest.raises(TypeError, match=lossy):
    dfdx.linearize(dnp.sin, x)[1](np.array([1j, 1j]))
  with pytest.raises(TypeError, match=lossy):
    dfdx.vjp(dnp.sin, x)[1](np.array([1j, 1j]))
  with pytest.raises(TypeError, match="has dtype <U2"):
    dfdx.jvp(dnp.sin, (x,), ("ab",))
  # real tangents of other real dtypes are converted; real ones of complex values too
  np.testing.assert_allclose(dfdx.jvp(dnp.sin, (x,), (np.array([1, 2]),))[1], np.cos(x) * [1, 2])
  z = x + 1j
  np.testing.assert_allclose(dfdx.jvp(dnp.sin, (z,), (np.ones(2),))[1], np.cos(z))


def test_a_jacobian_has_its_input_dtype_in_either_mode():
  c = np.array([1.0, 2.0])
  h = lambda x: x * c  # noqa: E731  (float64 output)
  x32 = np.ones(2, np.float32)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    assert jac(h)(x32).dtype == np.float32
  assert dfdx.jacobian(lambda x: dnp.sum(h(x)))(x32).dtype == np.float32
  # a float32 output of a float64 input: float64 either way
  for jac in (dfdx.jacfwd, dfdx.jacrev):
    out = jac(lambda x: dnp.asarray(x, np.float32) * 2)(np.ones(2))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, 2 * np.eye(2))


def test_vmap_axes_of_the_wrong_type_name_the_argument():
  x = np.ones((2, 2))
  for kwargs, what, got in (({"in_axes": 0.5}, "in_axes", "0.5"), ({"in_axes": "0"}, "in_axes", "'0'"),
                            ({"out_axes": "0"}, "out_axes", "'0'"),
                            ({"in_axes": (True,)}, "in_axes", "True")):
    with pytest.raises(TypeError, match=f"vmap: {what} entries must be ints .* got {got}"):
      dfdx.vmap(lambda a: a, **kwargs)(x)
  with pytest.raises(ValueError, match="out_axes must be .* a pytree prefix of the output"):
    dfdx.vmap(lambda a: (a, a), out_axes=(0, 0, 0))(x)


def test_errors_inside_hessian_and_hvp_name_them():
  with pytest.raises(TypeError, match="^hessian: has_aux=True requires .* returned an array float64\[\]"):
    dfdx.hessian(lambda x: dnp.sum(x), has_aux=True)(np.ones(2))
  with pytest.raises(dfdx.NonDifferentiableInputError, match="^hessian: "):
    dfdx.hessian(lambda x: x * 1.0)(True)
  with pytest.raises(TypeError, match="^hessian: the Jacobian of <lambda> is not defined"):
    dfdx.hessian(lambda z: dnp.real(z * z))(1 + 2j)
  with pytest.raises(dfdx.NonScalarOutputError, match="^hvp: <lambda> must return a scalar"):
    dfdx.hvp(lambda x: x * 2, (np.ones(2),), (np.ones(2),))
  with pytest.raises(ValueError, match=r"^hvp: the tangent at \[0\] has shape \(3,\)"):
    dfdx.hvp(lambda x: dnp.sum(x ** 3), (np.ones(2),), (np.ones(3),))
  np.testing.assert_allclose(dfdx.hvp(lambda x: dnp.sum(x ** 3), (np.ones(2),), (np.ones(2),)),
                             [6.0, 6.0])
  with pytest.raises(dfdx.ConcretizationError, match="traced by differentiation"):
    dfdx.grad(lambda a: float(a) ** 2)(3.0)


def test_a_module_as_grad_vars_means_its_trainable_variables():
  class Model(dfdx.Module):
    def __init__(self):
      super().__init__()
      self.w = dfdx.TrainVar(np.array([1.0, 2.0]))
      self.count = dfdx.Variable(np.array(0.0))

  model = Model()
  loss = lambda x: dnp.sum(model.w.value * x) + model.count.value  # noqa: E731
  got = dfdx.grad(loss, grad_vars=model)(np.array([3.0, 4.0]))
  expected = dfdx.grad(loss, grad_vars=model.train_vars())(np.array([3.0, 4.0]))
  assert list(got) == list(expected) == [f"{model.name}.w"]
  np.testing.assert_array_equal(got[f"{model.name}.w"], [3.0, 4.0])
  with pytest.raises(TypeError, match=r"grad_vars holds a Module \(Model\) inside a container"):
    dfdx.grad(loss, grad_vars=[model])(np.ones(2))


def test_vector_grad_refuses_complex_outputs_as_grad_does():
  with pytest.raises(TypeError, match="vector_grad: <lambda> returned a complex value"):
    dfdx.vector_grad(lambda z: z * z)(np.array([1 + 2j]))


def test_a_function_returning_nothing_is_described_plainly():
  with pytest.raises(dfdx.NonScalarOutputError, match="returned None"):
    dfdx.grad(lambda x: None)(1.0)
