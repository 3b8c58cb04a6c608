"""Make traced values behave like NumPy arrays.

`install()` gives `Tracer` the arithmetic and comparison operators, indexing, iteration and
the common methods (sum, reshape, astype, ...), all routed to `dfdx.numpy`. It also
implements NumPy's dispatch protocols (`__array_ufunc__`, `__array_function__`), so ordinary
NumPy code (`np.sin(x)`, `np.sum(x)`) works on traced values: calls are forwarded to the
`dfdx.numpy` function of the same name, or fail with a clear error if there is none.
"""
from __future__ import annotations

import builtins
import numbers
import sys

import numpy as np

from dfdx._src import core, errors
from dfdx._src.core import Tracer
from dfdx._src.numpy.util import python_kind, weakly_typed
from dfdx._src.staging import StagingTracer


_modules = {}  # dfdx.numpy and its indexing module, imported on first use (they import this)


def _dnp():
  dnp = _modules.get("dnp")
  if dnp is None:
    import dfdx.numpy as dnp
    _modules["dnp"] = dnp
  return dnp


def _indexing():
  indexing = _modules.get("indexing")
  if indexing is None:
    from dfdx._src.numpy import indexing
    _modules["indexing"] = indexing
  return indexing


# (Python's numbers before numbers.Number, whose isinstance check runs Python code)
_OPERAND_TYPES = (Tracer, np.ndarray, float, int, np.generic, numbers.Number, list, tuple)


def _binary_op(name, reflected=False):
  fn = getattr(_dnp(), name)  # bound once: install() runs after dfdx.numpy is complete
  # What `fn` calls for a traced value and an operand that it takes as it is (an array, a
  # Python float or int, a traced value), where that is the primitive's own function.
  direct = getattr(fn, "direct_op", None)

  # Python's arithmetic on Python scalars gives a Python scalar: a staged weakly typed value
  # with a Python scalar (or another such value) gives one too (see core.context.weak_results).
  if reflected:
    def op(self, other):
      t = type(other)
      if type(self) is StagingTracer and self.ir_var.aval.weak_type and weakly_typed(other):
        return _python_arithmetic(fn, name, other, self)
      if direct is not None and (t is np.ndarray or t is float or t is int
                                 or isinstance(other, Tracer)):
        return direct(other, self)
      if not isinstance(other, _OPERAND_TYPES):
        return NotImplemented
      return fn(other, self)
  else:
    square = _dnp().square if name == "power" else None

    def op(self, other):
      t = type(other)
      if type(self) is StagingTracer and self.ir_var.aval.weak_type and weakly_typed(other):
        return _python_arithmetic(fn, name, self, other)
      if square is not None and t is int and other == 2 and self.dtype == np.bool_ \
              and self.ndim:  # (an array's operator squares here: int8, where power and a
        return square(self)   # NumPy bool scalar give int64; a 0-d value stands for that)
      if direct is not None and (t is np.ndarray or t is float or t is int
                                 or isinstance(other, Tracer)):
        return direct(self, other)
      if not isinstance(other, _OPERAND_TYPES):
        return NotImplemented
      return fn(self, other)
  op.__name__ = f"__{'r' if reflected else ''}{name}__"
  return op


def _unary_op(name):
  def op(self):
    if type(self) is StagingTracer and self.ir_var.aval.weak_type:  # (see _binary_op)
      return _python_arithmetic(getattr(_dnp(), name), name, self)
    return getattr(_dnp(), name)(self)
  return op


# Python's arithmetic takes a bool as the int it is (True + True is 2, -True is -1), where
# NumPy's keeps bools (logical or, an error); comparisons and & | ^ keep bools in both.
_ARITHMETIC = frozenset(("add", "subtract", "multiply", "true_divide", "floor_divide",
                         "remainder", "power", "negative", "positive", "absolute", "invert",
                         "left_shift", "right_shift"))


def _python_arithmetic(fn, name, *args):
  """`fn(*args)` as Python computes it on the Python numbers the weakly typed operands stand
  for: the result a Python number too."""
  if name in _ARITHMETIC:
    args = [python_kind(a, "i") if _dtype_kind(a) == "b" else a for a in args]
    if name == "power" and type(args[1]) is int and args[1] < 0 and \
            _dtype_kind(args[0]) in "iu":  # (2 ** -1 is 0.5 in Python, an error in NumPy)
      args = [python_kind(args[0], "f"), args[1]]
  return core.keeping_weak_types(fn, *args)


def _dtype_kind(x):
  return "b" if type(x) is bool else x.dtype.kind if isinstance(x, Tracer) else ""


