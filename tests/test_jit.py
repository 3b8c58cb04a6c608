"""Programs, make_expr, jit, the passes and code generation."""
import collections
import logging
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import codegen, passes
from dfdx._src.ir import eval_program, typecheck_program
from dfdx._src.ops import shape as shape_ops


def f(x):
  return dnp.sum(dnp.sin(x) * x)


X = np.linspace(0.1, 1.0, 5)


# ---- make_expr ------------------------------------------------------------------------------

def test_make_expr_listing_has_typed_inputs_equations_and_outputs():
  expr = dfdx.make_expr(f)(X)
  text = str(expr)
  assert text.splitlines()[0] == "{ lambda a:float64[5]. let"
  assert "= sin a" in text and "reduce_sum[axes=(0,)]" in text
  assert text.splitlines()[-1].startswith("  in (")
  assert repr(expr) == text
  assert len(text.splitlines()) == len(expr.eqns) + 2


def test_make_expr_of_compositions():
  for transform in (dfdx.grad, dfdx.hessian, lambda g: dfdx.vmap(dfdx.grad(g))):
    xs = X if transform is not None else None
    arg = np.stack([X, X]) if transform not in (dfdx.grad, dfdx.hessian) else X
    expr = dfdx.make_expr(transform(f))(arg)
    typecheck_program(expr.program)
    np.testing.assert_allclose(expr(arg), transform(f)(arg), rtol=1e-13)
    del xs


def test_grad_of_sin_optimizes_to_cos_alone():
  raw = dfdx.make_expr(dfdx.grad(dnp.sin))(1.0)
  # (grad makes the Python float a NumPy value, as it does eagerly: the cast)
  assert [e.prim.name for e in raw.eqns] == ["convert_element_type", "sin", "cos", "mul"]
  optimized = dfdx.make_expr(dfdx.grad(dnp.sin), optimize=True)(1.0)
  assert [e.prim.name for e in optimized.eqns] == ["cos"]  # (seed 001's dead sin, the cast)
  assert type(dfdx.jit(dfdx.grad(dnp.sin))(1.0)) is np.float64


def test_program_evaluation_equals_the_function_and_is_differentiable_again():
  expr = dfdx.make_expr(dfdx.grad(f))(X)
  np.testing.assert_allclose(eval_program(expr.program, X)[0], dfdx.grad(f)(X), rtol=1e-14)
  second = dfdx.jacfwd(lambda x: eval_program(expr.program, x)[0])(X)
  np.testing.assert_allclose(second, dfdx.hessian(f)(X), rtol=1e-12)
  np.testing.assert_allclose(dfdx.grad(lambda x: dnp.sum(expr(x)))(X),
                             dfdx.grad(lambda x: dnp.sum(dfdx.grad(f)(x)))(X), rtol=1e-12)


def test_programs_pass_the_type_checker_after_every_pass():
  program = dfdx.make_expr(dfdx.hessian(f))(X).program
  for p in (passes.fold_constants, passes.simplify, passes.cse, passes.dce, passes.optimize):
    program = p(program)
    typecheck_program(program)


# ---- passes -----------------------------------------------------------------------------

def test_dead_code_elimination():
  expr = dfdx.make_expr(lambda x: (dnp.exp(x), dnp.sin(x))[1], optimize=True)(X)
  assert [e.prim.name for e in expr.eqns] == ["sin"]


def test_common_subexpression_elimination():
  expr = dfdx.make_expr(lambda x: dnp.sin(x) * dnp.sin(x) + dnp.sin(x), optimize=True)(X)
  assert [e.prim.name for e in expr.eqns].count("sin") == 1


def test_constant_folding():
  c = np.arange(3.0)
  expr = dfdx.make_expr(lambda x: x * dfdx._src.ops.elementwise.exp(c), optimize=True)(X[:3])
  assert [e.prim.name for e in expr.eqns] == ["mul"]


def test_simplifications_of_ones_zeros_negations_and_transposes():
  expr = dfdx.make_expr(lambda x: -(-(x * 1.0 + 0.0)) / 1.0, optimize=True)(X)
  assert expr.eqns == []
  flip = lambda x: shape_ops.transpose(x, (1, 0))
  expr = dfdx.make_expr(lambda x: flip(flip(x)), optimize=True)(np.ones((2, 3)))
  assert expr.eqns == []


# ---- jit ------------------------------------------------------------------------------------

def test_jit_matches_eager_and_caches_per_signature():
  jf = dfdx.jit(f)
  np.testing.assert_allclose(jf(X), f(X), rtol=1e-15)
  jf(X + 1.0)
  assert jf.cache_size() == 1
  jf(np.ones(4))
  jf(np.ones(4, np.float32))
  jf(2.0)
  assert jf.cache_size() == 4


