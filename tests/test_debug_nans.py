"""dfdx.debug_nans: the first NaN produced, forward or in a derivative rule, raises NaNError
naming the primitive, the rule and the user's line of the forward operation.

Lines are found in this file by their `#@name` markers, not hard-coded."""
import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp

_LINES = inspect.getsource(sys.modules[__name__]).splitlines()


def line_of(marker):
  """The line number of the line of this file marked `#@marker`."""
  (number,) = [i + 1 for i, text in enumerate(_LINES) if text.rstrip().endswith("#@" + marker)]
  return number


def here(marker):
  return f"{os.path.basename(__file__)}:{line_of(marker)}"


def assert_site(err, marker):
  assert err.source is not None and here(marker) in err.source, (err.source, here(marker))
  assert f"{here(marker)} " in str(err)


def eval_path():
  """What debug_nans swaps in while on."""
  from dfdx._src import ad, batching, core, jit, staging
  return (core.Primitive.bind, core.bind_in, ad.bind_in, batching.bind_in, ad.new_tape,
          jit.nan_check, staging.user_source_line, staging.record_all_sources, np.geterr(),
          np.geterrcall())


@pytest.fixture(autouse=True)
def quiet_and_off():
  """NumPy's warnings about invalid values are expected here; every test leaves the checks
  off and the plain eval path in place, as it found them."""
  assert not dfdx.debug_nans.is_enabled()
  before = eval_path()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    yield
  assert not dfdx.debug_nans.is_enabled()
  assert eval_path() == before


# ---- forward --------------------------------------------------------------------------------


def test_forward_dnp_call_on_concrete_values():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`dfdx.numpy.log` produced") as e:
    dnp.log(-1.0)  #@fwd-log
  assert e.value.context == "forward" and e.value.derivative_of is None
  assert_site(e.value, "fwd-log")
  assert "dnp.log(-1.0)" in str(e.value) and "double-where" in str(e.value)
  assert isinstance(e.value, FloatingPointError)


@pytest.mark.parametrize("fun", [lambda x: dnp.sqrt(-x), lambda x: dnp.divide(x - x, x - x),
                                 lambda x: dnp.subtract(dnp.exp(x), dnp.exp(x))])
def test_forward_common_nans(fun):  # sqrt(-1), 0 / 0, inf - inf
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError):
    fun(np.array([1000.0, 2.0]))


def test_forward_under_grad_names_the_primitive():
  def f(x):
    y = x * 2.0
    return dnp.log(y - 4.0)  #@fwd-grad
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`log` produced a NaN") as e:
    dfdx.grad(f)(1.0)
  assert e.value.primitive == "log" and e.value.context == "forward"
  assert_site(e.value, "fwd-grad")
  assert "float64[] = -2.0" in str(e.value)


def test_forward_primitive_that_numpy_does_not_flag():
  signs = np.array([np.inf, -np.inf])
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`reduce_sum` produced") as e:
    dfdx.grad(lambda x: dnp.sum(x * signs))(1.0)  #@fwd-sum
  assert_site(e.value, "fwd-sum")


def test_forward_under_vmap_shows_the_first_bad_entry():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError) as e:
    dfdx.vmap(lambda x: dnp.sqrt(x))(np.array([1.0, 4.0, -9.0]))  #@fwd-vmap
  assert e.value.primitive == "sqrt"
  assert_site(e.value, "fwd-vmap")
  assert "the first at index (2,), where the inputs are -9.0" in str(e.value)


# ---- derivatives ----------------------------------------------------------------------------


def both_infinite(x):
  return dnp.sqrt(x) - dnp.sqrt(x)  #@inf-minus-inf


def test_reverse_mode_nan_names_the_rule_and_forward_line():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="reverse mode") as e:
    dfdx.grad(both_infinite)(0.0)  #@grad-call
  assert e.value.derivative_of == "sqrt" and e.value.context in ("vjp", "sum")
  assert_site(e.value, "inf-minus-inf")
  assert "return dnp.sqrt(x) - dnp.sqrt(x)" in str(e.value)
  assert f"the derivative ran from {os.path.abspath(__file__)}" in str(e.value)