def _method(name):
  def method(self, *args, **kwargs):
    return getattr(_dnp(), name)(self, *args, **kwargs)
  method.__name__ = name
  method.__doc__ = f"Same as `dfdx.numpy.{name}(self, ...)`."
  return method


def _shape_args(args):
  """`x.reshape(2, 3)` and `x.reshape((2, 3))` both mean shape (2, 3)."""
  return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _reshape(self, *shape, order="C"):
  return _dnp().reshape(self, _shape_args(shape), order=order)


def _transpose(self, *axes):
  axes = _shape_args(axes)
  return _dnp().transpose(self, axes if axes else None)


def _astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
  from dfdx._src.ops import shape as shape_ops
  return shape_ops.convert_element_type(self, dtype)


def _T(self):
  from dfdx._src.ops import shape as shape_ops
  return shape_ops.transpose(self, tuple(reversed(range(self.ndim))))


def _mT(self):
  if self.ndim < 2:
    raise ValueError("matrix transpose with ndim < 2 is undefined")
  from dfdx._src.ops import shape as shape_ops
  perm = tuple(range(self.ndim - 2)) + (self.ndim - 1, self.ndim - 2)
  return shape_ops.transpose(self, perm)


def _round(self, ndigits=None):
  """Python's round: of a Python number (a staged weakly typed value), an int, or with
  ndigits a number of its kind (bools as ints); of a NumPy scalar (a staged 0-d number), an
  int, or with ndigits a scalar of its dtype. Of anything else (NumPy's arrays have no
  round()), dfdx.numpy.round."""
  dnp = _dnp()
  staged = type(self) is StagingTracer
  if staged and self.ir_var.aval.weak_type:  # (see _binary_op)
    x = python_kind(self, "i") if self.dtype.kind == "b" else self
    rounded = core.keeping_weak_types(dnp.round, x, 0 if ndigits is None else ndigits)
    return python_kind(rounded, "i") if ndigits is None and x.dtype.kind == "f" else rounded
  rounded = dnp.round(self, 0 if ndigits is None else ndigits)
  if staged and ndigits is None and not self.ndim and self.dtype.kind in "iuf":
    return python_kind(rounded, "i")
  return rounded


def _bitwise(name, reflected=False):
  def op(self, other):
    if not isinstance(other, _OPERAND_TYPES):
      return NotImplemented
    fn = getattr(_dnp(), name)
    args = (other, self) if reflected else (self, other)
    if type(self) is StagingTracer and self.ir_var.aval.weak_type and weakly_typed(other):
      return _python_arithmetic(fn, name, *args)  # (see _binary_op)
    return fn(*args)
  op.__name__ = f"__{'r' if reflected else ''}{name}__"
  return op


def _clip(self, min=None, max=None, out=None, **kwargs):  # noqa: A002  (NumPy's names)
  """`ndarray.clip(min=None, max=None)`: either bound may be given by position alone."""
  bounds = {k: v for k, v in (("min", min), ("max", max)) if v is not None}
  return _dnp().clip(self, out=out, **bounds, **kwargs)


def _compress(self, condition, axis=None, out=None):
  return _dnp().compress(condition, self, axis=axis, out=out)


def _choose(self, choices, out=None, mode="raise"):
  return _dnp().choose(self, choices, out=out, mode=mode)


def _searchsorted(self, v, side="left", sorter=None):
  return _dnp().searchsorted(self, v, side=side, sorter=sorter)


def _view(self, dtype=None, type=None):  # noqa: A002  (NumPy's name)
  """`ndarray.view()`: a traced value is immutable, so a view of the same dtype is the value
  itself. A view as another dtype reinterprets the bytes, which has no derivative, and is
  refused."""
  if isinstance(dtype, builtins.type) and issubclass(dtype, np.ndarray):
    dtype, type = None, dtype
  if type is not None and type is not np.ndarray:
    raise TypeError(f"view(type={type.__name__}) of a traced value: only numpy.ndarray views "
                    "are supported.")
  if dtype is not None and np.dtype(dtype) != self.dtype:
    raise TypeError(f"view({np.dtype(dtype)}) of a traced {self.dtype} value reinterprets its "
                    "bytes, which has no derivative; use x.astype(dtype) to convert the "
                    "values.")
  return self


def _iter(self):
  if not self.shape:
    raise TypeError("iteration over a 0-d traced value")
  return (self[i] for i in range(self.shape[0]))


def _item(self, *args):
  self.check_alive()
  raise errors.ConcretizationError(
      f"item() of a traced value ({self._describe()}) would silently drop its derivative. "
      "Keep computing with dfdx.numpy, or call dfdx.stop_gradient(x).item() if dropping the "
      "derivative is what you mean.")


# ---- NumPy's dispatch protocols ---------------------------------------------------------

