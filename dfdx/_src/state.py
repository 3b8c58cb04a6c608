"""Mutable state for BrainPy-style code: `Variable`, `TrainVar`, `Module`, and the journal that
keeps Variables consistent through transformations.

A `Variable` is a box around an array (`.value`). Arithmetic, indexing, methods and every
NumPy or `dfdx.numpy` function accept it as its value (through NumPy's dispatch protocols).
Transformations may differentiate with respect to Variables (`grad(f, grad_vars=...)`), and the
differentiated code may assign them (`self.a.value = a * b`).

The journal: each transformation call opens a frame; the first assignment to a Variable
inside it records the Variable's previous value. When the transformation returns, every
Variable assigned inside holds a plain value again (traced values of the ending
transformation are replaced by their values), so no tracer ever escapes into a Variable;
if it raises, every Variable assigned inside gets its previous value back.

Threads: while a transformation runs in a thread, the Variables it reads keep the value of
its first read, and those it assigns (the traced values that grad_vars and jit give them
included) hold their new values, for that thread only (`context.variables`: id -> (var,
value, the value first read)); the outermost transformation's end gives those it changed to
every thread, and an exception drops them. Another thread reading the same Variable
meanwhile sees its value from before, never a tracer of this thread's transformation, and
its own assignments meanwhile stand unless this transformation changed that Variable too.

Imports only the core.
"""
from __future__ import annotations

import itertools

import numpy as np

from dfdx._src.core import Tracer, context, swap_trace

# The journal (`context.frames`, one per thread): one dict id(var) -> (var, previous value)
# per open call. While jit traces a function, `context.reads` is id(var) -> var for every
# Variable whose value it reads (jit makes them inputs of the compiled program, read again at
# every call); None otherwise.
in_use = False  # set once a Variable exists: until then transformations skip the journal
CREATED = object()  # the previous value, in the journal, of a Variable made inside


class Variable:
  """A mutable array held by an object, differentiable with `grad_vars`.

  >>> v = Variable(np.array([1.0, 2.0]))
  >>> v * 2
  array([2., 4.])
  >>> v.value = v.value + 1
  >>> v
  Variable(array([2., 3.]))
  """
  __slots__ = ("_held", "__weakref__")
  __array_priority__ = 2000

  def __init__(self, value):
    global in_use
    in_use = True
    value = unwrap(value)
    self._held = value if isinstance(value, (np.ndarray, Tracer)) else np.asarray(value)
    if isinstance(value, Tracer):  # made inside a transformation: its end gives it the
      frames = context.frames       # traced value's value (see run_journaled)
      if frames:
        frames[-1][id(self)] = (self, CREATED)
      else:
        context.orphans.append(self)

  @property
  def _value(self):  # (every read of the value: noted while jit traces)
    ctx = context
    if ctx.reads is not None:
      ctx.reads[id(self)] = self
    return held(self)

  @_value.setter
  def _value(self, new):
    hold(self, new)

  @property
  def value(self):
    return self._value

  @value.setter
  def value(self, new):
    if isinstance(new, Variable):
      new = new.value
    if not isinstance(new, (np.ndarray, Tracer)):
      new = np.asarray(new)
    frames = context.frames
    if frames and id(self) not in frames[-1]:
      frames[-1][id(self)] = (self, self._value)
    self._value = new

  shape = property(lambda self: self._value.shape)
  dtype = property(lambda self: self._value.dtype)
  ndim = property(lambda self: self._value.ndim)
  size = property(lambda self: self._value.size)
  T = property(lambda self: self._value.T)

  def __len__(self):
    return len(self._value)

  def __iter__(self):
    return iter(self._value)

  def __getitem__(self, index):
    return self._value[index]

  def __getattr__(self, name):  # methods of the value: sum, mean, reshape, astype, ...
    if name.startswith("__"):
      raise AttributeError(name)
    return getattr(self._value, name)

  def __array__(self, dtype=None, copy=None):
    return np.asarray(self._value, dtype=dtype)

  def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
    inputs = [unwrap(x) for x in inputs]
    return getattr(ufunc, method)(*inputs, **kwargs)

  def __array_function__(self, func, types, args, kwargs):
    return func(*unwrap_nested(args), **unwrap_nested(kwargs))

  def __repr__(self):
    return f"{type(self).__name__}({self._value!r})"

  def __bool__(self):
    return bool(self._value)

  def __float__(self):
    return float(self._value)

  def __int__(self):
    return int(self._value)

  def __index__(self):
    return self._value.__index__()

  __hash__ = object.__hash__