def test_reverse_mode_nan_without_direct_vjp_rules():
  from dfdx._src import ad
  with ad.use_vjp_rules(False), dfdx.debug_nans(), pytest.raises(dfdx.NaNError) as e:
    dfdx.vector_grad(both_infinite)(np.zeros(3))
  assert e.value.context in ("vjp", "sum")
  assert_site(e.value, "inf-minus-inf")


def test_forward_mode_nan_names_the_jvp_rule():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match=r"derivative \(JVP\) rule") as e:
    dfdx.jvp(both_infinite, (0.0,), (1.0,))
  assert e.value.context == "jvp" and e.value.derivative_of is not None
  assert_site(e.value, "inf-minus-inf")


def test_linearized_derivative():
  with dfdx.debug_nans():
    _, f_jvp = dfdx.linearize(both_infinite, 0.0)
    with pytest.raises(dfdx.NaNError, match="linearized derivative") as e:
      f_jvp(1.0)
  assert_site(e.value, "inf-minus-inf")


def test_vjp_recorded_while_off_still_reports():
  _, f_vjp = dfdx.vjp(both_infinite, 0.0)
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="recorded while debug_nans was off"):
    f_vjp(1.0)


def test_a_nan_the_library_removes_is_not_reported():
  f = dfdx.grad(lambda x: dnp.where(x > 0, dnp.sqrt(x), 0.0))
  plain = f(0.0)
  with dfdx.debug_nans():
    if np.isnan(plain):  # without a recomputation of NaN derivatives, it is a NaN produced
      with pytest.raises(dfdx.NaNError):
        f(0.0)
    else:
      assert f(0.0) == plain


# ---- jit ------------------------------------------------------------------------------------


def test_jit_forward():
  f = dfdx.jit(lambda x: dnp.sum(dnp.log(x - 1.0)))  #@jit-fwd
  f(np.ones(3) * 2.0)  # compiled while off
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match=r"jit\(<lambda>\) returned") as e:
    f(np.array([2.0, 0.5, 3.0]))
  assert e.value.primitive == "log" and e.value.context == "forward"
  assert_site(e.value, "jit-fwd")


def test_jit_backward_traced_while_on():
  f = dfdx.jit(dfdx.grad(both_infinite))
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="returned a NaN") as e:
    f(0.0)
  assert e.value.derivative_of == "sqrt"
  assert_site(e.value, "inf-minus-inf")


def test_grad_of_jit():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError) as e:
    dfdx.grad(dfdx.jit(lambda x: dnp.sqrt(x) - dnp.sqrt(2.0 * x)))(0.0)  #@grad-of-jit
  assert e.value.derivative_of == "sqrt"
  assert_site(e.value, "grad-of-jit")


def test_jit_constant_folded_while_tracing():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError) as e:
    dfdx.jit(lambda x: x + dnp.log(dnp.zeros(()) - 1.0))(1.0)  #@jit-fold
  assert_site(e.value, "jit-fold")


# ---- checkpointed blocks and loops --------------------------------------------------------
#
# A NaN made inside a `dfdx.checkpoint` block (or a checkpointed scan's steps) is reported as
# it is without the checkpoint: the same primitive, rule and line of the block's own code, in
# every mode, and never as `checkpoint_call`.


def log_then_sin(x):
  y = dnp.log(x - 1.0)  #@ck-log
  return dnp.sin(y) * 2.0


def sqrt_pair(x):  # reverse mode at 0: inf - inf (the two square roots are not merged)
  return dnp.sqrt(x) - dnp.sqrt(2.0 * x)  #@ck-sqrt