def test_jit_compile_ahead_of_time_traces_once_and_runs_nothing():
  traces = []

  def loss(x, n, scale=1.0):
    traces.append(x.shape)  # (the Python body runs only while tracing)
    return scale * dnp.sum(x ** n)
  jf = dfdx.jit(dfdx.grad(loss), static_argnums=1, static_argnames="scale")
  assert jf.compile(X, 3, scale=2.0) is jf
  assert traces == [X.shape] and jf.cache_size() == 1
  np.testing.assert_allclose(jf(X + 1.0, 3, scale=2.0), 6.0 * (X + 1.0) ** 2, rtol=1e-14)
  assert traces == [X.shape] and jf.cache_size() == 1  # the compiled code ran, no retrace
  jf(X, 2, scale=2.0)  # another static value: another signature
  assert len(traces) == 2 and jf.cache_size() == 2
  jf.compile(np.ones((2, 3)), 3, scale=2.0)
  jf.compile(np.ones((2, 3)), 3, scale=2.0)  # (already compiled: nothing to do)
  assert len(traces) == 3 and jf.cache_size() == 3
  np.testing.assert_allclose(jf(np.full((2, 3), 2.0), 3, scale=2.0), np.full((2, 3), 24.0))
  assert len(traces) == 3


def test_jit_compile_inside_a_transformation_is_a_clear_error():
  jf = dfdx.jit(f)
  with pytest.raises(TypeError,
                     match=r"jit\(f\)\.compile: .*traced values.*concrete arguments"):
    dfdx.grad(lambda x: jf.compile(x) and 0.0)(X)
  assert jf.cache_size() == 0


def test_jit_compositions():
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(X), dfdx.grad(f)(X), rtol=1e-14)
  np.testing.assert_allclose(dfdx.grad(dfdx.jit(f))(X), dfdx.grad(f)(X), rtol=1e-14)
  np.testing.assert_allclose(dfdx.jacfwd(dfdx.jit(dfdx.grad(f)))(X), dfdx.hessian(f)(X),
                             rtol=1e-12)
  xs = np.stack([X, 2 * X])
  np.testing.assert_allclose(dfdx.vmap(dfdx.jit(f))(xs), [f(X), f(2 * X)], rtol=1e-14)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(dfdx.grad(f)))(xs),
                             np.stack([dfdx.grad(f)(X), dfdx.grad(f)(2 * X)]), rtol=1e-14)


def test_jit_with_pytrees_keywords_and_aux():
  def loss(params, x, scale=1.0):
    return scale * dnp.sum((params["w"] * x + params["b"]) ** 2), {"x": x}
  params = {"w": np.array([1.0, -2.0]), "b": 0.5}
  g = dfdx.jit(dfdx.grad(loss, has_aux=True))
  (grads, aux) = g(params, np.array([0.3, 0.4]), scale=2.0)
  expected, _ = dfdx.grad(loss, has_aux=True)(params, np.array([0.3, 0.4]), scale=2.0)
  np.testing.assert_allclose(grads["w"], expected["w"])
  np.testing.assert_allclose(grads["b"], expected["b"])
  np.testing.assert_array_equal(aux["x"], [0.3, 0.4])


def test_jit_static_arguments():
  def power_sum(x, n):
    out = x
    for _ in range(n - 1):  # Python control flow on a static value
      out = out * x
    return dnp.sum(out)
  jf = dfdx.jit(power_sum, static_argnums=1)
  assert jf(X, 3) == pytest.approx(np.sum(X ** 3))
  assert jf(X, n=2) == pytest.approx(np.sum(X ** 2))
  jg = dfdx.jit(power_sum, static_argnames="n")
  assert jg(X, 4) == pytest.approx(np.sum(X ** 4))
  with pytest.raises(TypeError, match="not hashable"):
    dfdx.jit(lambda x, n: x, static_argnums=1)(X, [1, 2])


