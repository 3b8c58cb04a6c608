"""Spec lines of the higher-order primitives (see tests/op_specs.py)."""
import numpy as np

import dfdx
import dfdx.numpy as dnp
from dfdx._src.custom import checkpoint_call_p, custom_jvp_call_p, custom_vjp_call_p
from dfdx._src.jit import jit_call_p
from dfdx._src.ops.branches import (_cond, _switch_of, _while, cond_p, while_p,
                                    while_reverse_p, while_tangent_p)
from dfdx._src.ops.control_flow import _scan, python_number_p, scan_p
from tests.op_specs import BINARY_SHAPES, Int, OpSpec

_jitted = dfdx.jit(lambda x, y: dnp.sin(x) * y + x ** 2)


@dfdx.custom_jvp
def _custom_jvp_fun(x, y):
  return dnp.sin(x) * y


@_custom_jvp_fun.defjvp
def _(primals, tangents):
  (x, y), (x_dot, y_dot) = primals, tangents
  return _custom_jvp_fun(x, y), dnp.cos(x) * y * x_dot + dnp.sin(x) * y_dot


@dfdx.custom_vjp
def _custom_vjp_fun(x, y):
  return dnp.sin(x) * y


_custom_vjp_fun.defvjp(lambda x, y: (dnp.sin(x) * y, (x, y)),
                       lambda r, ct: (dnp.cos(r[0]) * r[1] * ct, dnp.sin(r[0]) * ct))

_checkpointed = dfdx.checkpoint(lambda x, y: dnp.sin(x) * y + x ** 2)


SPECS = [
    OpSpec("jit_call", jit_call_p, _jitted, lambda x, y: np.sin(x) * y + x ** 2, BINARY_SHAPES),
    OpSpec("custom_jvp_call", custom_jvp_call_p, _custom_jvp_fun, lambda x, y: np.sin(x) * y,
           BINARY_SHAPES),
    OpSpec("custom_vjp_call", custom_vjp_call_p, _custom_vjp_fun, lambda x, y: np.sin(x) * y,
           [((), ()), ((3,), (3,)), ((2, 3), (2, 3))]),
    OpSpec("checkpoint_call", checkpoint_call_p, _checkpointed,
           lambda x, y: np.sin(x) * y + x ** 2, BINARY_SHAPES),
]


# ---- scan (dfdx/_src/ops/control_flow.py): one equation of scan_p, outside jit too ----
_SCAN = lambda f, init, xs=None, length=None, reverse=False: _scan(  # noqa: E731
    f, init, xs, length, reverse, staged=True)


def _recurrence(c, x):
  c = dnp.sin(c) * x + 0.5 * c
  return c, c * x


def _np_scan(step, init, xs, y_shape, reverse=False):
  carry, ys = init, []
  for x in (xs[::-1] if reverse else xs):
    carry, y = step(carry, x)
    ys.append(y)
  ys = ys[::-1] if reverse else ys
  return carry, (np.stack(ys) if ys else np.zeros((0,) + y_shape))


def _np_recurrence(c, x):
  c = np.sin(c) * x + 0.5 * c
  return c, c * x


def _scanned(c, xs):
  return _SCAN(_recurrence, c, xs)


def _scanned_closure(w, xs):
  """A closed-over value (a const of the body), reverse order, and a carry that is a pair."""
  (a, b), ys = _SCAN(lambda c, x: ((dnp.tanh(c[0] * w + x), c[1] + c[0] * x), c[0] - w * x),
                     (dnp.zeros_like(w) + 0.3, w * 0), xs, reverse=True)
  return a, b, ys


def _np_closure(w, xs):
  (a, b), ys = _np_scan(lambda c, x: ((np.tanh(c[0] * w + x), c[1] + c[0] * x), c[0] - w * x),
                        (np.zeros_like(w) + 0.3, w * 0), xs, np.shape(w), reverse=True)
  return a, b, ys


def _scanned_counter(x):
  """An integer carry (a counter, not differentiated) beside a float one; xs=None."""
  return _SCAN(lambda c, _: ((c[0] + 1, c[1] * dnp.cos(x) + c[0]), None), (0, x),
               length=3)[0][1]


def _np_counter(x):
  i, v = 0, x
  for _ in range(3):
    i, v = i + 1, v * np.cos(x) + i
  return v


_jit_scanned = dfdx.jit(_scanned)
SCAN_SHAPES = [((), (4,)), ((3,), (4, 3)), ((2, 3), (5, 2, 3)), ((3,), (0, 3))]
SPECS += [
    OpSpec("scan", scan_p, _scanned,
           lambda c, xs: _np_scan(_np_recurrence, c, xs, np.shape(c)), SCAN_SHAPES),
    OpSpec("scan under jit", jit_call_p, _jit_scanned,
           lambda c, xs: _np_scan(_np_recurrence, c, xs, np.shape(c)), SCAN_SHAPES[:2]),
    OpSpec("scan closure reverse", scan_p, _scanned_closure, _np_closure, SCAN_SHAPES),
    OpSpec("scan counter", scan_p, _scanned_counter, _np_counter, [((),), ((3,),)]),
]