def long_log(x):  # long enough for segments="auto" to cut
  for _ in range(8):
    x = dnp.sin(x) * 1.01
  y = dnp.log(x - 1.0)  #@ck-long-log
  for _ in range(8):
    y = dnp.sin(y) * 1.01
  return y


def long_sqrt(x):
  for _ in range(8):
    x = dnp.sin(x) * 1.01
  y = dnp.sqrt(x) - dnp.sqrt(2.0 * x)  #@ck-long-sqrt
  for _ in range(8):
    y = dnp.sin(y) * 1.01
  return y


MODES = {
    "grad": dfdx.grad,
    "vjp": lambda f: lambda x: dfdx.vjp(f, x)[1](1.0),
    "jvp": lambda f: lambda x: dfdx.jvp(f, (x,), (1.0,)),
    "jit(grad)": lambda f: dfdx.jit(dfdx.grad(f)),
    "grad(jit)": lambda f: dfdx.grad(dfdx.jit(f)),
    "jit(jvp)": lambda f: dfdx.jit(lambda x: dfdx.jvp(f, (x,), (1.0,))[1]),
}
REVERSE = ("grad", "vjp", "jit(grad)", "grad(jit)")
BLOCKS = {
    "checkpoint": dfdx.checkpoint,
    "nested": lambda f: dfdx.checkpoint(lambda x: dfdx.checkpoint(f)(x) * 3.0),
    "auto": lambda f: dfdx.checkpoint(f, segments="auto"),
}
# (fun, where its NaN is made, the input) for the forward and the backward pass
CASES = {"forward": (log_then_sin, "ck-log", 0.5), "backward": (sqrt_pair, "ck-sqrt", 0.0)}
LONG_CASES = {"forward": (long_log, "ck-long-log", 0.3),
              "backward": (long_sqrt, "ck-long-sqrt", 0.0)}


def nan_report(fun, x):
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError) as e:
    fun(x)
  return e.value


def assert_reported_as_without_checkpoint(err, plain, marker, mode, made_in):
  assert err.primitive != "checkpoint_call" and err.derivative_of != "checkpoint_call", str(err)
  assert (err.primitive, err.context, err.derivative_of) == (
      plain.primitive, plain.context, plain.derivative_of), (str(err), str(plain))
  assert_site(err, marker)
  assert_site(plain, marker)
  if made_in == "forward":
    assert err.primitive == "log" and err.context == "forward"
  elif mode in REVERSE:
    assert err.derivative_of == "sqrt" and err.context in ("vjp", "sum")
  else:
    assert err.context == "jvp"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("made_in", list(CASES))
@pytest.mark.parametrize("block", list(BLOCKS))
def test_nan_inside_a_checkpointed_block(block, made_in, mode):
  fun, marker, x = (LONG_CASES if block == "auto" else CASES)[made_in]
  wrapped = BLOCKS[block](fun)
  if block == "auto":  # (it cut the function into several blocks)
    assert str(dfdx.make_expr(wrapped)(x)).count("checkpoint_call") > 1
  err = nan_report(MODES[mode](wrapped), x)
  plain = nan_report(MODES[mode](fun), x)
  assert_reported_as_without_checkpoint(err, plain, marker, mode, made_in)


def test_nan_inside_a_checkpointed_block_shows_the_line():
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`log` produced a NaN") as e:
    dfdx.grad(dfdx.checkpoint(log_then_sin))(0.5)
  assert "in the forward computation at " in str(e.value)
  assert "y = dnp.log(x - 1.0)  #@ck-log" in str(e.value)
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="reverse mode") as e:
    dfdx.jit(dfdx.grad(dfdx.checkpoint(sqrt_pair)))(0.0)
  assert "an input of `sqrt`" in str(e.value)
  assert "return dnp.sqrt(x) - dnp.sqrt(2.0 * x)  #@ck-sqrt" in str(e.value)


def scan_log_body(c, x):
  return c + dnp.log(x - c), None  #@scan-log


def scan_sqrt_body(c, x):
  return c + dnp.sqrt(c + x) - dnp.sqrt(2.0 * (c + x)), None  #@scan-sqrt


