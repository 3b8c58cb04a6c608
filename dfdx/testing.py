"""Checks of derivatives against finite differences, for dfdx's own rules and for users'
functions.

`check_grads` compares forward mode (JVP) and reverse mode (VJP) with central differences in
float64 along random directions, and recurses to higher orders by checking the derivative
functions themselves. A failure raises AssertionError naming the mode, the order and the two
numbers.

Complex values (in complex128) are checked as pairs of reals, z = x + iy: along complex
directions, with the real inner product <a, b> = Re(sum(conj(a) * b)). dfdx's VJP is the
adjoint for that product (so the gradient of a real function is df/dx + i df/dy, README's
complex-numbers section), so <J^T u, v> = <u, J v> holds as it does for reals. (JAX's
check_grads pairs the same product with conj(vjp(conj(u))), its VJP being the transpose.)
"""
from __future__ import annotations

import numpy as np

from dfdx._src import api
from dfdx._src.tree import tree_flatten, tree_map

__all__ = ["check_grads", "check_jvp", "check_vjp", "numerical_jvp"]


def _dtype64(x):
  """The dtype a check computes in: complex128 for complex values, float64 for the rest."""
  return np.complex128 if np.iscomplexobj(x) else np.float64


def _float64(tree):
  return tree_map(lambda x: np.asarray(x, dtype=_dtype64(x)), tree)


def _random_like(tree, rng):
  """A random direction like `tree`: standard normal, in both parts of a complex value."""
  def random(x):
    if np.iscomplexobj(x):
      return rng.standard_normal(np.shape(x)) + 1j * rng.standard_normal(np.shape(x))
    return rng.standard_normal(np.shape(x))
  return tree_map(random, tree)


def _is_float(x):
  return np.asarray(x).dtype.kind in "fc"


def _axpy(a, x, y):
  return tree_map(lambda xi, yi: yi + a * xi, x, y)


def _inner(x, y):
  """The real inner product of two pytrees: Re(sum(conj(a) * b)) over their float leaves (a
  complex value counts as its two real parts)."""
  xs, _ = tree_flatten(x)
  ys, _ = tree_flatten(y)
  return sum(float(np.real(np.vdot(np.asarray(a, _dtype64(a)), np.asarray(b, _dtype64(b)))))
             for a, b in zip(xs, ys) if _is_float(a) and _is_float(b))


def numerical_jvp(f, args, tangents, eps=1e-5):
  """Central-difference directional derivative of `f` at `args` (a tuple) along `tangents`."""
  plus = f(*_axpy(eps, tangents, args))
  minus = f(*_axpy(-eps, tangents, args))
  return tree_map(lambda p, m: (np.asarray(p, _dtype64(p)) - np.asarray(m, _dtype64(m)))
                  / (2 * eps), plus, minus)


def _close(analytic, numeric, atol, rtol):
  a = np.asarray(analytic, _dtype64(analytic))
  n = np.asarray(numeric, _dtype64(numeric))
  return np.shape(a) == np.shape(n) and bool(np.all(np.abs(a - n) <= atol + rtol * np.maximum(
      np.abs(a), np.abs(n))))


def _name(f):
  return getattr(f, "__name__", repr(f))


def check_jvp(f, args, *, eps=1e-5, atol=1e-5, rtol=1e-5, rng=None, order=1):
  """Check forward mode of `f` at `args` against finite differences along a random tangent."""
  rng = np.random.default_rng(0) if rng is None else rng
  args = _float64(tuple(args))
  tangents = _random_like(args, rng)
  _, analytic = api.jvp(f, args, tangents)
  numeric = numerical_jvp(f, args, tangents, eps)
  a_leaves, _ = tree_flatten(analytic)
  n_leaves, _ = tree_flatten(numeric)
  for i, (a, n) in enumerate(zip(a_leaves, n_leaves)):
    if _is_float(n) and not _close(a, n, atol, rtol):
      raise AssertionError(
          f"check_grads: forward-mode (JVP) derivative of order {order} of {_name(f)} is wrong "
          f"(output leaf {i}): analytic {_summary(a)} vs numerical {_summary(n)}.")