def test_jit_checks_static_arguments_against_the_signature():
  def f(a, n):
    return a * n
  with pytest.raises(dfdx.ArgnumsError,
                     match=r"jit\(f\): static_argnums=3 is out of range: f\(a, n\) takes 2 "
                           r"positional arguments.*positions 0 to 1.*static_argnames"):
    dfdx.jit(f, static_argnums=3)
  with pytest.raises(dfdx.ArgnumsError, match=r"static_argnums=-3 is out of range"):
    dfdx.jit(f, static_argnums=(0, -3))
  with pytest.raises(TypeError, match=r"jit\(f\): static_argnums must be an int or a sequence "
                                      r"of ints.*got '1' of type str.*static_argnames='1'"):
    dfdx.jit(f, static_argnums="1")
  with pytest.raises(TypeError, match=r"got \[0, 'n'\], which holds 'n' of type str"):
    dfdx.jit(f, static_argnums=[0, "n"])
  with pytest.raises(TypeError, match=r"static_argnames must be a string.*got 1 of type int.*"
                                      r"static_argnums=1"):
    dfdx.jit(f, static_argnames=1)
  with pytest.raises(dfdx.ArgnumsError, match=r"static_argnames='q' is not a parameter of "
                                              r"f\(a, n\).*\('a', 'n'\)"):
    dfdx.jit(f, static_argnames="q")
  def g(a, /, n):
    return a * n
  with pytest.raises(dfdx.ArgnumsError, match=r"'a' names a positional-only parameter of "
                                              r"g\(a, /, n\).*static_argnums=0"):
    dfdx.jit(g, static_argnames="a")
  with pytest.raises(dfdx.ArgnumsError, match=r"make_expr\(f\): static_argnums=2"):
    dfdx.make_expr(f, static_argnums=2)


def test_jit_static_arguments_of_variadic_functions_are_not_range_checked():
  # (as in JAX: *args may hold any position, **kwargs any name)
  def f(x, *sizes, **options):
    out = x
    for n in sizes:
      out = out * n
    return out * options.get("scale", 1)
  jf = dfdx.jit(f, static_argnums=(1, 2, 5), static_argnames="scale")
  assert jf(X, 2, 3, scale=2) == pytest.approx(X * 12)
  assert jf(X, 2) == pytest.approx(X * 2)


def test_jit_control_flow_on_traced_value_names_line_and_fixes():
  def relu_sum(x):
    if dnp.sum(x) > 0:  # the offending line
      return dnp.sum(x)
    return 0.0
  with pytest.raises(dfdx.ConcretizationError,
                     match=r"test_jit\.py:\d+ \(relu_sum\).*dfdx\.numpy\.where.*static_argnums"):
    dfdx.jit(relu_sum)(X)


def test_jit_explains_retraces(caplog):
  jf = dfdx.jit(lambda x, scale: dnp.asarray(x) * scale, static_argnums=1, explain=True)
  with caplog.at_level(logging.WARNING, logger="dfdx.jit"):
    jf(np.ones(3), 2.0)
    jf(np.ones(4), 2.0)
    jf(np.ones(4, np.float32), 2.0)
    jf(np.ones(4, np.float32), 3.0)
    jf([np.ones(4, np.float32)], 3.0)
  messages = [r.getMessage() for r in caplog.records]
  assert len(messages) == 4
  assert "argument 0: shape (3,) -> (4,)" in messages[0]
  assert "dtype float64 -> float32" in messages[1]
  assert "static argument argument 1: 2.0 -> 3.0" in messages[2]
  assert "structure of the arguments changed" in messages[3]


def test_jit_rejects_non_array_arguments_with_a_fix():
  with pytest.raises(TypeError, match="static_argnums or static_argnames"):
    dfdx.jit(lambda x, mode: x)(X, "fast")


# ---- code generation ----------------------------------------------------------------------

def test_generated_code_is_flat_numpy_with_buffer_reuse():
  expr = dfdx.make_expr(dfdx.grad(lambda x: dnp.sum(dnp.tanh(x) * dnp.exp(x) * x)),
                        optimize=True)(X)
  source = expr.to_source()
  body = [line.strip() for line in source.splitlines() if line.startswith("    ")]
  assert all(re.match(r"(v\d+(, )?)+ = np\.|return|del v\d+", line) for line in body), source
  assert "dfdx" not in source
  assert "out=" in source


def test_generated_code_frees_temporaries_after_their_last_use():
  expr = dfdx.make_expr(dfdx.grad(lambda x: dnp.sum(dnp.tanh(x) * dnp.exp(x) * x)),
                        optimize=True)(X)
  body = [line.strip() for line in expr.to_source().splitlines() if line.startswith("    ")]
  deleted = [n for line in body if line.startswith("del ") for n in line[4:].split(", ")]
  assigned = {n for line in body if " = " in line for n in line.split(" = ")[0].split(", ")}
  returned = set(body[-1][len("return ("):-1].rstrip(",").split(", "))
  assert set(deleted) == assigned - returned  # every temporary, once
  assert len(deleted) == len(set(deleted))
  for k, line in enumerate(body):  # none is read after its deletion
    for name in (line[4:].split(", ") if line.startswith("del ") else []):
      assert not any(re.search(rf"\b{name}\b", later) for later in body[k + 1:]), name