_STEPS = np.where(np.arange(9) == 6, -1.0, 2.0)  # log(x - c) is NaN at step 6 only
SCAN_CASES = {"forward": (scan_log_body, "scan-log", _STEPS, 0.0),
              "backward": (scan_sqrt_body, "scan-sqrt", np.zeros(9), 0.0)}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("made_in", list(SCAN_CASES))
def test_nan_inside_a_checkpointed_scan(made_in, mode):
  body, marker, xs, c = SCAN_CASES[made_in]

  def scanned(checkpoint):
    return lambda c: dfdx.scan(body, c, xs, checkpoint=checkpoint)[0]
  err = nan_report(MODES[mode](scanned(True)), c)
  plain = nan_report(MODES[mode](scanned(None)), c)
  assert err.primitive not in ("scan", "checkpoint_call"), str(err)
  assert (err.primitive, err.context, err.source) == (plain.primitive, plain.context,
                                                      plain.source), (str(err), str(plain))
  assert_site(err, marker)
  if made_in == "forward":
    assert err.primitive == "log" and err.context == "forward"
  else:
    assert err.context != "forward"


def test_jitted_scan_names_the_operation_in_its_body():
  f = dfdx.jit(lambda c: dfdx.scan(scan_log_body, c, _STEPS)[0])
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`log` produced") as e:
    f(0.0)
  assert_site(e.value, "scan-log")


# A NaN in a value that a block or a loop's body closes over (a NumPy constant, or an argument
# not differentiated) came in: no operation made it, as without the block, where it is an
# input of `mul`. (Reported before as `checkpoint_call`, `scan`, `while` or `jit(...)`
# producing it from inputs free of NaN.)
_V = np.array([1.0, np.nan, 2.0])
_BLOCK = dfdx.checkpoint(lambda c: dnp.sin(c * _V))
CLOSED_OVER_NAN = {
    "plain": dfdx.grad(lambda c: dnp.sum(dnp.sin(c * _V))),
    "checkpoint, constant": dfdx.grad(lambda c: dnp.sum(_BLOCK(c))),
    "checkpoint, argument": lambda c: dfdx.grad(
        lambda c, w: dnp.sum(dfdx.checkpoint(lambda c: dnp.sin(c * w))(c)))(c, _V),
    "vmap(checkpoint)": lambda c: dfdx.vmap(_BLOCK)(np.array([c, c])),
    "jit(grad(checkpoint))": dfdx.jit(dfdx.grad(lambda c: dnp.sum(_BLOCK(c)))),
    "checkpointed scan, argument": lambda c: dfdx.value_and_grad(lambda c, w: dfdx.scan(
        lambda s, x: (s + dnp.sin(x * w[1]), s), c, np.ones(9), checkpoint=True)[0])(c, _V),
    "scan, argument": lambda c: dfdx.grad(lambda c, w: dfdx.scan(
        lambda s, x: (s * dnp.sin(x * w[1]), s), c, np.ones(3))[0])(c, _V),
    "jit(scan)": dfdx.jit(lambda c: dfdx.scan(
        lambda s, x: (s + dnp.sin(x * _V[1]), s), c, np.ones(3))[0]),
    "jit(while_loop)": dfdx.jit(lambda c: dfdx.while_loop(
        lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] + _V[1]), (0, c))[1]),
    "jit(grad(while_loop))": dfdx.jit(dfdx.grad(lambda c: dfdx.while_loop(
        lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * _V[1]), (0, c))[1])),
    "jit(cond)": dfdx.jit(lambda c: dfdx.cond(c > 0, lambda c: c * _V, lambda c: -c * _V, c)),
    "jit": dfdx.jit(lambda c: dnp.sum(dnp.sin(c * _V))),
}


