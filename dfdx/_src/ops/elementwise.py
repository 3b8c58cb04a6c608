"""Elementwise primitives. Each is a NumPy ufunc with NumPy's broadcasting and dtype
promotion; its rules are written with the functions of this module, so they can be
differentiated again.

Binary transposes sum the cotangent back to the operand's shape (`_unbroadcast`), so
broadcasting costs nothing in the forward pass. Comparisons, rounding and sign have zero
derivatives (not errors). Ties in maximum/minimum split the derivative equally.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from dfdx._src import ad, batching, core, dtypes, layouts
from dfdx._src.core import ShapedArray
from dfdx._src.ops import reduction
from dfdx._src.ops import shape as shape_ops

_broadcast_cache: dict = {}


def broadcast_shapes(*shapes):
  """NumPy's broadcast of `shapes` (cached: abstract evaluation calls it for every op)."""
  try:
    return _broadcast_cache[shapes]
  except KeyError:
    out = _broadcast_cache[shapes] = np.broadcast_shapes(*shapes)
    return out


# ---- short inner loops --------------------------------------------------------------------
#
# NumPy evaluates an elementwise operation as an outer loop over calls of an inner loop along
# the longest run of axes that every operand steps through evenly. Batched values (vmap, the
# basis of a Jacobian) often have a long leading axis and short trailing ones, with operands
# broadcast along different trailing axes: (p, 2, 3) * (p, 1, 3), or (p, 2, 1) * (p, 1, 3).
# The inner loop is then 3 long and NumPy steps a two-level outer loop 2p times, which costs
# several times the arithmetic (while (p, 6) * (p, 1), one outer level, is fast). For such
# large results the impls below loop in Python over the few positions of the short trailing
# axes instead, each step one NumPy call along the long leading run. Each step passes over
# the rows of the result (and of the full operands) again, so this pays only for a few
# positions: up to 6 it was 1.5-4x faster than NumPy on batched 2- and 3-vectors, at 16 up to
# 2x slower. An operand that is the same at every position (a (p, 1, 1) factor) is gathered
# once if its rows are a cache line apart. An elementwise result does not depend on the order
# its entries are computed in, so the values are NumPy's.

_BLOCK_MIN_INPUT = 1 << 12  # some operand at least this large, else NumPy directly
_BLOCK_MIN_SIZE = 1 << 14  # results at least this large
_BLOCK_MAX_STEPS = 6  # at most this many trailing positions: each step passes over the result
_BLOCK_SHORT_RUN = 32  # NumPy's inner run counts as short below this
_BLOCK_LONG_RUN = 512  # and the leading run must be at least this long


def _trailing_split(shape, arrays):
  """The first of the trailing axes to loop over (see "short inner loops") when NumPy would
  iterate over `arrays` broadcast to `shape` with a short inner run inside two or more outer
  levels, shape[k:] has few positions and the axes before k form one long run for every
  operand; None when NumPy's own loop is as good (or a layout is not C-like)."""
  nd = len(shape)
  if nd < 3 or shape[-1] >= _BLOCK_SHORT_RUN or math.prod(shape) < _BLOCK_MIN_SIZE:
    return None  # (NumPy's inner run is at least the last axis)
  strides = []
  for a in arrays:
    if a.shape == shape and a.flags.c_contiguous:
      continue  # steps through all axes evenly: merges wherever the others do
    st = [0] * (nd - a.ndim)
    prev = None
    for d, s in zip(a.shape, a.strides):
      if d == 1:
        st.append(0)
        continue
      if s < 0 or (s and prev is not None and s >= prev):
        return None  # reversed or not C-like: NumPy may reorder the axes itself
      if s:
        prev = s
      st.append(s)
    strides.append(st)
  if not strides:
    return None  # one run over everything

  def runs(axes):  # lengths of the runs NumPy merges `axes` (non-unit ones) into, inner first
    out = [shape[axes[-1]]]
    for i, j in zip(axes[-2::-1], axes[:0:-1]):
      if all(st[i] == st[j] * shape[j] for st in strides):
        out[-1] *= shape[i]
      else:
        out.append(shape[i])
    return out
  k, steps = nd, 1
  while k > 1 and steps * shape[k - 1] <= _BLOCK_MAX_STEPS:
    k -= 1
    steps *= shape[k]
  axes = [j for j in range(nd) if shape[j] != 1]
  lead = [j for j in axes if j < k]
  if steps < 2 or not lead:
    return None
  loops = runs(axes)
  if len(loops) < 3 or loops[0] >= _BLOCK_SHORT_RUN:
    return None
  lead_loops = runs(lead)
  if len(lead_loops) > 1 or lead_loops[0] < _BLOCK_LONG_RUN:
    return None
  return k


def _trailing_index(a, nd, k):
  """For operand `a` (aligned to the last axes of a rank-nd result), which trailing position
  of the result each of a's indexed axes takes (None: a broadcast axis, index 0)."""
  off = nd - a.ndim
  return [j - k if a.shape[j - off] != 1 else None for j in range(max(k, off), nd)]


def _blocked(step, args, shape, k, dtype):
  """The result of shape `shape`, computed by `step(*operands, out)` once per position of
  shape[k:] on the operands' matching parts."""
  out = np.empty(shape, dtype)
  nd = len(shape)
  args = list(args)
  picks = [_trailing_index(a, nd, k) if type(a) is np.ndarray and a.ndim else None
           for a in args]
  for i, (a, p) in enumerate(zip(args, picks)):
    if p is not None and all(j is None for j in p):  # the same part at every position
      part = a[(Ellipsis,) + (0,) * len(p)]
      if max(part.strides, default=0) >= 64:  # one entry per cache line: gather it once
        part = np.ascontiguousarray(part)
      args[i], picks[i] = part, None
  for idx in np.ndindex(*shape[k:]):
    parts = [a if p is None else a[(Ellipsis,) + tuple(0 if i is None else idx[i] for i in p)]
             for a, p in zip(args, picks)]
    step(*parts, out[(Ellipsis,) + idx])
  return out


def _probe(a):
  """An empty stand-in of an operand with its dtype (Python scalars stay: they are weak)."""
  return np.empty(0, a.dtype) if type(a) is np.ndarray and a.ndim else a