def test_buffer_reuse_never_writes_into_inputs_or_views():
  def g(x):
    y = shape_ops.reshape(x, (5,))  # a view of the input
    z = dnp.exp(y)
    return z + dnp.sin(z) + y       # y must stay intact
  x = np.linspace(0, 1, 5)
  before = x.copy()
  out = dfdx.jit(g)(x)
  np.testing.assert_array_equal(x, before)
  np.testing.assert_allclose(out, np.exp(x) + np.sin(np.exp(x)) + x)


def test_buffer_reuse_spares_the_inputs_a_loop_or_branch_may_return():
  """A scan, cond or while_loop may return its input array itself: that array's buffer,
  and views of the result, must not take a later result."""
  xs, a = np.arange(4.0), np.ones(3)

  def loop(xs, a):
    b = a * 0.5  # a fresh buffer
    c, _ = dfdx.scan(lambda c, x: (c, c * x), b, xs)  # c is b itself
    t = c[::-1]  # a view of it, read after b's last use
    return c, b + a, t * 1.0 + a

  def branch(p, a):
    b = a * 0.5
    c = dfdx.cond(p > 0, lambda x: x, lambda x: x * 2.0, b)
    return c, b + a

  def while_(a):
    b = a * 0.5
    c = dfdx.while_loop(lambda s: s[0] < 0, lambda s: (s[0] + 1, s[1] * 2.0), (0, b))[1]
    return c, b + a
  for f, args in [(loop, (xs, a)), (branch, (np.float64(1.0), a)), (while_, (a,))]:
    for got, want in zip(dfdx.jit(f)(*args), f(*args)):
      np.testing.assert_array_equal(got, want)


def test_buffer_reuse_waits_for_a_fused_sum_of_products_to_read_its_operands():
  # sum(a * y) is emitted as one product (np.dot) at the sum, after `a * x`; a's buffer must
  # not take a * x, though the product that a is an operand of comes before it
  def g(x, y):
    a = dnp.sin(x)
    p = a * y
    c = a * x
    return dnp.sum(p) + dnp.sum(dnp.exp(c))
  x, y = np.linspace(0.1, 1, 5), np.linspace(1, 2, 5)
  source = dfdx.make_expr(g, optimize=True)(x, y).to_source()
  assert "np.dot(" in source
  assert dfdx.jit(g)(x, y) == pytest.approx(np.sum(np.sin(x) * y) + np.sum(np.exp(np.sin(x) * x)),
                                            rel=1e-14)


def test_jit_results_equal_eager_on_many_functions(rng):
  functions = [
      lambda x: dnp.sum(dnp.exp(-x ** 2) * dnp.cos(3 * x)),
      lambda x: dnp.max(dnp.cumsum(x) / (1 + dnp.abs(x))),
      lambda x: dnp.logaddexp(x, 2 * x).mean(),
      lambda x: dnp.sum(dnp.where(x > 0.5, dnp.sqrt(x), x ** 3)),
      lambda x: dnp.prod(1 + x / 10) * dnp.var(x),
  ]
  x = rng.uniform(0.1, 1.0, 6)
  for fn in functions:
    for t in (fn, dfdx.grad(fn), dfdx.hessian(fn)):
      np.testing.assert_allclose(dfdx.jit(t)(x), t(x), rtol=1e-12, atol=1e-14)


# ---- export and pictures ----------------------------------------------------------------

def test_to_source_runs_with_only_numpy():
  source = dfdx.export.to_source(dfdx.grad(f), X, name="grad_f")
  imports = [line for line in source.splitlines() if "import" in line]
  assert imports == ["import numpy as np"]
  namespace = {}
  exec(source, namespace)
  np.testing.assert_allclose(namespace["grad_f"](X), dfdx.grad(f)(X), rtol=1e-14)


def _run_source(source, name, *args):
  namespace = {}
  exec(source, namespace)
  return namespace[name](*args)


