"""NumPy code generation rules, one per primitive (see codegen.py for the rule kinds).

Each rule writes the NumPy expression that the primitive's impl evaluates, so that generated
code computes exactly what eager evaluation computes.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from dfdx._src.codegen import (Ufunc, View, helpers, literal, register, result_strides,
                               returns_inputs, runtime_helpers, with_arrays, with_avals,
                               with_constants, with_functions)
from dfdx._src import core as _core
from dfdx._src import layouts
from dfdx._src.ops import checks as _checks
from dfdx._src.ops import contraction as _contraction_ops
from dfdx._src.ops import gaps as _gaps
from dfdx._src.ops import indexing as _indexing_ops
from dfdx._src.ops import reduction as _reduction_ops
from dfdx._src.ops import shape as _shape_ops
from dfdx._src.ops import linalg as _linalg_ops

# ---- elementwise ----------------------------------------------------------------------------
for _prim, _ufunc in {
    "neg": "negative", "add": "add", "sub": "subtract", "mul": "multiply",
    "div": "true_divide", "pow": "power", "sqrt": "sqrt", "cbrt": "cbrt", "exp": "exp",
    "exp2": "exp2", "expm1": "expm1", "log": "log", "log2": "log2", "log10": "log10",
    "log1p": "log1p", "logaddexp": "logaddexp", "sin": "sin", "cos": "cos", "tan": "tan",
    "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan", "sinh": "sinh",
    "cosh": "cosh", "tanh": "tanh", "arcsinh": "arcsinh", "arccosh": "arccosh",
    "arctanh": "arctanh", "arctan2": "arctan2", "hypot": "hypot", "abs": "absolute",
    "sign": "sign", "floor": "floor", "ceil": "ceil", "trunc": "trunc",
    "floor_divide": "floor_divide", "rem": "remainder", "maximum": "maximum",
    "minimum": "minimum", "fmax": "fmax", "fmin": "fmin", "eq": "equal", "ne": "not_equal",
    "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
    "logical_and": "logical_and", "logical_or": "logical_or", "logical_xor": "logical_xor",
    "logical_not": "logical_not", "isnan": "isnan", "isfinite": "isfinite", "isinf": "isinf",
    "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or", "bitwise_xor": "bitwise_xor",
    "invert": "invert", "left_shift": "left_shift", "right_shift": "right_shift",
    "gcd": "gcd", "lcm": "lcm", "bitwise_count": "bitwise_count",
}.items():
  register(_prim, Ufunc(_ufunc))

# Products of the zero-absorbing chain rule (elementwise.zmul, zdiv): 0 where x is 0, or y
# is 0 (a product) or infinite (a quotient); NumPy's warning for the 0 * inf taken as 0 is
# not raised (as in their impls).
helpers["_zero_absorbing"] = '''def _zero_absorbing(ufunc, x, y):
    with np.errstate(invalid="ignore"):
        out = ufunc(x, y)
    if out.dtype.kind in "fc":
        nan = np.isnan(out)
        if nan.any():
            absorbs = np.equal(x, 0) | (np.equal(y, 0) if ufunc is np.multiply else np.isinf(y))
            out = np.where(nan & absorbs, out.dtype.type(0), out)[()]
    return out
'''
register("zmul", lambda ins, p: f"_zero_absorbing(np.multiply, {ins[0]}, {ins[1]})")
register("zdiv", lambda ins, p: f"_zero_absorbing(np.true_divide, {ins[0]}, {ins[1]})")
# Views of a complex array's memory (writing into them would write into the array).
register("real", View(lambda ins, p: f"np.real({ins[0]})"))
register("imag", View(lambda ins, p: f"np.imag({ins[0]})"))
register("conj", Ufunc("conjugate"))
register("complex", lambda ins, p: f"np.add({ins[0]}, np.multiply({ins[1]}, 1j))")
register("integer_pow", with_avals(
    lambda ins, p, in_avals, out_avals: f"np.square({ins[0]})"
    if p["y"] == 2 and in_avals[0].dtype.kind != "b" else f"np.power({ins[0]}, {p['y']})"))
register("round", lambda ins, p: f"np.round({ins[0]}, {p['decimals']})")
register("select", lambda ins, p: f"np.where({ins[0]}, {ins[1]}, {ins[2]})")
register("stop_gradient", View(lambda ins, p: ins[0]))
register("python_number", lambda ins, p: ins[0])  # (weakly typed: codegen writes int(...))
# (0.0, not 0: NumPy resolves the loop for a Python int operand more slowly, see
# codegen._float_literals)
register("logistic", lambda ins, p: f"np.exp(-np.logaddexp(0.0, np.negative({ins[0]})))")

# ---- reductions -----------------------------------------------------------------------------
for _prim, _ufunc in {"reduce_max": "maximum", "reduce_min": "minimum",
                      "reduce_prod": "multiply"}.items():
  register(_prim, lambda ins, p, u=_ufunc: f"np.{u}.reduce({ins[0]}, axis={literal(p['axes'])})")


@with_avals
def _reduce_sum_code(ins, p, in_avals, out_avals):
  """np.add.reduce; a sum over a few trailing entries of many rows adds whole slices, in
  compiled and in exported code (the same bits: ops/reduction.py's _sum_trailing)."""
  x, axes = in_avals[0], p["axes"]
  if (axes and axes[0] == x.ndim - len(axes) and x.dtype.kind == "f"
          and math.prod(x.shape[x.ndim - len(axes):]) <= _reduction_ops._SUM_BY_SLICES_MAX
          and x.size >= 1 << 10):
    return f"_sum_trailing({ins[0]}, {literal(axes)})"
  return f"np.add.reduce({ins[0]}, axis={literal(axes)})"


register("reduce_sum", _reduce_sum_code)
helpers["_sum_trailing"] = inspect.getsource(_reduction_ops._sum_trailing)

# The impls of binary ufunc primitives avoid NumPy's slow short inner loops on batched values
# (ops/elementwise.py); compiled code calls them for such results (codegen._short_inner_loops).
for _p in _core.all_primitives.values():
  _u = getattr(_p.impl, "ufunc", None)
  if _u is not None and _u.nin == 2:
    helpers[f"_blocked_{_u.__name__}"] = (f"def _blocked_{_u.__name__}(x, y):\n"
                                         f"    return np.{_u.__name__}(x, y)\n")
    runtime_helpers[f"_blocked_{_u.__name__}"] = _p.impl
register("argmax", lambda ins, p: f"np.argmax({ins[0]}, axis={p['axis']})")
register("argmin", lambda ins, p: f"np.argmin({ins[0]}, axis={p['axis']})")

helpers["_cumulative"] = '''def _cumulative(fn, x, axis, reverse):
    if not reverse:
        return fn(x, axis=axis)
    return np.flip(fn(np.flip(x, axis), axis=axis), axis)
'''
for _prim in ("cumsum", "cumprod"):
  register(_prim, lambda ins, p, fn=_prim: f"_cumulative(np.{fn}, {ins[0]}, {p['axis']}, True)"
           if p["reverse"] else f"np.{fn}({ins[0]}, axis={p['axis']})")

# ---- shape ----------------------------------------------------------------------------------
@with_avals
def _broadcast_to_code(ins, p, in_avals, out_avals):
  """np.broadcast_to's view, or a small result written out as the impl writes it (ops/
  shape.py): a product that reads it then runs the kernel it runs eagerly (np.dot sums a
  row of a broadcast view in another order than a written one, and a compiled reverse pass
  must give the interpreted pass's bits)."""
  if _shape_ops.written_out(p["shape"]):
    return f"_broadcast_written({ins[0]}, {literal(p['shape'])})"
  return f"np.broadcast_to({ins[0]}, {literal(p['shape'])})"


register("broadcast_to", View(_broadcast_to_code))
helpers["_broadcast_written"] = inspect.getsource(_shape_ops._broadcast_written)
# On a value certainly held as an array, the methods (a fifth of the cost of the functions,
# which dispatch through Python).
register("reshape", View(with_arrays(
    lambda ins, p, in_avals, out_avals, arrays: f"{ins[0]}.reshape({literal(p['shape'])})"
    if arrays[0] else f"np.reshape({ins[0]}, {literal(p['shape'])})")))


@with_arrays
def _transpose_code(ins, p, in_avals, out_avals, arrays):
  if not arrays[0]:
    return f"np.transpose({ins[0]}, {literal(p['perm'])})"
  return f"{ins[0]}.T" if p["perm"] == (1, 0) else f"{ins[0]}.transpose({literal(p['perm'])})"


register("transpose", View(_transpose_code))
register("rev", View(lambda ins, p: f"np.flip({ins[0]}, {literal(p['axes'])})"))
register("slice", View(with_arrays(lambda ins, p, in_avals, out_avals, arrays: (
    ins[0] if arrays[0] else f"np.asarray({ins[0]})") + "[" + ", ".join(
    f"{a}:{b}:{c}" for a, b, c in zip(p["start"], p["limit"], p["strides"])) + ",]")))
register("concatenate", lambda ins, p: f"np.concatenate(({', '.join(ins)},), axis={p['axis']})")
register("convert_element_type", with_arrays(
    lambda ins, p, in_avals, out_avals, arrays:
    f"{ins[0] if arrays[0] else f'np.asarray({ins[0]})'}"
    f"{'.real' if in_avals[0].dtype.kind == 'c' and p['new_dtype'].kind != 'c' else ''}"
    f".astype({literal(p['new_dtype'])})"))  # complex to real: the real part, unwarned
helpers["_pad"] = '''def _pad(x, config):
    x = np.asarray(x)
    shape = tuple(lo + hi + n + max(n - 1, 0) * i for n, (lo, hi, i) in zip(x.shape, config))
    out = np.zeros(shape, x.dtype)
    out[tuple(slice(lo, lo + n + max(n - 1, 0) * i, i + 1)
              for n, (lo, hi, i) in zip(x.shape, config))] = x
    return out
'''
# (specialized to the shapes: the output's shape and where x goes, computed here, so that a
# pad of a few entries, as reverse mode's transpose of y[0] is, costs a zeros and a store)
helpers["_pad_into"] = '''def _pad_into(x, shape, dtype, index):
    out = np.zeros(shape, dtype)
    out[index] = x
    return out
'''


@with_avals
def _pad_code(ins, p, in_avals, out_avals):
  (xa,), (out,) = in_avals, out_avals
  if any(lo < 0 or hi < 0 for lo, hi, _ in p["config"]):  # (negative padding: the general)
    return f"_pad({ins[0]}, {literal(p['config'])})"
  index = "".join(f"slice({lo}, {lo + n + max(n - 1, 0) * i}, {i + 1}), "
                  for n, (lo, _, i) in zip(xa.shape, p["config"]))
  return f"_pad_into({ins[0]}, {literal(out.shape)}, {literal(out.dtype)}, ({index}))"


register("pad", _pad_code)


# ---- contractions and linear algebra ---------------------------------------------------------


def _permuted(expr, perm):
  return expr if perm == tuple(range(len(perm))) else f"{expr}.transpose({literal(perm)})"


def _reshaped(expr, shape, current):
  return expr if tuple(shape) == tuple(current) else f"{expr}.reshape({literal(tuple(shape))})"


def _inner_contraction(xa, ya, dimension_numbers):
  """(x's free axes, y's leading free axes, y's trailing free axes) where the contraction is
  a matrix (or vector) x applied to consecutive axes of y between free ones, with no batch
  axes and not one of the impl's other forms (a broadcast multiply, an einsum); else None.
  The code is then np.matmul broadcast over y's leading axes (see _dot_general_code)."""
  (xc, yc), (xb, yb) = dimension_numbers
  if xb or yb or not xc or tuple(yc) != tuple(range(yc[0], yc[0] + len(yc))) \
          or yc[0] == 0 or yc[-1] == ya.ndim - 1:
    return None
  if _contraction_ops._dot_plan(xa.shape, ya.shape, dimension_numbers)[0] in ("mul", "einsum"):
    return None
  xf = tuple(i for i in range(xa.ndim) if i not in xc)
  return xf, tuple(range(yc[0])), tuple(range(yc[-1] + 1, ya.ndim))


@with_avals
def _dot_general_code(ins, p, in_avals, out_avals):
  """Specialized to the shapes: operands permuted to (batch, free, contract) and multiplied
  with np.matmul (batched) or np.dot, or a broadcast multiply or np.einsum where the impl
  uses them (see ops/contraction.py), with no per-call shape arithmetic."""
  (xc, yc), (xb, yb) = p["dimension_numbers"]
  (xa, ya), (out,) = in_avals, out_avals
  xf = tuple(i for i in range(xa.ndim) if i not in xc and i not in xb)
  yf = tuple(i for i in range(ya.ndim) if i not in yc and i not in yb)
  size = lambda aval, axes: math.prod(aval.shape[i] for i in axes)
  # Values of rank >= 1 are always arrays in generated code; 0-d ones may be NumPy scalars.
  x = ins[0] if xa.ndim else f"np.asarray({ins[0]})"
  y = ins[1] if ya.ndim else f"np.asarray({ins[1]})"
  kind, x_perm, x_shape, y_perm, y_shape, _ = _contraction_ops._dot_plan(
      xa.shape, ya.shape, p["dimension_numbers"])
  if kind == "mul":  # (the impl's two forms that are not matrix products)
    xp = _reshaped(_permuted(x, xb + xf), x_shape, [xa.shape[i] for i in xb + xf])
    yp = _reshaped(_permuted(y, yb + yf), y_shape, [ya.shape[i] for i in yb + yf])
    expr = f"np.multiply({xp}, {yp})"
    result_shape = out.shape
  elif kind == "einsum":
    expr = f"np.einsum({x_shape!r}, {x}, {y})"
    result_shape = out.shape
  elif xb:
    b, f, c, g = size(xa, xb), size(xa, xf), size(xa, xc), size(ya, yf)
    xp = _reshaped(_permuted(x, xb + xf + xc), (b, f, c), [xa.shape[i] for i in xb + xf + xc])
    yp = _reshaped(_permuted(y, yb + yc + yf), (b, c, g), [ya.shape[i] for i in yb + yc + yf])
    # (one term per entry, as per-example gradients' outer products: a broadcast product,
    # the same values, without a matrix product's setup per batch entry)
    expr = f"np.{'multiply' if c == 1 else 'matmul'}({xp}, {yp})"
    result_shape = (b, f, g)
  elif (inner := _inner_contraction(xa, ya, p["dimension_numbers"])) is not None:
    # y's contracted axes sit between free ones: np.matmul broadcasts x over y's leading
    # axes, where permuting y to (contracted, free) would copy it (a matrix applied to one
    # axis of a stack, as forward mode's tangents are).
    _, lead, trail = inner
    f, c, n_lead, n_trail = size(xa, xf), size(xa, xc), size(ya, lead), size(ya, trail)
    xp = _reshaped(_permuted(x, xf + xc), (f, c) if xf else (c,),
                   [xa.shape[i] for i in xf + xc])
    yp = _reshaped(y, (n_lead, c, n_trail), ya.shape)
    expr = f"np.matmul({xp}, {yp})"
    expr, result_shape = ((f"{expr}.transpose((1, 0, 2))", (f, n_lead, n_trail)) if xf
                          else (expr, (n_lead, n_trail)))
  elif xc:
    f, c, g = size(xa, xf), size(xa, xc), size(ya, yf)
    xs, ys = ((f, c) if xf else (c,)), ((c, g) if yf else (c,))
    xp = _reshaped(_permuted(x, xf + xc), xs, [xa.shape[i] for i in xf + xc])
    yp = _reshaped(_permuted(y, yc + yf), ys, [ya.shape[i] for i in yc + yf])
    expr = f"np.dot({xp}, {yp})"
    result_shape = xs[:-1] + ys[1:]
  else:
    expr = f"np.multiply.outer({x}, {y})"
    result_shape = xa.shape + ya.shape
  expr = _reshaped(expr, out.shape, result_shape)
  dtype = out.dtype
  if math.prod(out.shape) and (xa.dtype != dtype or ya.dtype != dtype):
    expr = f"{expr}.astype({literal(dtype)})"
  return expr


register("dot_general", _dot_general_code)

# The zero-absorbing chain rule's contraction (ops/contraction.py, zdot_general): the product
# with terms pairing 0 and a non-finite factor counted as 0.
helpers["_zero_absorbing_dot"] = inspect.getsource(_contraction_ops._zero_absorbing_dot)
register("zdot_general", with_avals(lambda ins, p, in_avals, out_avals: (
    f"_zero_absorbing_dot(lambda _x, _y: "
    f"{_dot_general_code(['_x', '_y'], p, in_avals, out_avals)}, {ins[0]}, {ins[1]})")))


def _dot_general_strides(in_avals, p, out):
  """The result of the np.matmul form for an inner contraction (above) is a transposed view:
  y's leading free axes outermost, then x's free axes, then y's trailing ones."""
  (xa, ya) = in_avals
  inner = _inner_contraction(xa, ya, p["dimension_numbers"])
  if inner is None or not inner[0]:  # (a vector x: the result is np.matmul's, C-ordered)
    return None
  x_shape, lead, trail = ([a.shape[i] for i in axes]
                          for a, axes in zip((xa, ya, ya), inner))
  n_trail, f = math.prod(trail), math.prod(x_shape)
  return (tuple(s * n_trail for s in layouts.c_strides(x_shape))
          + tuple(s * f * n_trail for s in layouts.c_strides(lead)) + layouts.c_strides(trail))


result_strides["dot_general"] = _dot_general_strides
register("det", lambda ins, p: f"np.linalg.det({ins[0]})")
register("solve", lambda ins, p: f"np.linalg.solve({ins[0]}, {ins[1]})")


# ---- indexing -----------------------------------------------------------------------------


def _index_parts(spec, arrays, subscript):
  """The entries of the NumPy index: slices as a:b:c in a subscript, else slice(a, b, c)."""
  parts = []
  for e in spec:
    if e is None:
      parts.append("None")
    elif e is Ellipsis:
      parts.append("...")
    elif type(e) is tuple:
      parts.append(":".join("" if v is None else str(v) for v in e) if subscript
                   else f"slice{e!r}")
    elif type(e).__name__ == "ArrayIndex":
      parts.append(arrays[e.k])
    else:
      parts.append(str(int(e)))
  return parts


def _index_expr(spec, arrays):
  """The index as a tuple expression."""
  return "(" + "".join(p + ", " for p in _index_parts(spec, arrays, False)) + ")"


def take_along(in_avals, spec):
  """The axis a gather's code takes along with np.take (see below), or None."""
  if len(in_avals) == 2 and in_avals[1].dtype.kind in "iu":
    x, index = in_avals
    axis = _indexing_ops.take_axis(spec, x.shape)
    if axis or (axis == 0 and x.ndim > 1 and index.ndim and index.shape[0] >= x.shape[0]):
      return axis
  return None


@with_arrays
def _gather_code(ins, p, in_avals, out_avals, arrays):
  """np.take along one axis past the first, or of rows at least as many as there are (it
  copies a strided operand once, then whole rows: 2-5x faster than fancy indexing, which
  stays for fewer rows and for vectors); fancy indexing otherwise. On an array, the method
  (np.take dispatches through Python: 3.7 us against 1.6 on a small array)."""
  x = ins[0] if arrays[0] else f"np.asarray({ins[0]})"
  axis = take_along(in_avals, p["spec"])
  if axis is not None:
    return f"{x}.take({ins[1]}, axis={axis})"
  parts = _index_parts(p["spec"], ins[1:], True)
  subscript = ", ".join(parts) + "," if parts else "()"
  return f"{x}[{subscript}]"


register("gather", View(_gather_code))
helpers["_scatter"] = '''def _scatter(ufunc, x, updates, index):
    out = np.array(x, copy=True)
    if ufunc is None:
        out[index] = updates
    else:
        ufunc.at(out, index, updates)
    return out
'''
for _prim, _ufunc in (("scatter", "None"), ("scatter_add", "np.add"),
                      ("scatter_mul", "np.multiply"), ("scatter_min", "np.minimum"),
                      ("scatter_max", "np.maximum")):
  register(_prim, lambda ins, p, u=_ufunc: f"_scatter({u}, {ins[0]}, {ins[1]}, "
           f"{_index_expr(p['spec'], ins[2:])})")

# scatter_add into zeros along one axis at constant indices (the transpose of a gather at a
# constant index: the gradients of indexing): planned now, from the index values. Positions
# updated once take their update (a gather), positions updated several times the sum of theirs
# (one np.add.reduceat over the updates sorted stably by position), the others zero: 3-5x
# faster than np.add.at, which visits the updates one by one. A sum of 8 or more updates at one
# position may round differently in the last bits (NumPy sums pairwise, np.add.at in order),
# as any change of summation order; onto a nonzero base, np.add.at's order is kept. At an
# index the program receives (a reverse pass's, from the forward pass's indexing), the plan
# is made by the first call and kept while the index's values last, as the impl does.
helpers["_scatter_add_axis"] = inspect.getsource(_indexing_ops._scatter_add_axis)
helpers["scatter_add_plan"] = inspect.getsource(_indexing_ops.scatter_add_plan)
helpers["_scatter_add_zeros"] = ("_scatter_plans = {}\n\n\n"
                                 + inspect.getsource(_indexing_ops._scatter_add_zeros))


@with_constants
def _scatter_add_code(ins, p, in_avals, out_avals, constants):
  (x_aval, u_aval), x = in_avals[:2], constants.value(0)
  if len(ins) != 3:  # (a basic index, or several index arrays)
    return f"_scatter(np.add, {ins[0]}, {ins[1]}, {_index_expr(p['spec'], ins[2:])})"
  index, axis = constants.value(2), _indexing_ops.take_axis(p["spec"], x_aval.shape)
  if axis is not None and x is not None and not np.any(x) and \
      x_aval.dtype.kind in "iufc" and in_avals[2].dtype.kind in "iu":
    plan = None if index is None else \
        _indexing_ops.scatter_add_plan(index, x_aval.shape[axis])
    if plan is not None:
      return (f"_scatter_add_axis({literal(x_aval.shape)}, {ins[1]}, {axis}, "
              f"{constants.hoist(plan)})")
    if index is None and in_avals[2].ndim == 1 and \
        u_aval.size >= _indexing_ops._PLANNED_MIN_SIZE:
      return f"_scatter_add_zeros({literal(x_aval.shape)}, {ins[1]}, {axis}, {ins[2]})"
  return f"_scatter(np.add, {ins[0]}, {ins[1]}, {_index_expr(p['spec'], ins[2:])})"


register("scatter_add", _scatter_add_code)


# ---- sorting and more of NumPy ----
register("sort", lambda ins, p: f"np.sort({ins[0]}, axis={p['axis']}, kind={p['kind']!r})")
register("argsort", lambda ins, p: f"np.argsort({ins[0]}, axis={p['axis']}, kind={p['kind']!r})")
register("partition", lambda ins, p: f"np.partition({ins[0]}, {literal(p['kth'])}, "
                                     f"axis={p['axis']})")
register("argpartition", lambda ins, p: f"np.argpartition({ins[0]}, {literal(p['kth'])}, "
                                        f"axis={p['axis']})")
helpers["_searchsorted"] = '''def _searchsorted(a, v, side, batch_ndim):
    a, v = np.asarray(a), np.asarray(v)
    out = np.empty(v.shape, np.intp)
    for i in np.ndindex(a.shape[:batch_ndim]):
        out[i] = np.searchsorted(a[i], v[i], side=side)
    return out
'''
register("searchsorted", lambda ins, p: (
    f"np.searchsorted({ins[0]}, {ins[1]}, side={p['side']!r})" if p["batch_ndim"] == 0 else
    f"_searchsorted({ins[0]}, {ins[1]}, {p['side']!r}, {p['batch_ndim']})"))
for _prim in ("signbit", "spacing", "nextafter", "fmod", "ldexp"):
  register(_prim, Ufunc(_prim))
register("frexp_exponent", lambda ins, p: f"np.frexp({ins[0]})[1]")


# ---- linear algebra decompositions ----
# The multiple-result primitives unpack NumPy's result tuples; adjugate and lstsq call helpers
# that compute exactly what their impls in dfdx/_src/ops/linalg.py compute.
helpers["_linalg_adjugate"] = _linalg_ops.ADJUGATE_SOURCE
helpers["_linalg_lstsq"] = '''def _linalg_lstsq(a, b, rcond, out_dtypes):
    a, b = np.asarray(a), np.asarray(b)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    (m, n), k = a.shape[-2:], b.shape[-1]
    shapes = ((n, k), (k if m > n else 0,), (), (min(m, n),))
    outs = [np.empty(batch + s, d) for s, d in zip(shapes, out_dtypes)]
    for i in np.ndindex(*batch):
        x, res, rank, s = np.linalg.lstsq(a[i], b[i], rcond=rcond)
        if m > n and res.shape[0] != k:
            res = np.sum(np.square(b[i] - a[i] @ x), axis=0)
        for out, value in zip(outs, (x, res, rank, s)):
            out[i] = value
    return outs
'''
register("adjugate", lambda ins, p: f"_linalg_adjugate({ins[0]})")
register("slogdet", lambda ins, p: f"np.linalg.slogdet({ins[0]})")
register("cholesky", lambda ins, p: f"np.linalg.cholesky({ins[0]}, upper={p['upper']!r})")
register("qr", lambda ins, p: f"np.linalg.qr({ins[0]}, "
         f"mode={'complete' if p['full_matrices'] else 'reduced'!r})")
register("eigh", lambda ins, p: f"np.linalg.eigh({ins[0]}, UPLO={'L' if p['lower'] else 'U'!r})")
register("svd", lambda ins, p: f"np.linalg.svd({ins[0]}, full_matrices={p['full_matrices']!r})"
         if p["compute_uv"] else f"(np.linalg.svd({ins[0]}, compute_uv=False),)")
register("pinv", lambda ins, p: f"np.linalg.pinv({ins[0]}, {literal(p['rcond'])}, "
         f"{p['hermitian']!r})")
register("lstsq", with_avals(lambda ins, p, in_avals, out_avals: (
    f"_linalg_lstsq({ins[0]}, {ins[1]}, {literal(p['rcond'])}, "
    f"{literal(tuple(a.dtype for a in out_avals))})")))
# triangular_solve: LAPACK's trtrs through SciPy where it imports, NumPy's solve on the
# triangle otherwise (the impl's own source, so exported code runs with NumPy alone); compiled
# code calls the impl's function, which keeps the LAPACK routines it looked up.
helpers["_linalg_triangular_solve"] = _linalg_ops.TRIANGULAR_SOLVE_SOURCE
runtime_helpers["_linalg_triangular_solve"] = \
    _linalg_ops._triangular_namespace["_linalg_triangular_solve"]
register("triangular_solve", with_avals(lambda ins, p, in_avals, out_avals: (
    f"_linalg_triangular_solve({ins[0]}, {ins[1]}, {p['lower']!r}, {p['trans']!r}, "
    f"{p['unit_diagonal']!r}, {literal(out_avals[0].dtype)}, {p['check']!r})")))


# ---- special functions and SciPy ----
# The special functions are SciPy's ufuncs, imported by the generated code when it first runs.
helpers["_scipy_special"] = '''def _scipy_special():
    import scipy.special
    return scipy.special
'''
for _prim in ("erf", "erfc", "erfinv", "erfcinv", "erfcx", "ndtr", "log_ndtr", "ndtri", "gamma",
              "gammaln", "rgamma", "digamma", "polygamma", "beta", "betaln", "j0", "j1", "y0",
              "y1", "i0", "i1", "i0e", "i1e", "k0", "k1", "k0e", "k1e", "jv", "yv", "yn", "iv",
              "ive", "kv", "kve", "gammainc", "gammaincc", "betainc", "stdtr"):
  register(_prim, lambda ins, p, n=_prim: f"_scipy_special().{n}({', '.join(ins)})")

from dfdx._src.codegen import MissingCodegenRuleError  # noqa: E402

# ---- scan (ops/control_flow.py): the loop over the steps with the body's code inside ---------
# (program_source's `loop`); `_scan_loop` calls a body function per step, for a body that
# has no code of its own (a primitive without a rule, evaluated equation by equation).
helpers["_scan_loop"] = '''def _scan_loop(step, num_carry, num_xs, length, reverse, ys_like, *args):
    carry = args[:num_carry]
    xs = args[num_carry:num_carry + num_xs]
    consts = args[num_carry + num_xs:]
    ys = [np.empty((length,) + shape, dtype) for shape, dtype in ys_like]
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = step(*carry, *[x[i] for x in xs], *consts)
        carry = outs[:num_carry]
        for stacked, y in zip(ys, outs[num_carry:]):
            stacked[i] = y
    return (*carry, *ys)
'''


@with_functions
def _scan_rule(ins, p, in_avals, out_avals, functions):
  loop = functions.define(p["body"], (p["num_carry"], p["num_xs"], p["length"], p["reverse"]))
  return f"{loop}({', '.join(ins)})"


register("scan", _scan_rule)

# ---- while and cond (ops/branches.py) -------------------------------------------------------
helpers["_while_loop"] = '''def _while_loop(test, step, num_vals, num_cond_consts, *args):
    vals = args[:num_vals]
    cond_consts = args[num_vals:num_vals + num_cond_consts]
    body_consts = args[num_vals + num_cond_consts:]
    while test(*vals, *cond_consts)[0]:
        vals = step(*vals, *body_consts)
    return vals
'''


@with_functions
def _while_rule(ins, p, in_avals, out_avals, functions):
  test = functions.define(p["cond"])
  step = functions.define(p["body"])
  return (f"_while_loop({test}, {step}, {p['num_vals']}, {p['num_cond_consts']}"
          f"{''.join(', ' + i for i in ins)})")


register("while", _while_rule)

helpers["_tangent_loop"] = '''def _tangent_loop(step, num_vals, num_consts, num_t, n, *args):
    vals = args[:num_vals]
    consts = args[num_vals:num_vals + num_consts]
    tangents = args[num_vals + num_consts:num_vals + num_consts + num_t]
    const_tangents = args[num_vals + num_consts + num_t:]
    for _ in range(int(n)):
        outs = step(*vals, *consts, *tangents, *const_tangents)
        vals, tangents = outs[:num_vals], outs[num_vals:]
    return tuple(tangents)
'''


@with_functions
def _while_tangent_rule(ins, p, in_avals, out_avals, functions):
  step = functions.define(p["step"])
  return (f"_tangent_loop({step}, {p['num_vals']}, {p['num_consts']}, {len(out_avals)}"
          f"{''.join(', ' + i for i in ins)})")


register("while_tangent", _while_tangent_rule)

helpers["_reverse_loop"] = '''def _reverse_loop(forward, backward, num_vals, num_consts, acc_like,
                  budget, n, *args):
    vals = args[:num_vals]
    consts = args[num_vals:num_vals + num_consts]
    cts = args[num_vals + num_consts:]
    n = int(n)
    per_step = sum(getattr(v, "nbytes", 8) for v in vals)
    # every step's values where they fit in `budget` bytes; else every k-th step's (k about
    # sqrt(n)), and each stretch of k steps computed again from its first when reached
    k = max(n, 1) if n * per_step <= budget else max(1, int(np.ceil(np.sqrt(n))))
    kept = []
    for i in range(n):
        if k >= n or i % k == 0:
            kept.append(vals)
        if i < n - 1:
            vals = forward(*vals, *consts)
    num_t = len(cts)
    acc = None
    for start in reversed(range(0, n, k)):
        if k >= n:
            saved = kept
        else:
            saved = [kept[start // k]]
            for _ in range(start + 1, min(start + k, n)):
                saved.append(forward(*saved[-1], *consts))
        for vals in reversed(saved):
            outs = backward(*vals, *consts, *cts)
            cts = outs[:num_t]
            acc = outs[num_t:] if acc is None else [a + b for a, b in zip(acc, outs[num_t:])]
    if acc is None:
        acc = [np.zeros(shape, dtype) for shape, dtype in acc_like]
    return (*cts, *acc)
'''


@with_functions
def _while_reverse_rule(ins, p, in_avals, out_avals, functions):
  from dfdx._src.ops import branches
  fwd, back = branches._cached_parts(p["step"], p["num_vals"], p["num_consts"])
  fwd = functions.define(fwd)
  back = functions.define(back)
  num_t = len(p["step"].outs) - p["num_vals"]
  acc_like = tuple((a.shape, a.dtype.name) for a in out_avals[num_t:])
  return (f"_reverse_loop({fwd}, {back}, {p['num_vals']}, {p['num_consts']}, "
          f"{literal(acc_like)}, {branches.REVERSE_LOOP_BYTES}"
          f"{''.join(', ' + i for i in ins)})")


register("while_reverse", _while_reverse_rule)

helpers["_cond_branch"] = '''def _cond_branch(index, branches, num_consts, *args):
    k = min(max(int(index), 0), len(branches) - 1)
    n_ops = len(args) - sum(num_consts)
    start = n_ops + sum(num_consts[:k])
    return branches[k](*args[:n_ops], *args[start:start + num_consts[k]])
'''


@with_functions
def _cond_rule(ins, p, in_avals, out_avals, functions):
  names = [functions.define(b) for b in p["branches"]]
  return (f"_cond_branch({ins[0]}, ({', '.join(names)},), {literal(p['num_consts'])}"
          f"{''.join(', ' + i for i in ins[1:])})")


register("cond", _cond_rule)

# The matrix functions call their primitive's impl (SciPy with dfdx's checks and batching).
# Params that cannot be written as source stay in `opaque_params`, so such code runs only in
# the process that generated it.
helpers["_dfdx_impl"] = '''def _dfdx_impl(name, *args, **params):
    from dfdx._src import core
    return core.all_primitives[name].impl(*args, **params)
'''
helpers["_dfdx_impl_opaque"] = '''def _dfdx_impl_opaque(name, key, *args):
    from dfdx._src import codegen_rules, core
    return core.all_primitives[name].impl(*args, **codegen_rules.opaque_params[key])
'''
opaque_params: list = []


def _impl_call(name):
  @returns_inputs
  def rule(ins, p):
    args = "".join(", " + i for i in ins)
    try:
      kwargs = "".join(f", {k}={literal(v)}" for k, v in p.items())
    except MissingCodegenRuleError:
      opaque_params.append(dict(p))
      return f"_dfdx_impl_opaque({name!r}, {len(opaque_params) - 1}{args})"
    return f"_dfdx_impl({name!r}{args}{kwargs})"
  return rule


# custom_root and linear_solve call the user's solvers, which run on concrete values: their
# params (programs, the solvers) are constants of the compiled code, freed with it.
helpers["_dfdx_impl_with"] = '''def _dfdx_impl_with(name, params, *args):
    from dfdx._src import core
    return core.all_primitives[name].impl(*args, **params)
'''


def _solver_call(name):
  @returns_inputs
  @with_constants
  def rule(ins, p, in_avals, out_avals, constants):
    return f"_dfdx_impl_with({name!r}, {constants.hoist(dict(p))}{''.join(', ' + i for i in ins)})"
  return rule


for _prim in ("custom_root", "linear_solve"):
  register(_prim, _solver_call(_prim))

# check: the value, or the function's own error where it fails (see ops/checks.py)
helpers["_dfdx_check"] = inspect.getsource(_checks.failed).replace("def failed(", "def _failed(") + \
    '''

def _dfdx_check(kind, error, message, x):
    if _failed(kind, x):
        raise {"ZeroDivisionError": ZeroDivisionError, "LinAlgError": np.linalg.LinAlgError,
               "ValueError": ValueError}[error](message)
    return x
'''
register("check", returns_inputs(lambda ins, p: f"_dfdx_check({p['kind']!r}, {p['error']!r}, "
                                  f"{p['message']!r}, {ins[0]})"))

for _prim in ("expm", "expm_frechet", "logm", "logm_frechet", "sqrtm", "solve_sylvester",
              "lu_factor", "lu_pivots_to_permutation", "gammainc_grad_a", "betainc_grad"):
  register(_prim, _impl_call(_prim))

# odeint: SciPy's solver on the right-hand side, a function of its own (with_functions), so
# that exported code (to_source) runs with NumPy and SciPy alone. Reverse mode's adjoint
# solves are odeints too; odeint_tangent (forward mode) is its definition, traced to a
# program of odeints and dfdx ops and written out as a function.
helpers["_odeint"] = '''def _odeint(rhs, options, y0, t, *theta):
    import scipy.integrate
    theta = [np.asarray(x) for x in theta]
    with np.errstate(all="ignore"):
        out = scipy.integrate.odeint(lambda y, s: rhs(y, np.float64(s), *theta)[0],
                                     np.asarray(y0, np.float64), np.asarray(t, np.float64),
                                     **dict(options))
    return np.asarray(out, np.float64)
'''


@with_functions
def _odeint_rule(ins, p, in_avals, out_avals, functions):
  rhs = functions.define(p["program"])
  return f"_odeint({rhs}, {literal(p['options'])}{''.join(', ' + i for i in ins)})"


register("odeint", _odeint_rule)


@with_functions
def _odeint_tangent_rule(ins, p, in_avals, out_avals, functions):
  from dfdx._src.scipy_integrate import _tangent
  from dfdx._src.staging import make_program
  program, _ = make_program(lambda *args: [_tangent(*args, **p)], in_avals,
                            record_source=False)
  tangent = functions.define(program)
  return f"{tangent}({', '.join(ins)})[0]"


register("odeint_tangent", _odeint_tangent_rule)

# ---- fft ----------------------------------------------------------------------------------
register("fft", lambda ins, p: f"np.fft.{p['fft_type']}n({ins[0]}, s={literal(p['lengths'])}, "
         f"axes={literal(p['axes'])}, norm={p['norm']!r})")

# ---- eig ----------------------------------------------------------------------------------
register("eig", _impl_call("eig"))  # numpy.linalg.eig, always complex (see ops/linalg.py)

# ---- gaps of a spectrum (ops/gaps.py) -----------------------------------------------------
helpers["_gap_div"] = '''def _gap_div(x, gap, tol):
    tie = np.abs(gap) <= tol
    return np.where(tie, 0, x / np.where(tie, 1, gap))
'''
# A reverse pass's division notes ties when compiled by jit (which then computes the call
# again without jit, see jit.py); a standalone source just divides.
helpers["_gap_div_noted"] = '''def _gap_div_noted(x, gap, tol, difference):
    tie = np.abs(gap) <= tol
    return np.where(tie, 0, x / np.where(tie, 1, gap))
'''
runtime_helpers["_gap_div_noted"] = _gaps.noted_gap_div
register("gap_div", lambda ins, p: (
    f"_gap_div_noted({ins[0]}, {ins[1]}, {ins[2]}, {p['difference']!r})" if p["cotangent"]
    else f"_gap_div({ins[0]}, {ins[1]}, {ins[2]})"))

# ---- exp1, expi, zeta, ndtri_exp, binom (ops/special.py): SciPy's functions ----------------
for _prim in ("exp1", "expi", "zeta", "ndtri_exp", "binom"):
  register(_prim, lambda ins, p, n=_prim: f"_scipy_special().{n}({', '.join(ins)})")
register("riemann_zeta", lambda ins, p: f"_scipy_special().zeta({ins[0]})")