@pytest.mark.parametrize("case", list(CLOSED_OVER_NAN))
def test_nan_that_comes_in_through_a_closed_over_value_is_not_reported(case):
  fun = CLOSED_OVER_NAN[case]
  plain = np.asarray(fun(0.5))
  assert np.isnan(plain).any()
  with dfdx.debug_nans():
    got = np.asarray(fun(0.5))
  np.testing.assert_array_equal(got, plain)


def test_a_nan_made_in_a_block_with_a_closed_over_nan_is_reported():
  # The same blocks, closing over a NaN, still report a NaN that an operation makes.
  v = np.array([1.0, np.nan])

  def block(c):
    return dnp.log(c - 1.0) + c * v  #@closed-log
  for fun in (dfdx.grad(lambda c: dnp.sum(dfdx.checkpoint(block)(c))), dfdx.jit(block),
              dfdx.jit(lambda c: dfdx.scan(lambda s, x: (s, block(s)), c, np.ones(3))[1])):
    err = nan_report(fun, 0.5)
    assert (err.primitive, err.context) == ("log", "forward"), str(err)
    assert_site(err, "closed-log")


def scan_removed_nan_body(c, x):  # reverse mode at x = 0: inf - inf, times d(x * c)/dc = 0
  return c, dnp.sqrt(x * c) - dnp.sqrt(2.0 * x * c)


@pytest.mark.parametrize("mode", ["grad", "vmap(grad)", "jit(grad)", "grad(jit)"])
@pytest.mark.parametrize("checkpoint", [None, True, 1])
def test_a_nan_the_library_removes_in_a_checkpointed_scan_is_not_reported(checkpoint, mode):
  xs = np.array([1.0, 0.0, 2.0, 0.0])

  def f(c):
    return dnp.sum(dfdx.scan(scan_removed_nan_body, c, xs, checkpoint=checkpoint)[1])
  transform = {"grad": dfdx.grad, "jit(grad)": lambda f: dfdx.jit(dfdx.grad(f)),
               "grad(jit)": lambda f: dfdx.grad(dfdx.jit(f)),
               "vmap(grad)": lambda f: lambda c: dfdx.vmap(dfdx.grad(f))(np.array([c, c]))}
  plain = transform[mode](f)(1.0)
  assert np.isfinite(plain).all()
  with dfdx.debug_nans():
    got = transform[mode](f)(1.0)  # (checkpointed: NaNError, for xs's unused cotangent)
  np.testing.assert_allclose(got, plain, rtol=1e-12)


def while_log_body(s):
  i, c = s
  return i + 1, c + dnp.log(c - 3.0 * (i == 2))  #@while-log


def while_sqrt_body(s):
  i, c = s
  return i + 1, c + dnp.sqrt(c) - dnp.sqrt(2.0 * c)  #@while-sqrt


def scan_sqrt_step(c, _):
  return c + dnp.sqrt(c) - dnp.sqrt(2.0 * c), None


WHILE_MODES = dict(MODES, **{
    "jit": dfdx.jit, "vmap": lambda f: lambda x: dfdx.vmap(f)(np.array([x, x])),
    "vmap(grad)": lambda f: lambda x: dfdx.vmap(dfdx.grad(f))(np.array([x, x])),
    "linearize(jit)": lambda f: lambda x: dfdx.linearize(dfdx.jit(f), x)[1](1.0),
    "jit(hessian)": lambda f: dfdx.jit(dfdx.hessian(f))})


@pytest.mark.parametrize("mode", list(WHILE_MODES))
def test_nan_made_in_a_while_loop_body(mode):
  # Named as in a scan's body or the Python loop: the body's operation and line, not `while`
  # at the line that calls while_loop (the compiled loop is run again a step at a time).
  def f(c):
    return dfdx.while_loop(lambda s: s[0] < 4, while_log_body, (0, c))[1]
  err = nan_report(WHILE_MODES[mode](f), 1.0)
  assert (err.primitive, err.context, err.derivative_of) == ("log", "forward", None), str(err)
  assert_site(err, "while-log")
  assert "c + dnp.log(c - 3.0 * (i == 2))" in str(err)


