"""The engine's core: primitives, `bind`, traces, tracers and abstract values.

Owns:
  * `ShapedArray`, the abstract value (shape, dtype, weak_type) of an array;
  * `Primitive` and `Primitive.bind`, the single point where every operation is intercepted;
  * the current-trace context: exactly one trace is current (per thread: see `context`); each
    trace has a `parent`, and a trace's rules run with that parent current (stackless
    interpreters, as in autodidax2);
  * `Trace` and `Tracer`, the base classes of every interpreter and its values.

Invariants:
  * `None` as the current trace means "no transformation is active": `bind` calls the
    primitive's NumPy implementation directly.
  * A trace owns its tracers; a trace treats every value it does not own as a constant and
    lets its parent handle it. Traces are compared by identity, so nested transformations of
    the same kind never confuse each other's values (no perturbation confusion).
  * A trace is marked dead when its transformation returns; a dead tracer raises
    `EscapedTracerError` wherever it is used.

Imports no ops and no user-facing NumPy API.
"""
from __future__ import annotations

import threading

import numpy as np

from dfdx._src import errors

# ---- abstract values ---------------------------------------------------------------------


class ShapedArray:
  """The abstract value of an array: its shape, dtype and whether its dtype is weak.

  A weak type marks a Python scalar, whose dtype yields to the other operand's in promotion
  (NumPy 2 semantics: `float32 array * 2.0` stays float32). Only a 0-d value can be weakly
  typed: NumPy has no weak arrays (`np.broadcast_to(0.5, (3,))` is a float64 array).
  """
  __slots__ = ("shape", "dtype", "weak_type")

  def __init__(self, shape, dtype, weak_type=False):
    self.shape = tuple(shape)
    self.dtype = np.dtype(dtype)
    self.weak_type = weak_type and not self.shape

  ndim = property(lambda self: len(self.shape))
  size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

  def __eq__(self, other):
    return (type(other) is ShapedArray and self.shape == other.shape
            and self.dtype == other.dtype and self.weak_type == other.weak_type)

  def __hash__(self):
    return hash((self.shape, self.dtype, self.weak_type))

  def str_short(self):
    return f"{self.dtype.name}[{','.join(map(str, self.shape))}]"

  def __repr__(self):
    weak = ", weak_type=True" if self.weak_type else ""
    return f"ShapedArray({self.str_short()}{weak})"


def shaped_array(shape: tuple, dtype: np.dtype) -> ShapedArray:
  """A strongly typed ShapedArray from a tuple and an np.dtype, with no conversions (a fast
  path for values whose shape and dtype come from NumPy)."""
  aval = _new_aval(ShapedArray)
  aval.shape, aval.dtype, aval.weak_type = shape, dtype, False
  return aval


_new_aval = object.__new__

_PY_SCALAR_DTYPES = {bool: np.dtype(bool), int: np.dtype(np.int64),
                     float: np.dtype(np.float64), complex: np.dtype(np.complex128)}


def get_aval(x) -> ShapedArray:
  """The abstract value of a tracer, an array, a NumPy scalar or a Python scalar."""
  if isinstance(x, Tracer):
    return x.aval
  py_dtype = _PY_SCALAR_DTYPES.get(type(x))
  if py_dtype is not None:
    return ShapedArray((), py_dtype, weak_type=True)
  if isinstance(x, (np.ndarray, np.generic)):
    return shaped_array(x.shape, x.dtype)
  raise errors.InvalidInputError(
      f"Expected an array, a Python scalar or a dfdx tracer, but got {type(x).__name__}: "
      f"{x!r:.80}. Convert it with numpy.asarray, or pass it as a static (non-array) argument.")


def shape_of(x) -> tuple:
  """The shape of an array, tracer or scalar (without NumPy's dispatch on tracers)."""
  try:
    return x.shape
  except AttributeError:
    return np.shape(x)


def ndim_of(x) -> int:
  return len(shape_of(x))


def is_float_dtype(dtype) -> bool:
  return np.dtype(dtype).kind in "fc"


# ---- the current trace and the rest of the dynamic context --------------------------------


