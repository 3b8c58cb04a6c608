"""`dfdx.scipy.integrate.odeint`: SciPy's ODE solver (LSODA), differentiable by forward
sensitivities and by the adjoint method.

Under a transformation, `func` is staged to a `Program` (closure conversion: tracers it
closes over become extra inputs, like `args`), and the solve is the primitive `odeint`,
whose params hold that program. Two primitives:

  * `odeint(y0, t, *theta; program)`: the solution at the times t (impl: scipy's odeint,
    with the program compiled to NumPy code as the right-hand side).
  * `odeint_tangent(y0_dot, t_dot, *theta_dot, y0, t, *theta, ys; program)`: its JVP, linear in
    the dotted arguments. Evaluated through the forward sensitivity equations: the state
    (y, y_dot) solves y' = f, y_dot' = df/dy y_dot + df/dtheta theta_dot (`dfdx.jvp` of f),
    plus f(y_i, t_i) t_dot_i for the output times. Its transpose is the adjoint method
    (reverse mode): backwards from t_N to t_0, interval by interval, the state (y, a,
    theta_bar) solves y' = f, a' = -a^T df/dy, theta_bar' = -a^T df/dtheta (`dfdx.vjp` of f),
    the output cotangents being added to a at each t_i; y0_bar = a(t_0); t_bar_i =
    <ct_i, f(y_i, t_i)> (minus <a(t_0), f(y_0, t_0)> for t_0).

Both the tangent's evaluation and its transpose are written with `odeint` itself (on the
augmented systems) and dfdx ops, so every derivative is differentiable again (second order
costs a solve of a doubled system). vmap runs one solve per batch element.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

import dfdx.numpy as dnp
from dfdx._src import ad, batching, core
from dfdx._src.core import ShapedArray
from dfdx._src.ir import eval_program, same_program
from dfdx._src.numpy.util import contains_tracer
from dfdx._src.staging import make_program
from dfdx._src.tree import tree_flatten, tree_unflatten

__all__ = ["odeint"]

_scipy_integrate_module = None


def scipy_integrate():
  global _scipy_integrate_module
  if _scipy_integrate_module is None:
    try:
      import scipy.integrate
    except ImportError as e:
      raise ImportError(
          "dfdx.scipy.integrate.odeint solves with SciPy, which is not installed. Install it "
          "with `pip install dfdx[scipy]` (or `pip install scipy`).") from e
    _scipy_integrate_module = scipy.integrate
  return _scipy_integrate_module


_SOLVER_OPTIONS = ("rtol", "atol", "h0", "hmax", "hmin", "mxstep", "tcrit")


def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, ml=None, mu=None,
           rtol=None, atol=None, tcrit=None, h0=0.0, hmax=0.0, hmin=0.0, ixpr=0, mxstep=0,
           mxhnil=0, mxordn=12, mxords=5, printmessg=0, tfirst=False):
  """Differentiable `scipy.integrate.odeint`: y(t) for y' = func(y, t, *args), y(t[0]) = y0.

  With nothing traced this is SciPy's odeint itself. Under a transformation the result is
  differentiable in y0, t and every array in `args`, and in arrays that `func` closes over:
  forward mode by the sensitivity equations, reverse mode by the adjoint method (see the
  module docstring); `func` must then be written with `dfdx.numpy`. Derivatives are as
  accurate as the solves: pass small `rtol` and `atol` when they matter. Options that only
  change the output format (full_output) or the Jacobian (Dfun, ml, mu, col_deriv) are not
  supported under transformations; the step options (rtol, atol, h0, hmax, hmin, mxstep,
  tcrit) are passed to every solve.

  Args:
    func: f(y, t, *args) (or f(t, y, *args) with `tfirst`) returning dy/dt, shape of y.
    y0: the initial state, a scalar or 1-d array (SciPy's rule).
    t: the times, starting with the initial time, monotonic.
    args: extra arguments of func (a tuple; a pytree of arrays under transformations).
  Returns:
    array of shape (len(t), len(y0)), float64.

  >>> import dfdx
  >>> f = lambda k: odeint(lambda y, t, k: -k * y, 1.0, np.array([0.0, 1.0]), (k,),
  ...                      rtol=1e-10, atol=1e-10)[1, 0]
  >>> round(float(dfdx.grad(f)(2.0)), 6)  # d/dk exp(-k) = -exp(-k)
  -0.135335
  """
  if Dfun is not None and not callable(Dfun):
    raise TypeError(
        f"odeint: Dfun must be a function giving func's Jacobian, got "
        f"{type(Dfun).__name__}. func's extra arguments go in one tuple, args=(a, b, ...): "
        "a value passed positionally after args lands in Dfun.")
  options = dict(rtol=rtol, atol=atol, tcrit=tcrit, h0=h0, hmax=hmax, hmin=hmin,
                 mxstep=mxstep)
  leaves, args_tree = tree_flatten(tuple(args) if isinstance(args, (tuple, list)) else (args,))
  if core.current_trace() is None and not contains_tracer([y0, t] + list(leaves)):
    return scipy_integrate().odeint(
        func, y0, t, args=tuple(args) if isinstance(args, (tuple, list)) else (args,),
        Dfun=Dfun, col_deriv=col_deriv, full_output=full_output, ml=ml, mu=mu, ixpr=ixpr,
        mxhnil=mxhnil, mxordn=mxordn, mxords=mxords, printmessg=printmessg, tfirst=tfirst,
        **options)
  unsupported = dict(Dfun=Dfun is not None, col_deriv=bool(col_deriv),
                     full_output=bool(full_output), ml=ml is not None, mu=mu is not None)
  if any(unsupported.values()):
    raise NotImplementedError(
        f"odeint: {[k for k, v in unsupported.items() if v]} are not supported under dfdx "
        "transformations; leave them at their defaults (the Jacobian comes from dfdx).")
  y0 = dnp.asarray(y0)
  if len(y0.shape) > 1:
    raise ValueError("Initial condition y0 must be one-dimensional.")
  y0 = dnp.asarray(dnp.reshape(y0, (-1,)), np.float64)
  t = dnp.asarray(dnp.asarray(t), np.float64)
  if len(t.shape) != 1:
    raise ValueError(f"odeint: t must be a 1-d array of times, got shape {t.shape}.")
  leaves = [dnp.asarray(x) if isinstance(x, (list, tuple)) else x for x in leaves]
  program, lifted = _reuse(*_stage(func, y0.shape, leaves, args_tree, tfirst))
  opts = tuple((k, v) for k, v in options.items() if v is not None and k in _SOLVER_OPTIONS)
  return odeint_p.bind(y0, t, *leaves, *lifted, program=program, options=opts)


def _stage(func, y_shape, leaves, args_tree, tfirst):
  """func as a program (y, t, *args leaves, *closed-over tracers) -> dy/dt. Staged at every
  call: a program kept from an earlier call would hold the values func read then."""
  avals = [ShapedArray(y_shape, np.float64), ShapedArray((), np.float64)]
  avals += [core.get_aval(x) for x in leaves]

  def flat_fun(y, s, *theta):
    args = tree_unflatten(args_tree, theta)
    out = func(s, y, *args) if tfirst else func(y, s, *args)
    out = dnp.asarray(out)
    if tuple(out.shape) not in (y_shape, ()):
      raise ValueError(f"odeint: func returned shape {tuple(out.shape)} for a state of "
                       f"shape {y_shape}.")
    return [dnp.asarray(dnp.broadcast_to(out, y_shape), np.float64)]
  return make_program(flat_fun, avals, record_source=False)


# The right-hand side is staged again at every call (it may read other values), but a program
# equal to one of the last few (same equations, constants equal to the bit) is replaced by
# it, so that its compiled code and its augmented systems are built once.
_RECENT_PROGRAMS = 8
_CONSTANT_ENTRIES = 1 << 20  # programs holding larger constants are not kept
_recent_programs: list = []  # (program, a copy of its constants), the newest last
_recent_lock = threading.Lock()


def _reuse(program, lifted):
  for entry in list(_recent_programs):  # (a copy: other threads may reorder the list)
    recent, consts = entry
    if same_program(recent, program, a_consts=consts):
      with _recent_lock:  # (the newest last)
        k = next((i for i, e in enumerate(_recent_programs) if e is entry), None)
        if k is not None:
          _recent_programs.append(_recent_programs.pop(k))
      return recent, lifted
  if sum(np.size(c) for c in program.const_vals) <= _CONSTANT_ENTRIES:
    with _recent_lock:
      _recent_programs.append((program, [np.array(c, copy=True) if isinstance(c, np.ndarray)
                                         else c for c in program.const_vals]))
      del _recent_programs[:-_RECENT_PROGRAMS]
  return program, lifted


# ---- the right-hand side, and the augmented systems -----------------------------------------
_tangent_programs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_adjoint_programs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_sensitivity_programs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _rhs(program, y, s, theta):
  return eval_program(program, y, s, *theta)[0]


def _rhs_of_floats(program, s, theta, floats):
  """f(y, *floating thetas) at time s: the right-hand side as a function of the arguments
  that are differentiated, the others held at `theta`'s values."""
  def f(y, *th):
    full = list(theta)
    for i, x in zip(floats, th):
      full[i] = x
    return _rhs(program, y, s, full)
  return f


def _float_positions(program):
  """The theta inputs (after y and t) that are differentiable (floating)."""
  return [i for i, v in enumerate(program.in_vars[2:]) if v.aval.dtype.kind == "f"]


def _tangent_program(program):
  """(z = [y, y_dot], s, *theta, *theta_dot) -> [f, df/dy y_dot + df/dtheta theta_dot]."""
  if program in _tangent_programs:
    return _tangent_programs[program]
  from dfdx._src.api import jvp
  n = program.in_vars[0].aval.shape[0]
  floats = _float_positions(program)

  def flat_fun(z, s, *rest):
    theta, theta_dot = rest[:len(rest) - len(floats)], rest[len(rest) - len(floats):]
    f = _rhs_of_floats(program, s, theta, floats)
    f_val, f_dot = jvp(f, (z[:n], *[theta[i] for i in floats]), (z[n:], *theta_dot))
    return [dnp.concatenate([f_val, f_dot])]
  avals = [ShapedArray((2 * n,), np.float64), ShapedArray((), np.float64)]
  avals += [v.aval for v in program.in_vars[2:]] + [program.in_vars[2 + i].aval for i in floats]
  tangent_program, lifted = make_program(flat_fun, avals, record_source=False)
  assert not lifted, lifted
  _tangent_programs[program] = tangent_program
  return tangent_program


def _sensitivity_program(program, k):
  """(z = [y, Y_dot (k rows of n)], s, *theta, *Theta_dot (k rows each)) ->
  [f, the k tangents df/dy y_dot_j + df/dtheta theta_dot_j]: k directions in one state."""
  programs = _sensitivity_programs.setdefault(program, {})
  if k in programs:
    return programs[k]
  from dfdx._src.api import jvp, vmap
  n = program.in_vars[0].aval.shape[0]
  floats = _float_positions(program)

  def flat_fun(z, s, *rest):
    theta, theta_dots = rest[:len(rest) - len(floats)], rest[len(rest) - len(floats):]
    f = _rhs_of_floats(program, s, theta, floats)
    y, float_theta = z[:n], [theta[i] for i in floats]
    dots = vmap(lambda y_dot, *th_dot: jvp(f, (y, *float_theta), (y_dot, *th_dot))[1])(
        dnp.reshape(z[n:], (k, n)), *theta_dots)
    return [dnp.concatenate([f(y, *float_theta), dnp.reshape(dots, (-1,))])]
  avals = [ShapedArray(((1 + k) * n,), np.float64), ShapedArray((), np.float64)]
  avals += [v.aval for v in program.in_vars[2:]]
  avals += [ShapedArray((k,) + program.in_vars[2 + i].aval.shape, np.float64) for i in floats]
  sensitivity_program, lifted = make_program(flat_fun, avals, record_source=False)
  assert not lifted, lifted
  programs[k] = sensitivity_program
  return sensitivity_program


def _adjoint_program(program):
  """(z = [y, a, theta_bar...], s, *theta) -> [f, -a^T df/dy, -a^T df/dtheta...]."""
  if program in _adjoint_programs:
    return _adjoint_programs[program]
  from dfdx._src.api import vjp
  n = program.in_vars[0].aval.shape[0]
  floats = _float_positions(program)
  sizes = [program.in_vars[2 + i].aval.size for i in floats]

  def flat_fun(z, s, *theta):
    f = _rhs_of_floats(program, s, theta, floats)
    f_val, f_vjp = vjp(f, z[:n], *[theta[i] for i in floats])
    cts = f_vjp(z[n:2 * n])
    parts = [f_val] + [-dnp.reshape(dnp.asarray(c, np.float64), (-1,)) for c in cts]
    return [dnp.concatenate(parts)]
  avals = [ShapedArray((2 * n + sum(sizes),), np.float64), ShapedArray((), np.float64)]
  avals += [v.aval for v in program.in_vars[2:]]
  adjoint_program, lifted = make_program(flat_fun, avals, record_source=False)
  assert not lifted, lifted
  _adjoint_programs[program] = adjoint_program
  return adjoint_program


# ---- odeint -----------------------------------------------------------------------------------
odeint_p = core.primitive("odeint")
odeint_tangent_p = core.primitive("odeint_tangent")


def _odeint_impl(y0, t, *theta, program, options):
  from dfdx._src.codegen import helper_function, program_function
  scipy_integrate()  # (SciPy installed, or an ImportError that says what to install)
  return helper_function("_odeint")(program_function(program), options, y0, t, *theta)


def _odeint_abstract_eval(y0, t, *theta, program, options):
  return ShapedArray((t.shape[0], y0.shape[0]), np.float64)


def _zeros_like_aval(x):
  aval = core.get_aval(x)
  return np.zeros(aval.shape, aval.dtype)


def _odeint_jvp(primals, tangents, *, program, options):
  y0, t, *theta = primals
  ys = odeint_p.bind(y0, t, *theta, program=program, options=options)
  floats = _float_positions(program)
  dots = [_zeros_like_aval(y0) if tangents[0] is None else tangents[0],
          _zeros_like_aval(t) if tangents[1] is None else tangents[1]]
  dots += [_zeros_like_aval(theta[i]) if tangents[2 + i] is None else tangents[2 + i]
           for i in floats]
  ys_dot = odeint_tangent_p.bind(*dots, y0, t, *theta, ys, program=program, options=options)
  return ys, ys_dot


def _tangent(*args, program, options):
  """The forward sensitivities (odeint_tangent's value), written with odeint and dfdx ops."""
  floats = _float_positions(program)
  nd = 2 + len(floats)
  (y0_dot, t_dot, *theta_dot), (y0, t, *rest) = args[:nd], args[nd:]
  theta = rest[:-1]
  n = core.shape_of(y0)[0]
  f0 = _rhs(program, y0, t[0], theta)
  start = dnp.concatenate([y0, y0_dot - f0 * t_dot[0]])
  z = odeint_p.bind(start, t, *theta, *theta_dot, program=_tangent_program(program),
                    options=options)
  fs = _rhs_at(program, z[:, :n], t, theta)
  return z[:, n:] + fs * t_dot[:, None]


def _rhs_at(program, ys, t, theta):
  """f(ys[i], t[i]) for every output time."""
  from dfdx._src.api import vmap
  return vmap(lambda y, s: _rhs(program, y, s, theta))(ys, t)


def _tangent_jvp(primals, tangents, *, program, options):
  # odeint_tangent is `_tangent`, so its derivative is the derivative of that composition.
  primals_out, tangents_out = ad.jvp_flat(
      lambda *xs: [_tangent(*xs, program=program, options=options)], list(primals),
      list(tangents))
  return primals_out[0], tangents_out[0]


# Reverse mode solves the adjoint system backwards once per output interval, restarting the
# solver at each output time (where the output's cotangent jumps into the state). With few
# differentiated inputs, k, it is cheaper to solve the k forward sensitivities at once, in
# one solve of n (1 + k) states, and contract them with the cotangents: the transpose does
# that while that state is at most FORWARD_STATE_FACTOR times the adjoint's (2 n + p) plus
# FORWARD_STATE_EXTRA (a solve's cost grows with its state: LSODA's stiff method factors a
# dense Jacobian of it). 0 and 0 give the adjoint always.
FORWARD_STATE_FACTOR = 2
FORWARD_STATE_EXTRA = 64


def _tangent_transpose(ct, *args, program, options):
  floats = _float_positions(program)
  nd = 2 + len(floats)
  dots, (y0, t, *rest) = args[:nd], args[nd:]
  theta, ys = rest[:-1], rest[-1]
  n, num_t = core.shape_of(y0)[0], core.shape_of(t)[0]
  float_theta = [theta[i] for i in floats]
  sizes = [core.get_aval(x).size for x in float_theta]
  linear = [ad.is_linear(d) for d in dots]
  k = (n if linear[0] or linear[1] else 0) + sum(
      size for size, lin in zip(sizes, linear[2:]) if lin)
  if n * (1 + k) <= FORWARD_STATE_FACTOR * (2 * n + sum(sizes)) + FORWARD_STATE_EXTRA:
    return _transpose_by_sensitivities(ct, dots, linear, k, y0, t, theta, ys, program,
                                       options)
  adjoint = _adjoint_program(program)
  a = ct[num_t - 1]
  theta_bar = dnp.zeros(sum(sizes), np.float64)
  for i in range(num_t - 1, 0, -1):
    state = dnp.concatenate([ys[i], a, theta_bar])
    times = dnp.stack([t[i], t[i - 1]])
    back = odeint_p.bind(state, times, *theta, program=adjoint, options=options)[1]
    a, theta_bar = back[n:2 * n] + ct[i - 1], back[2 * n:]
  cts = [a if linear[0] else None,
         _time_cotangent(ct, a, ys, t, theta, program) if linear[1] else None]
  offsets = np.cumsum([0] + sizes)
  for k, x in enumerate(float_theta):
    bar = None
    if linear[2 + k]:
      bar = dnp.reshape(theta_bar[offsets[k]:offsets[k + 1]], core.shape_of(x))
      bar = dnp.asarray(bar, core.get_aval(dots[2 + k]).dtype)
    cts.append(bar)
  return cts + [None] * (len(args) - nd)


def _time_cotangent(ct, y0_bar, ys, t, theta, program):
  """The cotangent of the times: an output time moves its output by f there; the start
  moves the whole solution the way y0 -= f(y0, t0) dt0 does (y0_bar: y0's cotangent)."""
  t_bar = dnp.sum(ct * _rhs_at(program, ys, t, theta), axis=1)
  f0 = _rhs(program, ys[0], t[0], theta)
  return t_bar - dnp.concatenate([dnp.sum(y0_bar * f0)[None],
                                  np.zeros(core.shape_of(t)[0] - 1)])


def _transpose_by_sensitivities(ct, dots, linear, k, y0, t, theta, ys, program, options):
  """odeint_tangent's transpose as the k forward sensitivities of the differentiated inputs
  (`linear`: y0's n when y0 or t is differentiated, then the entries of each differentiated
  theta), solved at once and contracted with the cotangents ct."""
  n, num_t = core.shape_of(y0)[0], core.shape_of(t)[0]
  with_y0 = linear[0] or linear[1]
  shapes = [core.shape_of(theta[i]) for i in _float_positions(program)]
  sizes = [int(np.prod(shape, dtype=int)) for shape in shapes]
  # the k directions: unit vectors of y0's entries, then of each differentiated theta's
  start = np.zeros((k, n))
  theta_dots, row = [], n if with_y0 else 0
  if with_y0:
    start[np.arange(n), np.arange(n)] = 1.0
  for shape, size, lin in zip(shapes, sizes, linear[2:]):
    units = np.zeros((k, size))
    if lin:
      units[np.arange(row, row + size), np.arange(size)] = 1.0
      row += size
    theta_dots.append(units.reshape((k,) + tuple(shape)))
  z = odeint_p.bind(dnp.concatenate([y0, start.reshape(-1)]), t, *theta, *theta_dots,
                    program=_sensitivity_program(program, k), options=options)
  # d ys[i] / d direction j, contracted with ct[i]
  bar = dnp.einsum("im,ijm->j", ct, dnp.reshape(z[:, n:], (num_t, k, n)))
  y0_bar = bar[:n] if with_y0 else None
  cts = [y0_bar if linear[0] else None,
         _time_cotangent(ct, y0_bar, ys, t, theta, program) if linear[1] else None]
  row = n if with_y0 else 0
  for k_, (shape, size, lin) in enumerate(zip(shapes, sizes, linear[2:])):
    bar_k = None
    if lin:
      bar_k = dnp.asarray(dnp.reshape(bar[row:row + size], shape),
                          core.get_aval(dots[2 + k_]).dtype)
      row += size
    cts.append(bar_k)
  return cts + [None] * (len(theta) + 3)  # (y0, t, theta and ys are not linear)


odeint_p.def_impl(_odeint_impl)
odeint_p.def_abstract_eval(_odeint_abstract_eval)
ad.primitive_jvps[odeint_p] = _odeint_jvp
batching.defone_by_one(odeint_p)

odeint_tangent_p.def_impl(_tangent)
odeint_tangent_p.def_abstract_eval(
    lambda *avals, program, options: avals[-1])  # the shape of ys
ad.primitive_jvps[odeint_tangent_p] = _tangent_jvp
ad.primitive_transposes[odeint_tangent_p] = _tangent_transpose
batching.defone_by_one(odeint_tangent_p)