def _blocked_ufunc(ufunc):
  """The impl of an elementwise primitive computed by `ufunc` (see "short inner loops")."""
  def step(*parts):
    ufunc(*parts[:-1], out=parts[-1])

  def blocked(args):
    arrays = [a for a in args if type(a) is np.ndarray]
    if len(arrays) + sum(type(a) in _SCALAR_TYPES for a in args) == len(args):
      shape = broadcast_shapes(*[a.shape for a in arrays])
      k = _trailing_split(shape, arrays)
      if k is not None:
        return _blocked(step, args, shape, k, ufunc(*[_probe(a) for a in args]).dtype)
      if any(_transposed(a) for a in arrays):
        return _in_good_order(ufunc, args)
    return ufunc(*args)

  ndarray = np.ndarray
  if ufunc.nin == 2:
    def impl(x, y):  # the common case first: a small operand, or not a batched shape
      if (x.size if type(x) is ndarray else 1) * (y.size if type(y) is ndarray else 1) \
          < _SMALL_OPERANDS:  # (then the result and both operands are small: NumPy as is)
        return ufunc(x, y)
      if ((type(x) is ndarray and x.ndim > 2 and x.size >= _BLOCK_MIN_INPUT)
              or (type(y) is ndarray and y.ndim > 2 and y.size >= _BLOCK_MIN_INPUT)):
        return blocked((x, y))
      if (type(x) is ndarray and type(y) is ndarray and x.shape != y.shape
              and (_transposed(x) or _transposed(y))):  # (one broadcast: see above)
        return _in_good_order(ufunc, (x, y))
      return ufunc(x, y)
  else:
    def impl(*args):
      if any(type(a) is np.ndarray and a.ndim > 2 and a.size >= _BLOCK_MIN_INPUT
             for a in args):
        return blocked(args)
      return ufunc(*args)
  impl.__name__ = impl.__qualname__ = f"blocked_{ufunc.__name__}"
  impl.ufunc = ufunc  # computes what `ufunc` computes (dfdx.numpy's fast path checks this)
  return impl


_SCALAR_TYPES = (int, float, builtins.complex, bool)


# ---- transposed operands ------------------------------------------------------------------
# NumPy lays a ufunc's result out like its operands and loops innermost along their fastest
# axis; a transposed operand broadcast against others can make that a short axis
# (`x.T[None, :, :] - m[:, :, None]` with x of shape (1000, 2) loops along the axis of 2,
# 4-8x slower than over a C-ordered copy of x.T, and so is every later operation on the
# result). Where an operand's fastest axis is short and the result's last axis is not, the
# operand is copied to C order first if it is at most half the result's size (a pass over a
# small array), else order='C' is asked for. Compiled code does the same from its model of
# the layouts (codegen.py, _Layouts). Values are NumPy's.
_LAYOUT_MIN_SIZE = 1 << 12  # results at least this large
# Operands whose sizes multiply to less than this are neither blocked nor laid out (their
# broadcast result is no larger than that product).
_SMALL_OPERANDS = min(_BLOCK_MIN_INPUT, _LAYOUT_MIN_SIZE)


def _transposed(a):
  """Whether `a` is an array whose last axis is not its fastest (a transposed view)."""
  return type(a) is np.ndarray and a.ndim > 1 and a.strides[-1] > a.strides[-2] >= 0