def check_vjp(f, args, *, eps=1e-5, atol=1e-5, rtol=1e-5, rng=None, order=1):
  """Check reverse mode of `f` at `args`: <u, J v> by finite differences against <J^T u, v>."""
  rng = np.random.default_rng(0) if rng is None else rng
  args = _float64(tuple(args))
  tangents = _random_like(args, rng)
  out, vjp_fn = api.vjp(f, *args)
  cotangent = _random_like(out, rng)
  analytic = _inner(vjp_fn(cotangent), tangents)
  numeric = _inner(cotangent, numerical_jvp(f, args, tangents, eps))
  if not _close(analytic, numeric, atol, rtol):
    raise AssertionError(
        f"check_grads: reverse-mode (VJP) derivative of order {order} of {_name(f)} is wrong: "
        f"<J^T u, v> = {analytic!r} (analytic) vs <u, J v> = {numeric!r} (numerical).")


def _summary(x):
  x = np.asarray(x)
  return repr(x.item()) if x.size == 1 else np.array2string(x, precision=8, threshold=12)


def check_grads(f, args, order=2, modes=("fwd", "rev"), eps=1e-5, atol=None, rtol=None,
                rng=None):
  """Check the derivatives of `f` at `args` against central differences in float64, in the
  given modes, up to `order`, along random directions.

  Args:
    f: function of the positional arguments `args` (arrays or pytrees).
    args: tuple of arguments; real ones are checked in float64, complex ones in complex128
      along complex directions (see the module's docstring).
    order: highest derivative order to check (the derivative functions are checked again).
    modes: "fwd" (JVP) and/or "rev" (VJP).
    eps: finite-difference step.
    atol, rtol: tolerances (default 1e-5 each, scaled by magnitude).
    rng: a numpy Generator for the random directions (default: seeded, reproducible).

  Raises:
    AssertionError: naming the mode, the order and the analytic and numerical values.

  >>> import dfdx.numpy as dnp
  >>> check_grads(dnp.sin, (np.array([0.5, 1.0]),), order=2)
  """
  atol = 1e-5 if atol is None else atol
  rtol = 1e-5 if rtol is None else rtol
  rng = np.random.default_rng(0) if rng is None else rng
  modes = (modes,) if isinstance(modes, str) else tuple(modes)
  unknown = set(modes) - {"fwd", "rev"}
  if unknown:
    raise ValueError(f"check_grads: modes must be 'fwd' and/or 'rev', got {sorted(unknown)}.")
  args = _float64(tuple(args))
  _check(f, args, order, modes, eps, atol, rtol, rng, 1)


def _check(f, args, order, modes, eps, atol, rtol, rng, level):
  kwargs = dict(eps=eps, atol=atol, rtol=rtol, rng=rng, order=level)
  if "fwd" in modes:
    check_jvp(f, args, **kwargs)
    if order > 1:
      tangents = _random_like(args, rng)

      def jvp_f(*primals):
        return api.jvp(f, primals, tangents)[1]
      jvp_f.__name__ = f"jvp_of_{_name(f)}"
      _check(jvp_f, args, order - 1, ("fwd",), eps, atol, rtol, rng, level + 1)
  if "rev" in modes:
    check_vjp(f, args, **kwargs)
    if order > 1:
      cotangent = _random_like(api.vjp(f, *args)[0], rng)
      n = len(args)

      def vjp_f(*primals_and_cotangent):
        return api.vjp(f, *primals_and_cotangent[:n])[1](primals_and_cotangent[n])
      vjp_f.__name__ = f"vjp_of_{_name(f)}"
      _check(vjp_f, args + (_float64(cotangent),), order - 1, ("rev",), eps, atol, rtol, rng,
             level + 1)