def _binary(name):
  def op(self, other):
    return getattr(self._value, name)(unwrap(other))
  op.__name__ = name
  return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "lt", "le",
              "gt", "ge", "eq", "ne", "and", "or", "xor", "divmod"):
  setattr(Variable, f"__{_name}__", _binary(f"__{_name}__"))
  if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(Variable, f"__r{_name}__", _binary(f"__r{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
  setattr(Variable, f"__{_name}__", lambda self, _n=_name: getattr(self._value, f"__{_n}__")())


class TrainVar(Variable):
  """A Variable that is trained (`Module.train_vars()` collects these)."""
  __slots__ = ()


def unwrap(x):
  return x._value if isinstance(x, Variable) else x


def unwrap_nested(x):
  """`x` with Variables replaced by their values, inside lists, tuples and dicts too."""
  if isinstance(x, Variable):
    return x._value
  if isinstance(x, (list, tuple)):
    return type(x)(unwrap_nested(v) for v in x)
  if isinstance(x, dict):
    return {k: unwrap_nested(v) for k, v in x.items()}
  return x


# ---- modules --------------------------------------------------------------------------------

_module_counts: dict = {}


class Module:
  """Base class of objects that hold Variables (BrainPy's convention).

  `vars()` and `train_vars()` return dicts name -> Variable, collected from the attributes,
  recursively through sub-Modules, lists, tuples and dicts. Names are stable across calls:
  the owning module's name (the class name and a per-class counter, like BrainPy's "F0")
  and the attribute path, e.g. "Linear0.w" or "Net0.layers[1].b".

  >>> class Linear(Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.w = TrainVar(np.ones(2))
  >>> list(Linear().vars())   # doctest: +ELLIPSIS
  ['Linear....w']
  """

  def __init__(self, name=None):
    object.__setattr__(self, "_dfdx_name", name or _new_name(type(self).__name__))

  @property
  def name(self):
    if "_dfdx_name" not in self.__dict__:  # a subclass that did not call Module.__init__
      object.__setattr__(self, "_dfdx_name", _new_name(type(self).__name__))
    return self.__dict__["_dfdx_name"]

  def vars(self) -> dict:
    """Every Variable reachable from this module: name -> Variable."""
    found, seen = {}, set()
    _collect(self, self.name, found, seen)
    return found

  def train_vars(self) -> dict:
    """The TrainVars among `vars()`."""
    return {k: v for k, v in self.vars().items() if isinstance(v, TrainVar)}


def _new_name(cls_name):
  count = _module_counts.setdefault(cls_name, itertools.count())  # (one counter per class,
  return f"{cls_name}{next(count)}"                               # even for threads at once)


def _collect(obj, path, found, seen):
  if id(obj) in seen:
    return
  if isinstance(obj, Variable):
    seen.add(id(obj))
    found[path] = obj
    return
  if isinstance(obj, Module):
    seen.add(id(obj))
    for key, value in vars(obj).items():
      if not key.startswith("_dfdx_"):
        _collect(value, f"{obj.name}.{key}", found, seen)
  elif isinstance(obj, (list, tuple)):
    for i, value in enumerate(obj):
      _collect(value, f"{path}[{i}]", found, seen)
  elif isinstance(obj, dict):
    for key, value in obj.items():
      _collect(value, f"{path}[{key!r}]", found, seen)


# ---- the journal ------------------------------------------------------------------------------


def run_in_trace(trace, fun, ins, strip):
  """`fun(*ins)` with `trace` current, journaled (see `run_journaled`); the trace ends
  (`alive = False`) when it returns or raises."""
  def run():
    prev = swap_trace(trace)
    try:
      return fun(*ins)
    finally:
      swap_trace(prev)
      trace.alive = False
  return run_journaled(trace, run, strip)


def run_journaled(trace, run, strip):
  """`run()` for a transformation whose trace is `trace`: afterwards every Variable assigned
  inside holds `strip(tracer)` instead of a value traced by `trace`; if `run` raises, the
  Variables get their previous values back."""
  if not in_use:  # (no Variable existed: no journal, unless the function made the first)
    out = run()
    if context.orphans:
      _strip_orphans(trace, strip)
    return out
  with journal() as j:
    out = run()
    j.finish(trace, strip)
  if context.orphans:  # (made before the first journal of an enclosing transformation)
    _strip_orphans(trace, strip)
  return out


def _strip_orphans(trace, strip):
  """Give the Variables made without a journal open, holding values traced by `trace`, those
  values' values; keep those of enclosing transformations for their ends."""
  orphans = context.orphans
  kept = []
  for var in orphans:
    value = var._held
    if isinstance(value, Tracer) and value._trace is trace:
      stripped = strip(value)
      var._held = stripped if isinstance(stripped, np.ndarray) else np.asarray(stripped)
    elif isinstance(value, Tracer) and value._trace.alive:
      kept.append(var)
  orphans[:] = kept


def held(var):
  """The value of `var` in this thread (without noting the read, as `var.value` does). While
  a transformation runs, the first read fixes it for the thread: the transformation sees
  one value of each Variable whatever other threads assign meanwhile."""
  ctx = context
  entry = ctx.variables.get(id(var))
  if entry is not None:
    return entry[1]
  value = var._held
  if ctx.frames:
    ctx.variables[id(var)] = (var, value, value)
  return value


def hold(var, value):
  """Give `var` the value `value`: for this thread only while a transformation runs in it
  (see "Threads" above), else for all."""
  ctx = context
  if ctx.frames:
    entry = ctx.variables.get(id(var))
    ctx.variables[id(var)] = (var, value, var._held if entry is None else entry[2])
  else:
    var._held = value


def restore(frame):
  """Give the Variables a journal frame recorded their previous values (those made inside
  keep theirs); nothing for None."""
  for var, previous in (frame or {}).values():
    if previous is not CREATED:
      var._value = previous


class journal:
  """Context manager around one transformation call: Variables assigned inside hold plain
  values when it returns (`finish(trace, strip)`), and their previous values if it raises.
  The outermost one gives the thread's values to all threads when it returns."""
  __slots__ = ("frame",)

  def __enter__(self):
    self.frame = {}
    context.frames.append(self.frame)
    return self

  def __exit__(self, exc_type, exc, tb):
    ctx = context
    frames = ctx.frames
    frames.pop()
    if not frames:  # the outermost: the thread's values become everyone's, or are dropped
      variables, ctx.variables = ctx.variables, {}
      if exc_type is None:
        for var, value, before in variables.values():
          if value is not before:  # (a value given back as it was leaves other threads')
            var._held = value
      return False
    if exc_type is not None:
      restore(self.frame)
      return False
    parent = frames[-1]  # (an enclosing call may still have to restore them)
    for key, entry in self.frame.items():
      parent.setdefault(key, entry)
    return False

  def finish(self, trace, strip):
    """Replace values traced by `trace` (an ending transformation) with `strip(tracer)`."""
    for var, _ in self.frame.values():
      value = var._value
      if isinstance(value, Tracer) and value._trace is trace:
        stripped = strip(value)  # (a 0-d array stays one, as the value setter keeps it)
        var._value = stripped if isinstance(stripped, (np.ndarray, Tracer)) else \
            np.asarray(stripped)