@pytest.mark.parametrize("mode", [m for m in WHILE_MODES if m not in ("jit", "vmap")])
def test_nan_made_by_a_while_loop_body_derivative(mode):
  # The derivative's NaN (inf - inf at c = 0) is reported as the same loop's as a scan.
  def f(c):
    return dfdx.while_loop(lambda s: s[0] < 4, while_sqrt_body, (0, c))[1]
  err = nan_report(WHILE_MODES[mode](f), 0.0)
  scanned = nan_report(WHILE_MODES[mode](lambda c: dfdx.scan(scan_sqrt_step, c, None, 4)[0]),
                       0.0)
  assert "while" not in (err.primitive, err.derivative_of), str(err)
  assert err.context != "forward"
  assert (err.primitive, err.context, err.derivative_of) == (
      scanned.primitive, scanned.context, scanned.derivative_of), (str(err), str(scanned))
  assert_site(err, "while-sqrt")


def test_jitted_cond_names_the_operation_in_its_branch():
  f = dfdx.jit(lambda x: dfdx.cond(x > 0, lambda x: dnp.log(x - 3.0), lambda x: x, x))  #@cond
  with dfdx.debug_nans(), pytest.raises(dfdx.NaNError, match="`log` produced") as e:
    f(1.0)
  assert e.value.context == "forward"
  assert_site(e.value, "cond")


# ---- the switch -----------------------------------------------------------------------------


def test_off_by_default_results_unchanged():
  assert np.isnan(dnp.log(-1.0))
  assert np.isnan(dfdx.grad(both_infinite)(0.0))
  assert np.isnan(dfdx.jit(lambda x: dnp.log(x))(-1.0))


def test_nan_in_the_inputs_is_not_reported():
  x = np.array([1.0, np.nan])
  with dfdx.debug_nans():
    assert np.isnan(dnp.log(x)).tolist() == [False, True]
    assert np.isnan(dfdx.grad(lambda x: dnp.sum(dnp.sin(x) * x))(x)).tolist() == [False, True]
    assert np.isnan(dfdx.jit(lambda x: dnp.exp(x))(x)).tolist() == [False, True]
    assert np.isnan(dfdx.grad(dnp.sqrt)(np.nan))


def test_context_manager_restores_state_and_nests():
  with dfdx.debug_nans():
    assert dfdx.debug_nans.is_enabled()
    with dfdx.debug_nans(False):
      assert not dfdx.debug_nans.is_enabled()
      assert np.isnan(dnp.log(-1.0))
    assert dfdx.debug_nans.is_enabled()
  assert not dfdx.debug_nans.is_enabled()


def test_exception_inside_the_block_restores_state():
  with pytest.raises(dfdx.NaNError):
    with dfdx.debug_nans():
      dnp.sqrt(-1.0)
  assert not dfdx.debug_nans.is_enabled()
  with pytest.raises(KeyError):
    with dfdx.debug_nans():
      raise KeyError("x")
  assert not dfdx.debug_nans.is_enabled()


def test_global_switch():
  dfdx.debug_nans(True)
  try:
    assert dfdx.debug_nans.is_enabled()
    with pytest.raises(dfdx.NaNError):
      dnp.log(-1.0)
  finally:
    dfdx.debug_nans(False)
  assert np.isnan(dnp.log(-1.0))


def test_plain_numpy_keeps_its_warnings():
  with dfdx.debug_nans():
    assert np.geterr()["invalid"] == "call"
    with pytest.warns(RuntimeWarning, match="invalid value"):
      warnings.simplefilter("always", RuntimeWarning)
      np.log(np.array(-1.0))


def test_environment_variable():
  env = dict(os.environ, DFDX_DEBUG_NANS="1")
  out = subprocess.run([sys.executable, "-c", "import dfdx; print(dfdx.debug_nans.is_enabled())"],
                       env=env, capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "True"