def test_to_source_keeps_the_users_names_apart_from_its_own():
  # parameters named like the code's own values (v0), constants (c0, k0), its wrapper's
  # variables (outs) or NumPy (np), and a keyword as the name: renamed with "_", and right
  x = np.array([0.5, -1.0, 2.0])
  exec("def motion(v0, v1, c0, k0, np, outs):\n"
       "    return dnp.sin(v0) * v1 + c0 * np_.array([1.0, 2.0, 3.0]) + k0 * 2.5 + np + outs\n",
       {"dnp": dnp, "np_": np}, namespace := {})
  motion = namespace["motion"]
  args = (x, x + 1, x - 1, x * 2, x * 3, x * 4)
  source = dfdx.export.to_source(motion, *args, name="lambda")
  assert "def lambda_(v0_, v1_, c0_, k0_, np_, outs_):" in source
  np.testing.assert_allclose(_run_source(source, "lambda_", *args), motion(*args), rtol=1e-15)
  g = dfdx.grad(lambda outs, v0: dnp.sum(dnp.where(outs > 0, dnp.sqrt(outs), 0.0) * v0),
                argnums=(0, 1))  # (the zero-absorbing wrapper: two programs and a choice)
  y = np.array([0.0, 4.0])
  for got, want in zip(_run_source(dfdx.export.to_source(g, y, y, name="g"), "g", y, y),
                       g(y, y)):
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_to_source_of_a_jitted_gradient_called_before_keeps_the_zero_absorbing_rerun():
  f = dfdx.jit(dfdx.grad(lambda x: dnp.sum(dnp.where(x > 0, dnp.sqrt(x), 0.0))))
  x = np.array([0.0, 4.0])
  np.testing.assert_array_equal(f(x), [0.0, 0.25])  # (a cached program from here on)
  with np.errstate(invalid="ignore"):
    np.testing.assert_array_equal(_run_source(dfdx.export.to_source(f, x, name="g"), "g", x),
                                  [0.0, 0.25])


def test_to_source_of_empty_constants_static_arguments_and_non_array_outputs():
  empty = np.zeros((0, 3))
  for fn in (lambda x: x + np.zeros((0, 3)), dfdx.grad(lambda x: dnp.sum(dnp.sin(x)))):
    assert _run_source(dfdx.export.to_source(fn, empty, name="g"), "g", empty).shape == (0, 3)
  f = lambda x, n: dnp.ones(n) * x  # noqa: E731  (n: a size, fixed in the source)
  source = dfdx.export.to_source(f, 2.0, 3, name="g", static_argnums=1)
  np.testing.assert_array_equal(_run_source(source, "g", 2.0), [2.0, 2.0, 2.0])
  with pytest.raises(TypeError, match="static argument at position 1 is traced.*"
                                      "static_argnums"):
    dfdx.export.to_source(dfdx.jit(f, static_argnums=1), 2.0, 3)
  labelled = lambda x: (x * 2, "label", 3)  # noqa: E731
  got = _run_source(dfdx.export.to_source(labelled, np.ones(2), name="g"), "g", np.ones(2))
  assert got[1:] == ("label", 3)
  np.testing.assert_array_equal(got[0], [2.0, 2.0])


def test_to_sympy_of_derivatives():
  sp = pytest.importorskip("sympy")
  x = sp.Symbol("x", real=True)
  assert sp.simplify(dfdx.export.to_sympy(dfdx.grad(lambda x: 1 / x), 2.0) + 1 / x ** 2) == 0
  dx, dy = dfdx.export.to_sympy(dfdx.grad(lambda x, y: dnp.sin(x) * y ** 2, argnums=(0, 1)),
                                1.0, 2.0)
  y = sp.Symbol("y", real=True)
  assert sp.simplify(dx - y ** 2 * sp.cos(x)) == 0 and sp.simplify(dy - 2 * y * sp.sin(x)) == 0
  g = dfdx.export.to_sympy(dfdx.grad(lambda v: dnp.sum(v ** 3)), np.ones(2))
  assert list(g) == [3 * sp.Symbol("v_0", real=True) ** 2, 3 * sp.Symbol("v_1", real=True) ** 2]


def test_to_sympy_of_pytree_arguments_names_a_symbol_per_leaf():
  sp = pytest.importorskip("sympy")
  def symbols(names):
    return [sp.Symbol(n, real=True) for n in names.split()]
  d_a, d_b = symbols("d_a d_b")
  da, db = dfdx.export.to_sympy(dfdx.grad(lambda d: d["a"] * dnp.exp(d["b"])),
                                {"a": 1.0, "b": 2.0})  # (the output leaves, by key)
  assert sp.simplify(da - sp.exp(d_b)) == 0 and sp.simplify(db - d_a * sp.exp(d_b)) == 0
  t_0, t_1 = symbols("t_0 t_1")
  dt = dfdx.export.to_sympy(dfdx.grad(lambda t: t[0] * dnp.exp(t[1])), (1.0, 2.0))
  assert sp.simplify(dt[1] - t_0 * sp.exp(t_1)) == 0
  # arrays in a pytree: name_i per entry; a named tuple's fields by name
  Params = collections.namedtuple("Params", "w b")
  p_w_0, p_w_1, p_b, x = symbols("p_w_0 p_w_1 p_b x")
  value = dfdx.export.to_sympy(lambda p, x: dnp.sum(p.w) * x + p.b,
                               Params(np.ones(2), 0.5), 2.0)
  assert sp.simplify(value - ((p_w_0 + p_w_1) * x + p_b)) == 0
  # names that would read the same are made distinct (else SymPy would merge the symbols)
  value = dfdx.export.to_sympy(lambda d: dnp.sum(d["a"]) * d["a_0"],
                               {"a": np.ones(2), "a_0": 2.0})
  assert len(value.free_symbols) == 3