class Context(threading.local):
  """What is in force while a transformation runs, one per thread: each thread starts from
  these defaults, so transformations run in two threads at once never see each other's
  traces. Every module's dynamic state is here; the module named on each line owns it.
  (Caches and switches such as debug_nans stay module globals, shared by all threads.)"""
  trace = None            # core: the trace that `bind` dispatches to (None: NumPy)
  reverse_depth = 0       # core: derivative passes running (see below)
  weak_results = False    # core: staged results keep weak types (see below)
  zero_absorbing = False  # ad: the zero-absorbing chain rule is on (ad.run_zero_absorbing)
  vjp_rules = True        # ad: direct VJP rules are used (ad.use_vjp_rules)
  deferred = None         # ad: a weak reference to the tracer whose primal is deferred
  split_trace = None      # ad: the split spectrum's trace (ad.run_split)
  ties_met = 0            # ad: reverse passes that met a tie of a spectrum (a counter)
  jvp_traces = 0          # ad: JVP traces made (a counter: was anything differentiated?)
  splitting = False       # ops.control_flow: loops' JVPs split primal and tangent parts
  reads = None            # state: while jit traces, the Variables read (id -> Variable)
  held = None             # debug: NaNErrors held back during a first attempt
  numpy_reports = False   # debug: NumPy reports invalid operations to debug_nans here

  def __init__(self):
    self.frames = []        # state: the journal of Variables assigned, a dict per open call
    self.custom_rules = {}  # custom: custom functions whose rules are being staged
    self.variables = {}     # state: the values this thread's transformations gave Variables
    self.orphans = []       # state: Variables made traced before any journal was opened


context = Context()


def current_trace():
  """The trace that `bind` dispatches to now (`None`: evaluate with NumPy)."""
  return context.trace


def swap_trace(trace):
  """Make `trace` current and return the trace that was current before."""
  ctx = context
  prev, ctx.trace = ctx.trace, trace
  return prev


def bind_in(trace, prim, args, params):
  """`prim.bind(*args, **params)` with `trace` current (the NumPy impl for None)."""
  if trace is None:
    return prim.impl(*args, **params)
  prev = swap_trace(trace)
  try:
    return prim.bind(*args, **params)
  finally:
    swap_trace(prev)


class set_trace:
  """Context manager: make `trace` current inside the block."""
  __slots__ = ("trace", "prev")

  def __init__(self, trace):
    self.trace = trace

  def __enter__(self):
    self.prev = swap_trace(self.trace)

  def __exit__(self, *exc):
    swap_trace(self.prev)


# ---- primitives -------------------------------------------------------------------------


class Primitive:
  """An operation that every interpreter knows how to handle.

  A primitive's rules (impl, abstract eval, JVP, transpose, batching) are registered in one
  block next to its definition in `dfdx/_src/ops/<family>.py`. Arrays are passed to `bind`
  positionally, static parameters by keyword.
  """
  __slots__ = ("name", "impl", "abstract_eval", "multiple_results", "linear", "__weakref__")

  def __init__(self, name: str, *, multiple_results: bool = False):
    self.name = name
    self.impl = None
    self.abstract_eval = None
    self.multiple_results = multiple_results
    self.linear = False

  def bind(self, *args, **params):
    trace = context.trace
    if trace is None:
      return self.impl(*args, **params)
    return trace.process_primitive(self, args, params)

  def def_impl(self, impl):
    self.impl = impl
    return impl

  def def_abstract_eval(self, rule):
    self.abstract_eval = rule
    return rule

  def __repr__(self):
    return self.name


all_primitives: dict[str, Primitive] = {}


def count_binds(fn):
  """How often each primitive was bound (by name, a collections.Counter) during `fn()`: for
  tests and profiles of the engine."""
  import collections
  counts = collections.Counter()
  original = Primitive.bind

  def counting(self, *args, **params):
    counts[self.name] += 1
    return original(self, *args, **params)
  Primitive.bind = counting
  try:
    fn()
  finally:
    Primitive.bind = original
  return counts