def _scipy_special_namesake(ufunc, name):
  """dfdx.scipy.special's version of a ufunc of SciPy's special functions (same name and
  meaning), or None; SciPy is not imported for this."""
  special = sys.modules.get("scipy.special")
  if special is None or getattr(special, name, None) is not ufunc:
    return None
  import dfdx.scipy.special as dss
  return getattr(dss, name, None)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
  self.check_alive()
  dnp = _dnp()
  name = ufunc.__name__
  if getattr(np, name, None) is not ufunc:  # (another library's ufunc: SciPy's special)
    fn = _scipy_special_namesake(ufunc, name) if method == "__call__" else None
    if fn is None:
      raise TypeError(f"the ufunc {name}{'' if method == '__call__' else '.' + method} (not "
                      "NumPy's) does not support traced values and dfdx has no differentiable "
                      "version of it: write it with dfdx.numpy or dfdx.scipy functions.")
    return fn(*inputs, **kwargs)
  fn = getattr(dnp, name, None)
  fn = None if fn is ufunc else fn  # (dfdx.numpy re-exports it: NumPy's own)
  if method != "__call__":  # reduce, accumulate, outer, reduceat, at: the dfdx.numpy ufunc's
    fn = getattr(fn, method, None)
  if fn is None:
    raise TypeError(f"numpy.{name}{'' if method == '__call__' else '.' + method} does not "
                    "support traced values and dfdx.numpy has no differentiable version of it.")
  return fn(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
  self.check_alive()
  dnp = _dnp()
  module = getattr(func, "__module__", "") or ""
  namespace = dnp
  for sub in ("linalg", "fft"):
    if module.startswith(f"numpy.{sub}") or module.startswith(f"numpy._core.{sub}"):
      namespace = getattr(dnp, sub, None)
  fn = getattr(namespace, func.__name__, None) if namespace is not None else None
  if fn is func:  # dfdx.numpy re-exports this NumPy function, which works by duck typing
    return func._implementation(*args, **kwargs)
  if fn is None:
    raise TypeError(f"{module or 'numpy'}.{func.__name__} does not support traced values and "
                    "dfdx.numpy has no differentiable version of it.")
  return fn(*args, **kwargs)


# ---- installation --------------------------------------------------------------------------

_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul"}
_COMPARISONS = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
                "eq": "equal", "ne": "not_equal"}
_METHODS = ["sum", "mean", "max", "min", "prod", "std", "var", "cumsum", "cumprod", "argmax",
            "argmin", "any", "all", "ravel", "swapaxes", "squeeze", "dot",
            "round", "repeat", "take", "diagonal", "trace", "nonzero", "conj", "conjugate",
            "copy", "argsort", "argpartition"]


def install():
  """Give `Tracer` array behaviour (called once by `dfdx.numpy`)."""
  T = Tracer
  for op, name in _BINARY.items():
    setattr(T, f"__{op}__", _binary_op(name))
    setattr(T, f"__r{op}__", _binary_op(name, reflected=True))
  for op, name in _COMPARISONS.items():
    setattr(T, f"__{op}__", _binary_op(name))
  for op, name in {"and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
                   "lshift": "left_shift", "rshift": "right_shift"}.items():
    setattr(T, f"__{op}__", _bitwise(name))
    setattr(T, f"__r{op}__", _bitwise(name, reflected=True))
  T.__neg__ = _unary_op("negative")
  T.__pos__ = _unary_op("positive")
  T.__abs__ = _unary_op("absolute")
  T.__invert__ = _unary_op("invert")
  T.__divmod__ = lambda self, other: (self // other, self % other)
  T.__rdivmod__ = lambda self, other: (other // self, other % self)
  T.__getitem__ = _indexing().getitem  # (dfdx.numpy is complete when install() runs)
  T.__iter__ = _iter
  T.__array_ufunc__ = _array_ufunc
  T.__array_function__ = _array_function
  for name in _METHODS:
    setattr(T, name, _method(name))
  T.reshape = _reshape
  T.transpose = _transpose
  T.astype = _astype
  T.flatten = lambda self, order="C": _dnp().ravel(self, order)
  T.item = _item
  T.clip = _clip
  T.compress = _compress
  T.choose = _choose
  T.searchsorted = _searchsorted
  T.view = _view
  T.tolist = _item
  T.T = property(_T)
  T.mT = property(_mT)
  T.__round__ = _round
  T.itemsize = property(lambda self: self.dtype.itemsize)
  T.nbytes = property(lambda self: self.size * self.dtype.itemsize)
  T.real = property(lambda self: _dnp().real(self))
  T.imag = property(lambda self: _dnp().imag(self))
  T.at = property(lambda self: _indexing().at(self))