# ---- while and cond (dfdx/_src/ops/branches.py): one equation each, outside jit too ----
def _halvings(x):
  """Shrink until below 0.1: the number of steps depends on x."""
  return _while(lambda v: dnp.max(dnp.abs(v[0])) > 0.1,
                lambda v: (dnp.sin(v[0]) * 0.5, v[1] + v[0] ** 2), (x, dnp.zeros_like(x)),
                staged=True)


def _np_halvings(x):
  v, s = x, np.zeros_like(x)
  while np.max(np.abs(v)) > 0.1:
    v, s = np.sin(v) * 0.5, s + v ** 2
  return v, s


def _branching(x, y):
  """cond on a value's sign, and a three-way switch on an integer computed from it."""
  a = _cond(dnp.sum(x) > 0, lambda x, y: dnp.sin(x) * y, lambda x, y: x * y ** 2, (x, y),
            staged=True)
  i = dnp.asarray(dnp.floor(dnp.sum(y)), np.int64)
  return a + _switch_of(i, [lambda x: dnp.exp(x), lambda x: x ** 3, lambda x: -x], (x,),
                        staged=True)


def _np_branching(x, y):
  a = np.sin(x) * y if np.sum(x) > 0 else x * y ** 2
  i = min(max(int(np.floor(np.sum(y))), 0), 2)
  return a + [np.exp, lambda x: x ** 3, np.negative][i](x)


SPECS += [
    OpSpec("while", while_p, _halvings, _np_halvings, [((),), ((3,),), ((2, 3),)],
           domain=(0.3, 1.5)),
    OpSpec("while under jit", jit_call_p, dfdx.jit(_halvings), _np_halvings, [((3,),)],
           domain=(0.3, 1.5)),
    OpSpec("cond", cond_p, _branching, _np_branching,
           [((), ()), ((3,), (3,)), ((2, 3), ()), ((3,), (2, 3))]),
    OpSpec("cond under jit", jit_call_p, dfdx.jit(_branching), _np_branching,
           [((3,), (3,)), ((3,), (2, 3))]),
]


# while_tangent: the tangents of 3 steps of v -> sin(v w) + v, linear in (v_dot, w_dot).
def _tangent_step_program(shape):
  from dfdx._src.core import ShapedArray
  from dfdx._src.ops.branches import _tangent_step
  from dfdx._src.staging import make_program
  body, _ = make_program(lambda v, w: [dnp.sin(v * w) + v],
                         [ShapedArray(shape, np.float64), ShapedArray((), np.float64)])
  return _tangent_step(body, 1, [True], [True])


_STEPS = {}


def _while_tangent(v, w, v_dot, w_dot):
  shape = np.shape(v)
  if shape not in _STEPS:
    _STEPS[shape] = _tangent_step_program(shape)
  return while_tangent_p.bind(np.int64(3), v, w, v_dot, w_dot, step=_STEPS[shape], num_vals=1,
                              num_consts=1)[0]


def _np_while_tangent(v, w, v_dot, w_dot):
  for _ in range(3):
    v, v_dot = np.sin(v * w) + v, np.cos(v * w) * (v_dot * w + v * w_dot) + v_dot
  return v_dot


SPECS += [
    OpSpec("while_tangent", while_tangent_p, _while_tangent, _np_while_tangent,
           [((), (), (), ()), ((3,), (), (3,), ())]),
]


# while_reverse: while_tangent's transpose (the same 3 steps), linear in the cotangent.
def _while_reverse(v, w, ct):
  shape = np.shape(v)
  if shape not in _STEPS:
    _STEPS[shape] = _tangent_step_program(shape)
  return while_reverse_p.bind(np.int64(3), v, w, ct, step=_STEPS[shape], num_vals=1,
                              num_consts=1)


def _np_while_reverse(v, w, ct):
  values = []
  for _ in range(3):
    values.append(v)
    v = np.sin(v * w) + v
  ct_w = np.zeros(())
  for v in reversed(values):
    ct_w = ct_w + np.sum(ct * np.cos(v * w) * v)
    ct = ct * (np.cos(v * w) * w + 1)
  return ct, ct_w


SPECS += [
    OpSpec("while_reverse", while_reverse_p, _while_reverse, _np_while_reverse,
           [((), (), ()), ((3,), (), (3,))]),
]

# fori_loop's index under jit: an int made the Python int it stands for (no derivative)
SPECS += [
    OpSpec("python_number", python_number_p, python_number_p.bind, lambda i: i.item(), [((),)],
           domain=[Int(-3, 3)], grad=False),
]