def primitive(name: str, *, multiple_results: bool = False) -> Primitive:
  """Create a primitive and enter it in the registry that the registry test checks."""
  if name in all_primitives:
    raise ValueError(f"primitive {name!r} is defined twice")
  prim = all_primitives[name] = Primitive(name, multiple_results=multiple_results)
  return prim


def abstract_eval(prim: Primitive, args, params):
  """Output aval(s) of `prim` applied to `args` (values or tracers)."""
  return prim.abstract_eval(*[get_aval(a) for a in args], **params)


def abstract_eval_avals(prim: Primitive, avals, params):
  """Output aval(s) of `prim` applied to arguments with these avals."""
  return prim.abstract_eval(*avals, **params)


# ---- reverse passes -------------------------------------------------------------------------
# `context.reverse_depth` counts the derivative passes running (ad.derivative_pass: reverse
# passes, and forward applications of a linearization): NumPy's floating-point warnings are
# off in them, and an equation staged meanwhile is marked (ir.QuietSource) so that the
# compiled program runs it with the warnings off too, as the eager reverse pass does.


# ---- weak types of staged values ------------------------------------------------------------
# A staged value of weak type stands for a Python scalar. Python's arithmetic on Python
# scalars gives Python scalars (`x32 + s * 2.0` stays float32), but every NumPy function
# gives NumPy's types (`np.exp(0.5)` is a float64, which makes `x32 + np.exp(0.5)` float64).
# So a staged result keeps its weak type only while `context.weak_results` is set: in the
# arithmetic operators of weak values (dfdx._src.numpy.array_methods) and while a recorded
# program is replayed (ir.eval_program). Anywhere else it is made strong, as NumPy would
# make it: a ufunc's equation is recorded with a strong output (a ufunc returns a NumPy
# value), any other result is cast to its own dtype (staging.StagingTrace.process_primitive).
# At run time a weakly typed value is a Python scalar (codegen writes `float(...)` for it).
# Primitives that give what they were given or what their function gives (stop_gradient,
# loops, branches, custom rules, nested jit): a Python scalar that comes out stays one.
keeps_weak_types: set = set()


def ufunc_valued(prim) -> bool:
  """Whether `prim`'s impl is a NumPy ufunc: of Python scalars, it gives a NumPy value."""
  return isinstance(getattr(prim.impl, "ufunc", prim.impl), np.ufunc)


def keeping_weak_types(fn, *args):
  """`fn(*args)` with staged results left weakly typed where every operand is."""
  ctx = context
  prev, ctx.weak_results = ctx.weak_results, True
  try:
    return fn(*args)
  finally:
    ctx.weak_results = prev


# ---- traces and tracers -----------------------------------------------------------------


class Trace:
  """Base class of interpreters. Subclasses define `process_primitive`."""
  __slots__ = ("parent", "alive", "__weakref__")
  kind = "trace"

  def __init__(self):
    self.parent = context.trace
    self.alive = True

  def process_primitive(self, prim, args, params):
    raise NotImplementedError

  def __repr__(self):
    return f"<{type(self).__name__} {id(self):#x}>"