def _short_fastest_axis(a):
  """Whether the axis `a` steps through fastest (of those longer than 1) is short."""
  fastest = min(((builtins.abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1 and s),
                default=(0, 0))
  return fastest[1] < layouts.SHORT


def _in_good_order(ufunc, args):
  """ufunc(*args), with the layout of transposed operands fixed first where NumPy would
  loop along a short axis (see above)."""
  shape = broadcast_shapes(*[np.shape(a) for a in args])
  size = math.prod(shape)
  if size < _LAYOUT_MIN_SIZE or shape[-1] < layouts.SHORT:
    return ufunc(*args)
  fixed, order = [], "K"
  for a in args:
    if _transposed(a) and _short_fastest_axis(a):
      if 2 * a.size <= size:
        a = np.ascontiguousarray(a)
      else:
        order = "C"
    fixed.append(a)
  return ufunc(*fixed, order=order)


def _where_step(c, x, y, out):
  np.copyto(out, y, casting="unsafe")
  np.copyto(out, x, casting="unsafe", where=c)


def _large_batched(a):
  return type(a) is np.ndarray and a.ndim > 2 and a.size >= _BLOCK_MIN_INPUT


def _select_impl(c, x, y):
  """numpy.where(c, x, y), blocked like the ufuncs when its inner loop is short."""
  if not (_large_batched(c) or _large_batched(x) or _large_batched(y)):
    return np.where(c, x, y)  # the common case, decided without building anything
  args = (c, x, y)
  if not (type(c) is np.ndarray and c.dtype == bool) or not all(
          type(a) is np.ndarray or type(a) in _SCALAR_TYPES for a in args):
    return np.where(c, x, y)
  arrays = [a for a in args if type(a) is np.ndarray]
  shape = broadcast_shapes(*[a.shape for a in arrays])
  k = _trailing_split(shape, arrays)
  if k is None:
    return np.where(c, x, y)
  return _blocked(_where_step, args, shape, k, np.where(*[_probe(a) for a in args]).dtype)


def _unary_prim(name, np_fun):
  prim = core.primitive(name)
  prim.def_impl(np_fun)
  prim.def_abstract_eval(
      lambda x, **params: ShapedArray(x.shape, dtypes.ufunc_result_dtype(np_fun, x),
                                      x.weak_type))
  batching.defvectorized(prim)
  return prim


def _nary_prim(name, np_fun, dtype_rule=None):
  prim = core.primitive(name)
  blocked = isinstance(np_fun, np.ufunc) and np_fun.nout == 1 and np_fun.nin >= 2
  prim.def_impl(_blocked_ufunc(np_fun) if blocked else np_fun)

  def abstract_eval(*avals):
    dtype = dtypes.ufunc_result_dtype(np_fun, *avals) if dtype_rule is None else dtype_rule
    return ShapedArray(broadcast_shapes(*[a.shape for a in avals]), dtype,
                       dtypes.result_weak_type(*avals))
  prim.def_abstract_eval(abstract_eval)
  batching.defbroadcasting(prim)
  return prim


def _unbroadcast(ct, x):
  """The cotangent of operand `x` (an array, tracer or tape variable) from the cotangent of a
  broadcast result: summed to x's shape, in x's dtype. A pending cotangent (only the
  transposes of ad.summing_transposes get them) is summed by its own rule, and returned
  still pending where nothing is done to it."""
  if ct.shape != x.shape:
    ct = shape_ops.sum_to_shape(ct, x.shape)
  dtype = x.dtype
  if ct.dtype == dtype:
    return ct
  return shape_ops.convert_element_type(ad.materialized(ct), dtype)


def _const(value, like):
  """A 0-d constant of `like`'s dtype, so rules keep float32 computations in float32."""
  dtype = getattr(like, "dtype", None)
  return np.asarray(value, dtype=dtypes.differentiable_dtype(
      np.result_type(like) if dtype is None else dtype))


# ---- linear: neg, add, sub ----------------------------------------------------------------
neg_p = _unary_prim("neg", np.negative)


def neg(x):
  return neg_p.bind(x)


ad.deflinear(neg_p, lambda ct, x: [neg(ct)])
ad.deftranspose_eager(neg_p, lambda ct, x: [np.negative(ct)])

add_p = _nary_prim("add", np.add)


def add(x, y):
  return add_p.bind(x, y)


def _add_transpose(ct, x, y):
  return [_unbroadcast(ct, x) if ad.is_linear(x) else None,
          _unbroadcast(ct, y) if ad.is_linear(y) else None]


ad.defjvp(add_p, lambda x_dot, x, y: x_dot, lambda y_dot, x, y: y_dot)
ad.deftranspose(add_p, _add_transpose)


def _summed_to_operands(x_ct, y_ct, x, y):
  """The eager rules' cotangents of a binary op's operands (or None), those of broadcast
  operands summed to their shapes (most operands have the cotangent's shape already)."""
  if x_ct is not None and x_ct.shape != x.shape:
    x_ct = shape_ops.sum_to_shape_eager(x_ct, x.shape)
  if y_ct is not None and y_ct.shape != y.shape:
    y_ct = shape_ops.sum_to_shape_eager(y_ct, y.shape)
  return [x_ct, y_ct]


ad.defvjp_eager(add_p, lambda ct, ans, x, y, *, needs: _summed_to_operands(
    ct if needs[0] else None, ct if needs[1] else None, x, y), any_broadcast=True)

sub_p = _nary_prim("sub", np.subtract)


def sub(x, y):
  return sub_p.bind(x, y)


def _sub_transpose(ct, x, y):
  # y's cotangent is negated after the sum (the smaller array), and computed first if pending.
  return [_unbroadcast(ct, x) if ad.is_linear(x) else None,
          neg(ad.materialized(_unbroadcast(ct, y))) if ad.is_linear(y) else None]


def _sub_jvp(primals, tangents):
  # As defjvp's sum of the terms x_dot and neg(y_dot), with one pass when both are there:
  # x_dot - y_dot is x_dot + (-y_dot) exactly (negation is exact).
  (x_dot, y_dot), ans = tangents, sub_p.bind(*primals)
  if x_dot is None:
    out = None if y_dot is None else neg(y_dot)
  else:
    out = x_dot if y_dot is None else sub(x_dot, y_dot)
  return ans, None if out is None else ad.match_primal(out, ans)


ad.primitive_jvps[sub_p] = _sub_jvp
ad.deftranspose(sub_p, _sub_transpose)


def _sub_vjp_eager(ct, ans, x, y, *, needs):
  x_ct, y_ct = _summed_to_operands(ct if needs[0] else None, ct if needs[1] else None, x, y)
  return [x_ct, None if y_ct is None else np.negative(y_ct)]  # (negated after the sum)


ad.defvjp_eager(sub_p, _sub_vjp_eager, any_broadcast=True)
ad.summing_transposes.update((add_p, sub_p))

# ---- mul, div -----------------------------------------------------------------------------
mul_p = _nary_prim("mul", np.multiply)


def mul(x, y):
  return mul_p.bind(x, y)


ad.defjvp(mul_p, lambda x_dot, x, y: tmul(x_dot, y), lambda y_dot, x, y: tmul(y_dot, x))
ad.primitive_transposes[mul_p] = lambda ct, x, y: [
    _unbroadcast(tmul(ct, _cj(y)), x) if ad.is_linear(x) else None,
    _unbroadcast(tmul(ct, _cj(x)), y) if ad.is_linear(y) else None]
ad.defvjp(mul_p, lambda ct, ans, x, y, *, needs: [
    _unbroadcast(tmul(ct, _cj(y)), x) if needs[0] else None,
    _unbroadcast(tmul(ct, _cj(x)), y) if needs[1] else None])


ad.defvjp_eager(mul_p, lambda ct, ans, x, y, *, needs: _summed_to_operands(
    np.multiply(ct, y) if needs[0] else None, np.multiply(ct, x) if needs[1] else None, x, y))
ad.vjp_ignores_output(mul_p)

div_p = _nary_prim("div", np.true_divide)


def div(x, y):
  return div_p.bind(x, y)


def _div_transpose(ct, x, y):
  assert not ad.is_linear(y), "div is linear in its numerator only"
  return [_unbroadcast(tdiv(ct, _cj(y)), x), None]


# d(x/y)/dy = -(x/y)/y, not -x/y**2: y**2 underflows where the true derivative is finite.
ad.defjvp2(div_p, lambda x_dot, ans, x, y: tdiv(x_dot, y),
           lambda y_dot, ans, x, y: tmul(y_dot, neg(tdiv(ans, y))))
ad.primitive_transposes[div_p] = _div_transpose
ad.defvjp(div_p, lambda ct, ans, x, y, *, needs: [
    _unbroadcast(tdiv(ct, _cj(y)), x) if needs[0] else None,
    _unbroadcast(tmul(ct, _cj(neg(tdiv(ans, y)))), y) if needs[1] else None])


ad.defvjp_eager(div_p, lambda ct, ans, x, y, *, needs: _summed_to_operands(
    np.true_divide(ct, y) if needs[0] else None,
    np.multiply(ct, np.negative(np.true_divide(ans, y))) if needs[1] else None, x, y))

# ---- zero-absorbing products: the chain rule where a factor is infinite -------------------
#
# Derivative rules multiply a tangent by a derivative factor with `tmul` and `tdiv`. They are
# plain mul and div, so derivatives cost nothing extra. When a derivative comes out NaN, the
# transformations compute it once more with `ad.zero_absorbing` on, where they are zmul and
# zdiv: products that are 0 wherever one factor is 0, whatever the other (0 * inf = 0). A
# branch that `where` does not select then contributes 0, not NaN, and a zero derivative
# factor (clip outside its range, |x| at 0) stops an infinite cotangent.


def _zero_absorbing(np_fun, absorbs):
  def impl(x, y):
    with np.errstate(invalid="ignore"):
      out = np_fun(x, y)
    if out.dtype.kind in "fc":
      nan = np.isnan(out)
      if nan.any():
        out = np.where(nan & absorbs(x, y), out.dtype.type(0), out)[()]
    return out
  return impl


zmul_p = _nary_prim("zmul", _zero_absorbing(np.multiply, lambda x, y: (x == 0) | (y == 0)))
zdiv_p = _nary_prim("zdiv", _zero_absorbing(np.true_divide,
                                            lambda x, y: (x == 0) | np.isinf(y)))


def zmul(x, y):
  """x * y, but 0 wherever x or y is 0 (also where the other is inf or NaN)."""
  return zmul_p.bind(x, y)


def zdiv(x, y):
  """x / y, but 0 wherever x is 0 or y is infinite (0 / 0 = 0)."""
  return zdiv_p.bind(x, y)


_ctx = core.context  # (this thread's dynamic state)


def tmul(t, d):
  """A tangent or cotangent `t` times a derivative factor `d` (see above)."""
  return zmul_p.bind(t, d) if _ctx.zero_absorbing else mul_p.bind(t, d)


def tdiv(t, d):
  """A tangent or cotangent `t` divided by a derivative factor `d` (see above)."""
  return zdiv_p.bind(t, d) if _ctx.zero_absorbing else div_p.bind(t, d)


ad.defjvp(zmul_p, lambda x_dot, x, y: zmul(x_dot, y), lambda y_dot, x, y: zmul(y_dot, x))
ad.primitive_transposes[zmul_p] = lambda ct, x, y: [
    _unbroadcast(zmul(ct, _cj(y)), x) if ad.is_linear(x) else None,
    _unbroadcast(zmul(ct, _cj(x)), y) if ad.is_linear(y) else None]
ad.defjvp2(zdiv_p, lambda x_dot, ans, x, y: zdiv(x_dot, y),
           lambda y_dot, ans, x, y: zmul(y_dot, neg(zdiv(ans, y))))
ad.primitive_transposes[zdiv_p] = lambda ct, x, y: [_unbroadcast(zdiv(ct, _cj(y)), x), None]
ad.zero_absorbing_prims.update({mul_p: zmul_p, div_p: zdiv_p})

# ---- complex numbers: real, imag, conj, complex ------------------------------------------
#
# Tangents of complex values are complex; transposes are adjoints for the real inner product
# <a, b> = Re(sum(conj(a) * b)), which treats C as R^2. The transpose of multiplying by c is
# multiplying by conj(c) (`_cj` in the rules), so the gradient of a real-valued f of complex z
# is df/dx + i df/dy: the direction of steepest ascent, as PyTorch defines it (JAX returns its
# conjugate).


def _cj(x):
  """conj(x) for complex x; real x unchanged (no operation)."""
  dtype = getattr(x, "dtype", None)
  if dtype is None:  # a Python number
    return x.conjugate() if isinstance(x, builtins.complex) else x
  return conj_p.bind(x) if dtype.kind == "c" else x


def _real_dtype(dtype):
  return np.empty(0, dtype).real.dtype


real_p = core.primitive("real")
real_p.def_impl(np.real)
real_p.def_abstract_eval(lambda x: ShapedArray(x.shape, _real_dtype(x.dtype), x.weak_type))
batching.defvectorized(real_p)
imag_p = core.primitive("imag")
imag_p.def_impl(np.imag)
imag_p.def_abstract_eval(lambda x: ShapedArray(x.shape, _real_dtype(x.dtype), x.weak_type))
batching.defvectorized(imag_p)
conj_p = _unary_prim("conj", np.conjugate)
complex_p = _nary_prim("complex", lambda x, y: np.add(x, np.multiply(y, 1j)))
complex_p.def_abstract_eval(lambda x, y: ShapedArray(
    broadcast_shapes(x.shape, y.shape), np.result_type(x.dtype, y.dtype, np.complex64),
    dtypes.result_weak_type(x, y)))


def real(x):
  """The real part (of a complex array; a real array itself)."""
  return real_p.bind(x) if x.dtype.kind == "c" else x


def imag(x):
  """The imaginary part (of a complex array; zeros for a real one, with no derivative)."""
  if x.dtype.kind != "c":
    return np.zeros(core.shape_of(x), x.dtype)
  return imag_p.bind(x)


def conj(x):
  return _cj(x)


def complex(x, y):  # noqa: A001  (x + iy)
  return complex_p.bind(x, y)


def _complex_transpose(ct, x, y):
  return [_unbroadcast(real(ct), x) if ad.is_linear(x) else None,
          _unbroadcast(imag_p.bind(ct), y) if ad.is_linear(y) else None]


def _complex_jvp(primals, tangents):
  (x, y), (x_dot, y_dot) = primals, tangents
  ans = complex(x, y)
  x_dot = _const(0, x) if x_dot is None else x_dot
  y_dot = _const(0, y) if y_dot is None else y_dot
  return ans, ad.match_primal(complex(x_dot, y_dot), ans)


ad.deflinear(real_p, lambda ct, x: [shape_ops.convert_element_type(ct, x.aval.dtype)])
# <Im z, r> = Re(conj(i r) z): the adjoint of taking the imaginary part is r -> i r.
ad.deflinear(imag_p, lambda ct, x: [complex(_const(0, ct), ct)])
ad.deflinear(conj_p, lambda ct, x: [_cj(ct)])
ad.deflinear_rules(complex_p, _complex_jvp, _complex_transpose)

# ---- powers ---------------------------------------------------------------------------------
pow_p = _nary_prim("pow", np.power)


def pow(x, y):  # noqa: A001  (the NumPy name)
  return pow_p.bind(x, y)


def _pow_jvp_x(x_dot, x, y):
  # y x**(y-1), taken as 0 where y == 0 (x**0 is constant): no 0 * inf at x = 0; and where
  # y is infinite and |x| < 1 (x**inf is 0 there): inf * 0 is taken as 0.
  y_is_zero = eq(y, 0)
  safe_y = select(y_is_zero, 1, y)
  return tmul(x_dot, select(y_is_zero, 0, zmul(safe_y, pow(x, sub(safe_y, 1)))))


def _pow_jvp_y(y_dot, ans, x, y):
  # d(x**y)/dy = x**y log(x), taken as 0 where x == 0 (x**y is flat in y there for y > 0).
  safe_x = select(eq(x, 0), 1, x)
  return tmul(y_dot, mul(ans, log(safe_x)))


def _pow_jvp(primals, tangents):
  (x, y), (x_dot, y_dot) = primals, tangents
  ans = pow(x, y)
  out = None if x_dot is None else _pow_jvp_x(x_dot, x, y)
  if y_dot is not None:
    term = _pow_jvp_y(y_dot, ans, x, y)
    out = term if out is None else add(out, term)
  return ans, None if out is None else ad.match_primal(out, ans)


ad.primitive_jvps[pow_p] = _pow_jvp

integer_pow_p = core.primitive("integer_pow")


def integer_pow(x, y: int):
  """`x ** y` for a Python integer `y`: exact derivatives at x = 0 for every y."""
  return x if y == 1 else integer_pow_p.bind(x, y=int(y))


def _integer_pow_impl(x, *, y):
  # np.square keeps bools as int8, np.power makes them int64: power's dtype is the rule.
  return np.square(x) if y == 2 and np.result_type(x).kind != "b" else np.power(x, y)


def _integer_pow_jvp(x_dot, x, *, y):
  if y == 0:
    return None
  if y == 1:
    return x_dot
  return tmul(x_dot, mul(_const(y, x), integer_pow(x, y - 1)))


def _integer_pow_vjp(ct, ans, x, *, needs, y):
  source = _broadcast_source(ct) if y > 1 else None
  if source is None:
    return [_integer_pow_jvp(ct, _cj(x), y=y)]
  # ct is a broadcast (a reduction's transpose: the gradient of sum(x ** 2, axis)): scaled
  # by y before it is broadcast, x ** y costs one pass over x's size instead of two.
  scaled = shape_ops.broadcast_to(mul(source, _const(y, x)), ct.shape)
  return [tmul(scaled, integer_pow(_cj(x), y - 1))]


def _integer_pow_vjp_eager(ct, ans, x, *, needs, y):
  # _integer_pow_vjp by its primitives' impls (see ad.eager_vjps)
  if y == 0:
    return [None]
  if y == 1:
    return [ct]
  x_pow = x if y == 2 else _integer_pow_impl(x, y=y - 1)
  source = _broadcast_source(ct)
  if source is None:
    return [mul_p.impl(ct, mul_p.impl(_const(y, x), x_pow))]
  scaled = mul_p.impl(source, _const(y, x))
  if scaled.shape != ct.shape:
    scaled = shape_ops.broadcast_to_p.impl(scaled, shape=ct.shape)
  return [mul_p.impl(scaled, x_pow)]


def _broadcast_source(ct):
  """The smallest array that `ct` (a NumPy array) is a broadcast view of, or None when `ct`
  repeats no entries (no axis of stride 0)."""
  if type(ct) is not np.ndarray or not ct.size or 0 not in ct.strides:
    return None
  return ct[tuple(slice(0, 1) if st == 0 else slice(None) for st in ct.strides)]


class _DeferredProduct(ad.Deferred):
  """x * y (x ** 2: y is x) of large float arrays of one shape and layout, computed when used:
  summed in blocks by a reduce_sum that takes it whole (see ad.py's "deferred values")."""
  __slots__ = ("x", "y")

  def __init__(self, x, y):
    self.x, self.y, self.shape, self.dtype = x, y, x.shape, x.dtype

  def materialize(self):  # (the impls: x * x and x ** 2 give the same bits)
    return _integer_pow_impl(self.x, y=2) if self.y is self.x else mul_p.impl(self.x, self.y)

  def fuse(self, prim, params):
    return reduction.sum_of_products(self.x, self.y, params["axes"]) if prim is \
        reduction.reduce_sum_p else None


_DEFERRED_MIN_BYTES = 1 << 20  # smaller products stay in cache anyway (ad.DEFER_MIN_SIZE:
# the engine asks no rule below 2**17 entries, 1 MB of float64 or 512 KB of float32)
_DEFERRED_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _deferrable(x):
  return type(x) is np.ndarray and x.nbytes >= _DEFERRED_MIN_BYTES and x.ndim > 1 and \
      x.dtype in _DEFERRED_DTYPES and x.flags.c_contiguous


def _defer_square(x, *, y):
  if y == 2 and _deferrable(x):
    return _DeferredProduct(x, x)
  return None


def _defer_product(x, y):
  if _deferrable(x) and type(y) is np.ndarray and y.shape == x.shape and \
      y.dtype == x.dtype and y.flags.c_contiguous:
    return _DeferredProduct(x, y)
  return None


integer_pow_p.def_impl(_integer_pow_impl)
integer_pow_p.def_abstract_eval(lambda x, *, y: ShapedArray(
    x.shape, np.result_type(_integer_pow_impl(np.ones(0, x.dtype), y=y)), x.weak_type))
ad.defjvp(integer_pow_p, _integer_pow_jvp)
ad.defvjp(integer_pow_p, _integer_pow_vjp)
ad.defvjp_eager(integer_pow_p, _integer_pow_vjp_eager)
ad.vjp_ignores_output(integer_pow_p)
ad.defdeferred(integer_pow_p, _defer_square)
ad.defdeferred(mul_p, _defer_product)
batching.defvectorized(integer_pow_p)

sqrt_p = _unary_prim("sqrt", np.sqrt)


def sqrt(x):
  return sqrt_p.bind(x)


ad.defjvp2(sqrt_p, lambda x_dot, ans, x: tdiv(tmul(x_dot, _const(0.5, ans)), ans))
ad.defvjp(sqrt_p, lambda ct, ans, x, *, needs: [tdiv(tmul(ct, _const(0.5, ans)), _cj(ans))])
ad.defvjp_eager(sqrt_p, lambda ct, ans, x, *, needs: [
    np.true_divide(np.multiply(ct, _const(0.5, ans)), ans)])

cbrt_p = _unary_prim("cbrt", np.cbrt)


def cbrt(x):
  return cbrt_p.bind(x)


ad.defjvp2(cbrt_p, lambda x_dot, ans, x: tdiv(x_dot, mul(_const(3, ans), mul(ans, ans))))

# ---- exponentials and logarithms ----------------------------------------------------------
exp_p = _unary_prim("exp", np.exp)


def exp(x):
  return exp_p.bind(x)


ad.defjvp2(exp_p, lambda x_dot, ans, x: tmul(x_dot, ans))
ad.defvjp(exp_p, lambda ct, ans, x, *, needs: [tmul(ct, _cj(ans))])
ad.defvjp_eager(exp_p, lambda ct, ans, x, *, needs: [np.multiply(ct, ans)])

exp2_p = _unary_prim("exp2", np.exp2)


def exp2(x):
  return exp2_p.bind(x)


ad.defjvp2(exp2_p, lambda x_dot, ans, x: tmul(x_dot, mul(ans, _const(math.log(2), ans))))

expm1_p = _unary_prim("expm1", np.expm1)


def expm1(x):
  return expm1_p.bind(x)


ad.defjvp2(expm1_p, lambda x_dot, ans, x: tmul(x_dot, add(ans, 1)))

log_p = _unary_prim("log", np.log)


def log(x):
  return log_p.bind(x)


ad.defjvp(log_p, lambda x_dot, x: tdiv(x_dot, x))
ad.defvjp(log_p, lambda ct, ans, x, *, needs: [tdiv(ct, _cj(x))])
ad.defvjp_eager(log_p, lambda ct, ans, x, *, needs: [np.true_divide(ct, x)])

log2_p = _unary_prim("log2", np.log2)


def log2(x):
  return log2_p.bind(x)


ad.defjvp(log2_p, lambda x_dot, x: tdiv(x_dot, mul(x, _const(math.log(2), x))))

log10_p = _unary_prim("log10", np.log10)


def log10(x):
  return log10_p.bind(x)


ad.defjvp(log10_p, lambda x_dot, x: tdiv(x_dot, mul(x, _const(math.log(10), x))))

log1p_p = _unary_prim("log1p", np.log1p)


def log1p(x):
  return log1p_p.bind(x)


ad.defjvp(log1p_p, lambda x_dot, x: tdiv(x_dot, add(x, 1)))


def _logistic_impl(x):
  # exp(-log(1 + exp(-x))): no overflow for any x. Measured against extended precision:
  # within 5 ulp of the exact value outside -40 < x < -5, and up to 33 ulp inside, where
  # exp's argument (about x) carries a rounding error of half an ulp of x (1 / (1 + exp(-x))
  # stays within 3 ulp there, but overflows below x = -709).
  return np.exp(-np.logaddexp(0.0, np.negative(x)))


logistic_p = _unary_prim("logistic", _logistic_impl)


def logistic(x):
  """The logistic sigmoid 1 / (1 + exp(-x)) (scipy.special.expit)."""
  return logistic_p.bind(x)


# s (1 - s) as s(x) s(-x): 1 - s cancels to 0 for large x, where the derivative is e^-x.
ad.defjvp2(logistic_p, lambda x_dot, ans, x: tmul(x_dot, mul(ans, logistic(neg(x)))))
ad.defvjp(logistic_p, lambda ct, ans, x, *, needs: [
    tmul(ct, _cj(mul(ans, logistic(neg(x)))))])
ad.defvjp_eager(logistic_p, lambda ct, ans, x, *, needs: [
    np.multiply(ct, np.multiply(ans, _logistic_impl(np.negative(x))))])

logaddexp_p = _nary_prim("logaddexp", np.logaddexp)


def logaddexp(x, y):
  return logaddexp_p.bind(x, y)


# exp(x - ans) <= 1: no overflow, unlike exp(x) / (exp(x) + exp(y)).
ad.defjvp2(logaddexp_p, lambda x_dot, ans, x, y: tmul(x_dot, exp(sub(x, ans))),
           lambda y_dot, ans, x, y: tmul(y_dot, exp(sub(y, ans))))

# ---- trigonometric and hyperbolic -----------------------------------------------------------
sin_p = _unary_prim("sin", np.sin)


def sin(x):
  return sin_p.bind(x)


ad.defjvp(sin_p, lambda x_dot, x: tmul(x_dot, cos(x)))
ad.defvjp(sin_p, lambda ct, ans, x, *, needs: [tmul(ct, _cj(cos(x)))])
ad.defvjp_eager(sin_p, lambda ct, ans, x, *, needs: [np.multiply(ct, np.cos(x))])

cos_p = _unary_prim("cos", np.cos)


def cos(x):
  return cos_p.bind(x)


ad.defjvp(cos_p, lambda x_dot, x: tmul(x_dot, neg(sin(x))))
ad.defvjp(cos_p, lambda ct, ans, x, *, needs: [tmul(ct, _cj(neg(sin(x))))])
ad.defvjp_eager(cos_p, lambda ct, ans, x, *, needs: [
    np.multiply(ct, np.negative(np.sin(x)))])

tan_p = _unary_prim("tan", np.tan)


def tan(x):
  return tan_p.bind(x)


ad.defjvp2(tan_p, lambda x_dot, ans, x: tmul(x_dot, add(1, mul(ans, ans))))

arcsin_p = _unary_prim("arcsin", np.arcsin)


def arcsin(x):
  return arcsin_p.bind(x)


ad.defjvp(arcsin_p, lambda x_dot, x: tdiv(x_dot, sqrt(sub(1, mul(x, x)))))

arccos_p = _unary_prim("arccos", np.arccos)


def arccos(x):
  return arccos_p.bind(x)


ad.defjvp(arccos_p, lambda x_dot, x: neg(tdiv(x_dot, sqrt(sub(1, mul(x, x))))))

arctan_p = _unary_prim("arctan", np.arctan)


def arctan(x):
  return arctan_p.bind(x)


ad.defjvp(arctan_p, lambda x_dot, x: tdiv(x_dot, add(1, mul(x, x))))

sinh_p = _unary_prim("sinh", np.sinh)


def sinh(x):
  return sinh_p.bind(x)


ad.defjvp(sinh_p, lambda x_dot, x: tmul(x_dot, cosh(x)))

cosh_p = _unary_prim("cosh", np.cosh)


def cosh(x):
  return cosh_p.bind(x)


ad.defjvp(cosh_p, lambda x_dot, x: tmul(x_dot, sinh(x)))

tanh_p = _unary_prim("tanh", np.tanh)


def tanh(x):
  return tanh_p.bind(x)


ad.defjvp2(tanh_p, lambda x_dot, ans, x: tmul(x_dot, sub(1, mul(ans, ans))))
ad.defvjp(tanh_p, lambda ct, ans, x, *, needs: [tmul(ct, _cj(sub(1, mul(ans, ans))))])
ad.defvjp_eager(tanh_p, lambda ct, ans, x, *, needs: [
    np.multiply(ct, np.subtract(1.0, np.multiply(ans, ans)))])

arcsinh_p = _unary_prim("arcsinh", np.arcsinh)


def arcsinh(x):
  return arcsinh_p.bind(x)


ad.defjvp(arcsinh_p, lambda x_dot, x: tdiv(x_dot, sqrt(add(mul(x, x), 1))))

arccosh_p = _unary_prim("arccosh", np.arccosh)


def arccosh(x):
  return arccosh_p.bind(x)


# sqrt(x - 1) sqrt(x + 1) rather than sqrt(x*x - 1): no cancellation near x = 1.
ad.defjvp(arccosh_p, lambda x_dot, x: tdiv(x_dot, mul(sqrt(sub(x, 1)), sqrt(add(x, 1)))))

arctanh_p = _unary_prim("arctanh", np.arctanh)


def arctanh(x):
  return arctanh_p.bind(x)


ad.defjvp(arctanh_p, lambda x_dot, x: tdiv(x_dot, mul(sub(1, x), add(1, x))))

arctan2_p = _nary_prim("arctan2", np.arctan2)


def arctan2(y, x):
  return arctan2_p.bind(y, x)


def _in_result_dtype(y, x):
  """y and x in arctan2's (floating) result dtype: an integer operand squared in its own
  dtype would overflow (94 ** 2 in int8)."""
  dtype = dtypes.ufunc_result_dtype(np.arctan2, core.get_aval(y), core.get_aval(x))
  return [float(v) if type(v) in (bool, int) else v if core.get_aval(v).dtype.kind in "fc"
          else shape_ops.convert_element_type(v, dtype) for v in (y, x)]


def _arctan2_denominator(y, x):
  return add(mul(x, x), mul(y, y))


def _arctan2_jvp_y(y_dot, y, x):
  y, x = _in_result_dtype(y, x)
  return tmul(y_dot, tdiv(x, _arctan2_denominator(y, x)))


def _arctan2_jvp_x(x_dot, y, x):
  y, x = _in_result_dtype(y, x)
  return tmul(x_dot, neg(tdiv(y, _arctan2_denominator(y, x))))


ad.defjvp(arctan2_p, _arctan2_jvp_y, _arctan2_jvp_x)

hypot_p = _nary_prim("hypot", np.hypot)


def hypot(x, y):
  return hypot_p.bind(x, y)


ad.defjvp2(hypot_p, lambda x_dot, ans, x, y: tmul(x_dot, tdiv(x, ans)),
           lambda y_dot, ans, x, y: tmul(y_dot, tdiv(y, ans)))

# ---- stop_gradient (the identity, with a zero derivative) ------------------------------
stop_gradient_p = core.primitive("stop_gradient")


def stop_gradient(x):
  return stop_gradient_p.bind(x)


stop_gradient_p.def_impl(lambda x: x)
stop_gradient_p.def_abstract_eval(lambda x: x)
core.keeps_weak_types.add(stop_gradient_p)
ad.defjvp_zero(stop_gradient_p)
batching.defvectorized(stop_gradient_p)

# ---- abs, sign, rounding (piecewise constant: zero derivatives) --------------------------
abs_p = _unary_prim("abs", np.absolute)


def abs(x):  # noqa: A001  (the NumPy name)
  return abs_p.bind(x)


def _unit(z):
  """z / |z| for complex z, 0 at z = 0 (both branches finite: the double where)."""
  zero = eq(z, 0)
  return select(zero, _const(0, z), div(z, select(zero, _const(1, z), abs(z))))


def _abs_jvp(x_dot, x):
  if x.dtype.kind != "c":
    return tmul(x_dot, sign(x))
  # |z| is not holomorphic: d|z| = Re(conj(z) dz) / |z|, taken as 0 at z = 0.
  return real(tmul(x_dot, conj(_unit(x))))


def _abs_vjp(ct, ans, x, *, needs):
  if x.dtype.kind != "c":
    return [tmul(ct, sign(x))]
  return [tmul(shape_ops.convert_element_type(ct, x.dtype), _unit(x))]


ad.defjvp(abs_p, _abs_jvp)
ad.defvjp(abs_p, _abs_vjp)

sign_p = _unary_prim("sign", np.sign)


def sign(x):
  """sign(x); of a complex x, NumPy's x / |x| (0 at 0), which is no step function: it is
  computed so, with the derivative of that quotient."""
  if getattr(x, "dtype", None) is None or x.dtype.kind != "c":
    return sign_p.bind(x)
  zero = eq(x, _const(0, x))
  magnitude = abs(select(zero, _const(1, x), x))
  return select(zero, _const(0, x), div(x, shape_ops.convert_element_type(magnitude, x.dtype)))


ad.defjvp_zero(sign_p)

floor_p = _unary_prim("floor", np.floor)
ad.defjvp_zero(floor_p)
ceil_p = _unary_prim("ceil", np.ceil)
ad.defjvp_zero(ceil_p)
trunc_p = _unary_prim("trunc", np.trunc)
ad.defjvp_zero(trunc_p)

round_p = core.primitive("round")
round_p.def_impl(lambda x, *, decimals: np.round(x, decimals))
round_p.def_abstract_eval(lambda x, *, decimals: x if x.dtype != np.bool_ else ShapedArray(
    x.shape, np.dtype(np.float16)))  # (NumPy rounds booleans to a NumPy float16)
ad.defjvp_zero(round_p)
batching.defvectorized(round_p)


def floor(x):
  return floor_p.bind(x)


def ceil(x):
  return ceil_p.bind(x)


def trunc(x):
  return trunc_p.bind(x)


def round(x, decimals=0):  # noqa: A001  (the NumPy name)
  return round_p.bind(x, decimals=int(decimals))


floor_divide_p = _nary_prim("floor_divide", np.floor_divide)
ad.defjvp_zero(floor_divide_p)


def floor_divide(x, y):
  return floor_divide_p.bind(x, y)


rem_p = _nary_prim("rem", np.remainder)


def rem(x, y):
  """NumPy's `%` (the result has the sign of `y`): x - floor(x / y) * y."""
  return rem_p.bind(x, y)


ad.defjvp(rem_p, lambda x_dot, x, y: x_dot,
          lambda y_dot, x, y: tmul(y_dot, neg(floor_divide(x, y))))

# ---- maximum, minimum ---------------------------------------------------------------------


def _balanced_eq(x, z, y):
  """1 where x is the chosen value z, 0.5 on a tie with y, else 0 (in z's dtype)."""
  one, half, zero = _const(1, z), _const(0.5, z), _const(0, z)
  return select(eq(x, z), select(eq(y, z), half, one), zero)


def _chooser_prim(name, np_fun):
  prim = _nary_prim(name, np_fun)
  ad.defjvp2(prim, lambda x_dot, ans, x, y: tmul(x_dot, _balanced_eq(x, ans, y)),
             lambda y_dot, ans, x, y: tmul(y_dot, _balanced_eq(y, ans, x)))
  return prim


maximum_p = _chooser_prim("maximum", np.maximum)
minimum_p = _chooser_prim("minimum", np.minimum)
fmax_p = _chooser_prim("fmax", np.fmax)
fmin_p = _chooser_prim("fmin", np.fmin)


def maximum(x, y):
  return maximum_p.bind(x, y)


def minimum(x, y):
  return minimum_p.bind(x, y)


def fmax(x, y):
  return fmax_p.bind(x, y)


def fmin(x, y):
  return fmin_p.bind(x, y)


# ---- comparisons and logic (boolean results, zero derivatives) --------------------------
def _predicate_prim(name, np_fun, nargs):
  prim = _nary_prim(name, np_fun, dtype_rule=np.dtype(bool)) if nargs > 1 else core.primitive(name)
  if nargs == 1:
    prim.def_impl(np_fun)
    prim.def_abstract_eval(lambda x: ShapedArray(x.shape, np.dtype(bool)))
    batching.defvectorized(prim)
  ad.defjvp_zero(prim)
  return prim


eq_p = _predicate_prim("eq", np.equal, 2)
ne_p = _predicate_prim("ne", np.not_equal, 2)
lt_p = _predicate_prim("lt", np.less, 2)
le_p = _predicate_prim("le", np.less_equal, 2)
gt_p = _predicate_prim("gt", np.greater, 2)
ge_p = _predicate_prim("ge", np.greater_equal, 2)
logical_and_p = _predicate_prim("logical_and", np.logical_and, 2)
logical_or_p = _predicate_prim("logical_or", np.logical_or, 2)
logical_xor_p = _predicate_prim("logical_xor", np.logical_xor, 2)
logical_not_p = _predicate_prim("logical_not", np.logical_not, 1)
isnan_p = _predicate_prim("isnan", np.isnan, 1)
isfinite_p = _predicate_prim("isfinite", np.isfinite, 1)
isinf_p = _predicate_prim("isinf", np.isinf, 1)


# ---- bitwise operations of integers and booleans (zero derivatives) -------------------------
def _bitwise_prim(name, np_fun):
  prim = _nary_prim(name, np_fun) if np_fun.nin == 2 else _unary_prim(name, np_fun)
  ad.defjvp_zero(prim)
  return prim


bitwise_and_p = _bitwise_prim("bitwise_and", np.bitwise_and)
bitwise_or_p = _bitwise_prim("bitwise_or", np.bitwise_or)
bitwise_xor_p = _bitwise_prim("bitwise_xor", np.bitwise_xor)
invert_p = _bitwise_prim("invert", np.invert)
left_shift_p = _bitwise_prim("left_shift", np.left_shift)
right_shift_p = _bitwise_prim("right_shift", np.right_shift)
# Integer number theory and bit counts: integer results, zero derivatives as well.
gcd_p = _bitwise_prim("gcd", np.gcd)
lcm_p = _bitwise_prim("lcm", np.lcm)
bitwise_count_p = _bitwise_prim("bitwise_count", np.bitwise_count)


def eq(x, y):
  return eq_p.bind(x, y)


def ne(x, y):
  return ne_p.bind(x, y)


def lt(x, y):
  return lt_p.bind(x, y)


def le(x, y):
  return le_p.bind(x, y)


def gt(x, y):
  return gt_p.bind(x, y)


def ge(x, y):
  return ge_p.bind(x, y)


# ---- select (numpy.where) -----------------------------------------------------------------
select_p = _nary_prim("select", np.where)
select_p.def_impl(_select_impl)
select_p.def_abstract_eval(lambda c, x, y: ShapedArray(
    broadcast_shapes(c.shape, x.shape, y.shape), dtypes.result_type(x, y),
    dtypes.result_weak_type(x, y)))


def select(cond, x, y):
  """`x` where `cond` is true, else `y` (numpy.where with three arguments)."""
  return select_p.bind(cond, x, y)


def _select_jvp(primals, tangents):
  (c, x, y), (_, x_dot, y_dot) = primals, tangents
  ans = select(c, x, y)
  if ans.dtype.kind not in "fc" or (x_dot is None and y_dot is None):
    return ans, None
  zero = _const(0, ans)
  return ans, ad.match_primal(select(c, zero if x_dot is None else x_dot,
                                     zero if y_dot is None else y_dot), ans)


def _select_transpose(ct, c, x, y):
  assert not ad.is_linear(c), "the condition of select is not differentiable"
  zero = _const(0, ct)
  return [None, _unbroadcast(select(c, ct, zero), x) if ad.is_linear(x) else None,
          _unbroadcast(select(c, zero, ct), y) if ad.is_linear(y) else None]


ad.deflinear_rules(select_p, _select_jvp, _select_transpose)

ad.tangent_ops.add = add


# ---- VJP rules of the other elementwise primitives ------------------------------------------
# An elementwise primitive's JVP multiplies each tangent entry by a factor at its own position
# (a diagonal linear map), so its transpose is the same map: for real values the VJP of a
# cotangent is the JVP rule applied to it (summed back to the operand's shape), and for the
# holomorphic complex ones (ad.complex_rules) the conjugate of the JVP of its conjugate.
# Derived so (`derive_vjps`, run once every family is registered), reverse mode records one
# node per such primitive instead of the equations of its JVP: fewer operations, and tapes
# that the compiled and rolled reverse passes take (reverse_cache.py interprets a tape with
# equations in it). The values are those of the transposed JVP: the same operations.
_NOT_DERIVED = {"gap_div", "zmul", "zdiv", "stop_gradient"}  # (zero-absorbing or internal)


def _diagonal_vjp(rules, reads_ans):
  def vjp(ct, ans, *primals, needs, **params):
    c = _cj(ct)
    out = []
    for rule, x, need in zip(rules, primals, needs):
      term = None
      if need and rule is not None:
        term = rule(c, ans, *primals, **params) if reads_ans else rule(c, *primals, **params)
      out.append(None if term is None else _unbroadcast(_cj(term), x))
    return out
  return vjp


def derive_vjps():
  """VJP rules for the elementwise primitives registered with defjvp or defjvp2 and none."""
  for prim in batching.elementwise_prims:
    parts = ad.jvp_contributions.get(prim)
    if parts is None or prim.linear or prim in ad.primitive_vjps or \
        prim in ad.primitive_residual_vjps or prim.name in _NOT_DERIVED:
      continue
    rules, reads_ans = parts
    ad.defvjp(prim, _diagonal_vjp(rules, reads_ans))
    if not reads_ans:
      ad.vjp_ignores_output(prim)