def test_picture_has_one_node_per_equation(tmp_path):
  expr = dfdx.make_expr(dfdx.grad(f), optimize=True)(X)
  path = tmp_path / "grad.svg"
  svg = expr.to_svg(str(path))
  root = ET.parse(path).getroot()
  groups = root.findall("{http://www.w3.org/2000/svg}g")
  assert sum(g.get("class") == "equation" for g in groups) == len(expr.eqns)
  assert sum(g.get("class") == "input" for g in groups) == 1
  assert svg == path.read_text()
  dot = expr.to_dot()
  assert dot.startswith("digraph") and dot.count("shape=box") == len(expr.eqns)


def test_codegen_rule_missing_is_a_clear_error():
  from dfdx._src import core
  prim = core.Primitive("nameless_test_op")
  prim.def_impl(lambda x: x)
  prim.def_abstract_eval(lambda x: x)
  from dfdx._src.ir import Eqn, Program, Var
  v, w = Var(core.shaped_array((2,), np.dtype("float64"))), None
  w = Var(v.aval)
  program = Program([v], [], [], [Eqn(prim, [v], {}, [w])], [w])
  with pytest.raises(codegen.MissingCodegenRuleError, match="nameless_test_op"):
    codegen.program_source(program)


def test_sums_are_pushed_through_matmuls_and_elementwise_ops(rng):
  a, x = rng.standard_normal((3, 4)), rng.standard_normal((4, 50))

  def f(a, x):
    return dnp.sum(-(a @ x) + 2.0 * (a @ x), axis=1)
  expr = dfdx.make_expr(f, optimize=True)(a, x)
  products = [e for e in expr.eqns if e.prim.name == "dot_general"]
  assert products and all(e.outputs[0].aval.shape == (3,) for e in products)
  np.testing.assert_allclose(expr(a, x), f(a, x), rtol=1e-12)
  # The gradient of a bias-like input: d/db sum(w (A x + b)) sums a product over n.
  g = lambda a, x, b: dnp.sum(dnp.tanh(a @ x + b[:, None]))
  expr = dfdx.make_expr(dfdx.grad(g, (0, 2)), optimize=True)(a, x, np.ones(3))
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(g, (0, 2)))(a, x, np.ones(3))[1],
                             dfdx.grad(g, (0, 2))(a, x, np.ones(3))[1], rtol=1e-12)


def test_a_sum_pushed_into_a_value_an_earlier_push_replaced_reads_its_replacement(rng):
  """sum(b * a, 0) is rewritten first (as sum(b, 0) * a); the sum of 3 * that value, read
  twice, then sums the replacement, not the variable it replaced (which nothing defines)."""
  a, b = np.arange(1.0, 5.0), rng.standard_normal((3, 4))

  def f(a, b):
    e = dnp.sum(b * a, axis=0)
    return dnp.sum(e * 3.0) + dnp.sum(dnp.sin(e))
  expr = dfdx.make_expr(f, optimize=True)(a, b).typecheck()
  np.testing.assert_allclose(expr(a, b), f(a, b), rtol=1e-13)
  np.testing.assert_allclose(dfdx.jit(f)(a, b), f(a, b), rtol=1e-13)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f, (0, 1)))(a, b)[1],
                             dfdx.grad(f, (0, 1))(a, b)[1], rtol=1e-12)


def test_sums_are_not_pushed_into_an_operand_of_a_narrower_dtype(rng):
  """sum(a @ b), a float64 and b float32: summing b's rows first would round them in
  float32 (a relative error of 1e-7 in a float64 result)."""
  a = rng.normal(size=(2, 4))
  b = rng.normal(size=(4, 1000)).astype(np.float32)
  f = lambda a, b: dnp.sum(a @ b)
  np.testing.assert_allclose(dfdx.jit(f)(a, b), f(a, b), rtol=1e-14)
  g = lambda a, b: dnp.sum(b * a[0][:, None], axis=1)  # (a product promoted the same way)
  np.testing.assert_allclose(dfdx.jit(g)(a, b), g(a, b), rtol=1e-14)


@pytest.mark.parametrize("f", [lambda x: -(x * 0.3), lambda x: -(0.3 * x),
                               lambda x: (-x) * 0.3, lambda x: (x * 0.5) * 0.3])