class Tracer:
  """A value under a transformation. It behaves like an array: the operators and methods are
  installed by `dfdx._src.numpy.array_methods`, so that this module imports no ops."""
  __slots__ = ("_trace",)
  __array_priority__ = 1000
  __hash__ = None  # like arrays, tracers are not hashable

  @property
  def aval(self) -> ShapedArray:
    return ShapedArray(self.shape, self.dtype)

  shape = property(lambda self: self.aval.shape)
  dtype = property(lambda self: self.aval.dtype)
  ndim = property(lambda self: len(self.shape))
  size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

  def __len__(self):
    if not self.shape:
      raise TypeError("len() of a 0-d traced value")
    return self.shape[0]

  def check_alive(self):
    if not self._trace.alive:
      raise errors.EscapedTracerError(self._describe())

  def concrete_value(self, purpose: str):
    """The NumPy value behind this tracer, for Python control flow; subclasses that have no
    single concrete value raise `ConcretizationError`."""
    self.check_alive()
    raise errors.ConcretizationError(
        f"{purpose} needs a concrete value, but this value is traced by "
        f"{self._trace.kind}: {self._describe()}. Use dfdx.numpy.where instead of Python "
        f"control flow on traced values.")

  def __bool__(self):
    return bool(self.concrete_value("bool() (an `if` or `while` on an array)"))

  def __int__(self):
    return int(self.concrete_value("int()"))

  def __index__(self):
    value = self.concrete_value("using a traced value as an index")
    if np.dtype(value.dtype).kind not in "iub":
      raise TypeError(f"only integer arrays can be used as an index, got {self._describe()}")
    return int(value)

  def __float__(self):
    self.check_alive()
    raise errors.ConcretizationError(
        f"float() of a traced value ({self._describe()}) would silently drop its derivative. "
        "Keep computing with dfdx.numpy, or call float(dfdx.stop_gradient(x)) if dropping the "
        "derivative is what you mean. (Storing a traced value into a NumPy array, `a[i] = x`, "
        "calls float(): build the array with dnp.stack or dnp.array([...]), or update it with "
        "a = dnp.at(a)[i].set(x).)")

  __complex__ = __float__

  def __array__(self, dtype=None, copy=None):
    self.check_alive()
    if self.dtype.kind in "biu":  # (NumPy asks this of an index too: `a[i]`, `a` a NumPy array)
      raise errors.TracerArrayConversionError(
          f"Cannot convert a traced value ({self._describe()}) to a NumPy array: its value is "
          f"not known while {self._trace.kind} traces the function. To index a NumPy array "
          "with it, use dfdx.numpy.take(a, i, axis=0) (dfdx.numpy's functions take traced "
          "indices); or pass the array through dfdx.numpy functions rather than NumPy's.")
    raise errors.TracerArrayConversionError(
        f"Cannot convert a traced value ({self._describe()}) to a NumPy array: its derivative "
        "would be lost. Use the functions of dfdx.numpy (import dfdx.numpy as dnp) on traced "
        "values, or dfdx.stop_gradient(x) if you mean to drop the derivative. To change its "
        "dtype, use x.astype(np.float32) or dnp.asarray(x, np.float32): NumPy's scalar types "
        "(np.float32(x)) make NumPy values.")

  def _describe(self):
    return f"{self.aval.str_short()} traced by {self._trace.kind}"

  def __repr__(self):
    if not self._trace.alive:
      return f"Traced<{self.aval.str_short()}>(dead {self._trace.kind})"
    return f"Traced<{self.aval.str_short()}>({self._trace.kind}){self._repr_value()}"

  def _repr_value(self):
    return ""


# ---- values in messages ---------------------------------------------------------------------
_VALUE_ARRAYS = (Tracer, np.ndarray, np.generic)
_VALUE_SCALARS = (bool, int, float, complex)


def short_value(x):
  """A value in a few characters: `float64[3]` for an array (traced or not), the value of a
  Python number, the type and length of a container, else the type's name."""
  if isinstance(x, _VALUE_ARRAYS):
    return get_aval(x).str_short()
  if isinstance(x, _VALUE_SCALARS):
    return f"{x!r}"
  if isinstance(x, (tuple, list, dict)):
    return f"{type(x).__name__} of {len(x)}"
  return "None" if x is None else type(x).__name__


def describe_value(x):
  """A value a rule returned, as a message shows it: what it is (an array by dtype and shape,
  a container by its type and entries), never the class of a traced value."""
  if isinstance(x, _VALUE_ARRAYS):
    return f"an array {short_value(x)}"
  if isinstance(x, _VALUE_SCALARS):
    return f"a Python {type(x).__name__} ({x!r})"
  if isinstance(x, (tuple, list)):
    entries = ", ".join(short_value(e) for e in x[:4]) + (", ..." if len(x) > 4 else "")
    return f"a {type(x).__name__} of {len(x)} ({entries})"
  if isinstance(x, dict):
    entries = ", ".join(f"{k!r}: {short_value(v)}" for k, v in list(x.items())[:4])
    return f"a dict of {len(x)} ({entries}{', ...' if len(x) > 4 else ''})"
  return "None" if x is None else f"a {type(x).__name__}"