def test_folded_literals_keep_a_float32_program_in_float32(f):
  x = np.linspace(-1, 1, 5, dtype=np.float32)
  got = dfdx.jit(f)(x)
  assert got.dtype == f(x).dtype == np.float32
  np.testing.assert_array_equal(got, f(x))


def test_broadcasts_are_dropped_and_power_of_two_literals_move_to_the_small_operand():
  s, b = np.ones((4, 1)), np.ones((4, 100))
  expr = dfdx.make_expr(lambda s, b: dnp.broadcast_to(s, (4, 100)) * (2.0 * b),
                        optimize=True)(s, b)
  names = [e.prim.name for e in expr.eqns]
  assert "broadcast_to" not in names
  doubled = [e for e in expr.eqns if e.prim.name == "mul" and any(
      getattr(a, "val", None) == 2.0 for a in e.inputs)]
  assert [e.outputs[0].aval.shape for e in doubled] == [(4, 1)]
  np.testing.assert_array_equal(expr(s, b), 2.0 * s * b)
  # A literal that is not a power of two stays where it is (moving it would round).
  expr = dfdx.make_expr(lambda s, b: s * (3.0 * b), optimize=True)(s, b)
  assert [e.outputs[0].aval.shape for e in expr.eqns] == [(4, 100), (4, 100)]


def test_scalar_chains_and_uniform_constants_fold():
  x = np.random.default_rng(3).normal(size=(4, 5))
  ones = np.ones((4, 5))

  def f(x):
    return dnp.exp(-((x * 0.5) * 3.0)) * (0.25 * ones)

  expr = dfdx.make_expr(f, optimize=True)(x)
  names = [e.prim.name for e in expr.eqns]
  # -((x * 0.5) * 3) -> x * -1.5 (0.5 is a power of two: exact); the uniform array -> 0.25
  assert names.count("mul") == 2 and "neg" not in names, expr
  assert not expr.program.const_vars, expr
  np.testing.assert_array_equal(dfdx.jit(f)(x), f(x))
  # a product that would round differently is left alone
  expr = dfdx.make_expr(lambda x: (x * 0.3) * 0.7, optimize=True)(x)
  assert [e.prim.name for e in expr.eqns] == ["mul", "mul"], expr


def _computed_sizes(expr, name):
  return sorted(e.outputs[0].aval.shape for e in expr.eqns if e.prim.name == name)


def test_gathers_of_a_few_entries_are_pulled_up_to_the_data(rng):
  # A model evaluated everywhere, then at a few points: only those points are computed.
  skin, rot = rng.normal(size=(8, 40)), rng.normal(size=(3, 3))
  idx = np.array([5, 39, -1, 5, 0])  # repeats and a negative index

  def posed(w, shift):
    vertices = rot @ (w @ skin)                            # (3, 40), products of free axes
    moved = dnp.tanh(vertices + shift[:, None]) * 2.0 + 1.0  # elementwise, a broadcast operand
    return dnp.transpose(moved)[idx]                        # (5, 3): a transpose, then rows

  w, shift = rng.normal(size=(3, 8)), rng.normal(size=3)
  expr = dfdx.make_expr(posed, optimize=True)(w, shift)
  # The gather reached the constant skin and was folded into it: no 40-point array is left.
  assert all(40 not in e.outputs[0].aval.shape for e in expr.eqns), expr
  assert not any(e.prim.name == "gather" for e in expr.eqns), expr
  np.testing.assert_allclose(dfdx.jit(posed)(w, shift), posed(w, shift), rtol=1e-13)
  # Forward-mode Jacobian of it (the hand-tracking pattern): 26-like tangents too.
  jac = dfdx.jacfwd(posed, (0, 1))
  for got, want in zip(dfdx.jit(jac)(w, shift), jac(w, shift)):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fun, shapes", [
    (lambda a, b: dnp.sum(a * b, axis=1)[np.array([2, 0])], [(4, 6), (4, 6)]),   # a sum
    (lambda a, b: dnp.reshape(a + b, (4, 3, 2))[:, np.array([2, 1])], [(4, 6), (4, 6)]),
    (lambda a, b: dnp.matmul(a, b)[np.array([1, 1, 2])], [(3, 4, 5), (3, 5, 2)]),  # batch
    (lambda a, b: dnp.where(a > 0, a, b)[:, np.array([0, 3])], [(2, 5), (2, 5)]),  # select
    (lambda a, b: (a.astype(np.float32) * b[0])[:, np.array([4])], [(2, 5), (5,)]),
])
def test_pulled_gathers_give_the_same_values_and_gradients(fun, shapes, rng):
  args = [rng.normal(size=s) for s in shapes]
  np.testing.assert_allclose(dfdx.jit(fun)(*args), fun(*args), rtol=1e-6)
  g = dfdx.grad(lambda *a: dnp.sum(dnp.sin(fun(*a))), (0, 1))
  for got, want in zip(dfdx.jit(g)(*args), g(*args)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_gathers_stay_where_pulling_would_not_save_work(rng):
  a, b = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
  # As many entries as the axis holds (or more): computed whole, then gathered.
  many = np.array([0, 1, 2, 3, 4, 5, 5])
  expr = dfdx.make_expr(lambda a, b: (a * b)[:, many], optimize=True)(a, b)
  assert _computed_sizes(expr, "mul") == [(4, 6)]
  # A value used elsewhere too is computed whole once; its gather is not pulled through it.
  def both(a, b):
    p = a * b
    return p[:, np.array([1])], p
  expr = dfdx.make_expr(both, optimize=True)(a, b)
  assert _computed_sizes(expr, "mul") == [(4, 6)]
  out = dfdx.jit(both)(a, b)
  np.testing.assert_array_equal(out[0], (a * b)[:, [1]])


def test_pulled_gather_out_of_bounds_is_numpys_index_error(rng):
  c = rng.normal(size=(3, 4))
  with pytest.raises(IndexError):
    dfdx.jit(lambda x: (x @ c)[:, np.array([0, 9])])(np.ones((2, 3)))
  with pytest.raises(IndexError):
    dfdx.jit(lambda x: (x * 2.0)[:, np.array([0, 9])])(np.ones((2, 5)))


def test_a_ufunc_of_a_python_float_argument_types_as_numpy_does():
  x = np.ones(3, np.float32)
  f = lambda s, x: x + dnp.exp(s)
  assert dfdx.make_expr(f)(0.5, x).program.outs[0].aval.dtype == f(0.5, x).dtype
  g = dfdx.grad(lambda s, x: dnp.sum(dnp.sin(x + dnp.exp(s))), argnums=1)
  assert dfdx.jit(g)(0.5, x).dtype == g(0.5, x).dtype


def test_a_python_int_beyond_int64_times_a_float_array():
  # (a check of the program's literals read 2 ** 64 as an integer array: TypeError)
  x = np.array([-2.0, 3.0])
  np.testing.assert_array_equal(dfdx.jit(lambda x: x * 2 ** 64)(x), x * 2 ** 64)
  np.testing.assert_array_equal(dfdx.jit(dfdx.grad(lambda x: dnp.sum(x * 2 ** 64)))(x),
                                np.full(2, 2.0 ** 64))


def test_a_constant_output_is_the_callers_to_change():
  # A derivative that does not depend on x is folded to a constant of the program; it is
  # returned as a copy, so that a caller writing into its result (scaling a gradient in
  # place) does not change what the next call returns.
  x = np.ones(5)
  functions = [
      (dfdx.jit(dfdx.grad(lambda x: dnp.sum(x[1:3]))), [0.0, 1.0, 1.0, 0.0, 0.0]),
      (dfdx.jit(dfdx.grad(lambda x: dnp.sum(2 * x))), [2.0] * 5),
      (dfdx.jit(lambda x: np.ones((3, 2)).T), np.ones((2, 3))),  # (a view of one)
      (dfdx.jit(lambda x: np.arange(3.0) * 2), [0.0, 2.0, 4.0]),
  ]
  for fn, expected in functions:
    out = fn(x)
    out *= 10
    np.testing.assert_array_equal(fn(x), expected)
  # an output that depends on x is not copied
  source = dfdx.export.to_source(dfdx.grad(lambda x: dnp.sum(x ** 2)), x)
  assert ".copy()" not in source


def test_outputs_of_a_jitted_function_under_jvp_and_vmap_are_the_callers():
  # jvp and vmap run a jitted function's program equation by equation: a constant output
  # (a gradient that does not depend on the inputs) is a copy, so writing into it leaves
  # what later calls return alone (it changed every later call's result, jitted ones too)
  g = dfdx.jit(dfdx.grad(lambda x, y: dnp.sum(x * x), argnums=1))
  x, y = np.ones(3), np.ones(3)
  p, t = dfdx.jvp(g, (x, y), (x, y))
  p[:], t[:] = 7.0, 8.0
  np.testing.assert_array_equal(dfdx.jvp(g, (x, y), (x, y))[0], 0.0)
  out = dfdx.vmap(g)(np.ones((2, 3)), np.ones((2, 3)))
  if out.flags.writeable:
    out[:] = 9.0
  np.testing.assert_array_equal(g(x, y), 0.0)
  np.testing.assert_array_equal(dfdx.vmap(g)(np.ones((2, 3)), np.ones((2, 3))), 0.0)
