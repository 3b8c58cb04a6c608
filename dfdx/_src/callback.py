"""Calling NumPy code from traced functions: `pure_callback` and `ShapeDtypeStruct`.

Owns the primitive `pure_callback`. Its impl calls the user's function on NumPy values and
checks what it returns against the declared shapes and dtypes; under jit the generated code
calls it back (its params are constants of the compiled code, as a solver's are). Under vmap
it is called once per example, or once for the whole batch with `vectorized=True`. It has
no derivative: dfdx cannot see inside the called code, and says so, naming the function;
`custom_jvp` or `custom_vjp` around the call gives it one.
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core, errors
from dfdx._src.core import ShapedArray, Tracer
from dfdx._src.tree import tree_flatten, tree_unflatten


class ShapeDtypeStruct:
  """A shape and a dtype: what `eval_shape` returns, and one way to declare a
  `pure_callback`'s results (a NumPy array of the right shape and dtype is another)."""
  __slots__ = ("shape", "dtype", "weak_type")

  def __init__(self, shape, dtype, weak_type=False):
    self.shape = tuple(int(d) for d in shape)
    self.dtype = np.dtype(dtype)
    self.weak_type = bool(weak_type)

  @property
  def ndim(self):
    return len(self.shape)

  @property
  def size(self):
    return int(np.prod(self.shape, dtype=np.int64))

  def __eq__(self, other):
    return (type(other) is ShapeDtypeStruct and other.shape == self.shape
            and other.dtype == self.dtype and other.weak_type == self.weak_type)

  def __hash__(self):
    return hash((self.shape, self.dtype, self.weak_type))

  def __repr__(self):
    weak = ", weak_type=True" if self.weak_type else ""
    return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name}{weak})"


def _declared_aval(x, where):
  shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
  if shape is None or dtype is None:
    raise TypeError(f"{where}: result_shape_dtypes must be a pytree of objects with .shape "
                    f"and .dtype (dfdx.ShapeDtypeStruct, NumPy arrays), got {type(x).__name__}")
  return ShapedArray(tuple(shape), np.dtype(dtype))


pure_callback_p = core.primitive("pure_callback", multiple_results=True)


def pure_callback(callback, result_shape_dtypes, *args, vectorized=False, **kwargs):
  """`callback(*args, **kwargs)`, a function of NumPy arrays that dfdx does not trace (SciPy,
  a compiled extension, any NumPy code), called from a function that dfdx transforms.

  `result_shape_dtypes` declares what it returns: a pytree of `dfdx.ShapeDtypeStruct` (or
  NumPy arrays) of the result's structure, shapes and dtypes, which `jit` needs before any
  value exists. The callback gets read-only NumPy arrays for the array arguments (others as
  they are) and must return that structure; results are copied and cast to the declared
  dtypes (within a kind; an integer that does not fit raises), and a wrong shape or
  structure is an error naming the callback.

  The callback must be pure: jit may call it once per call of the compiled function, or not
  at all if its results are unused. Under vmap it is called once per example; with
  `vectorized=True`, once for the batch, with every array argument stacked along a new
  leading axis (arguments that are not mapped are broadcast) and results expected with that
  axis. It has no derivative: differentiating through it raises, naming it; wrap it in
  `dfdx.custom_jvp` or `custom_vjp` to give it one.

  >>> import scipy.special
  >>> def log_gamma(x):
  ...   return dfdx.pure_callback(scipy.special.gammaln, dfdx.ShapeDtypeStruct(x.shape, x.dtype), x)
  >>> dfdx.jit(log_gamma)(np.array([1.0, 5.0]))
  array([0.        , 3.17805383])
  """
  if not callable(callback):
    raise TypeError(f"pure_callback: expected a function to call, got {type(callback).__name__}")
  name = getattr(callback, "__name__", type(callback).__name__)
  out_leaves, out_tree = tree_flatten(result_shape_dtypes)
  out_avals = tuple(_declared_aval(x, f"pure_callback({name})") for x in out_leaves)
  leaves, in_tree = tree_flatten((args, kwargs))
  arrays = [isinstance(x, (Tracer, np.ndarray, np.generic, bool, int, float, complex))
            for x in leaves]
  if not any(isinstance(x, Tracer) for x in leaves) and core.current_trace() is None:
    outs = _call(callback, name, in_tree, leaves, arrays, out_tree, out_avals, None,
                 [x for x, a in zip(leaves, arrays) if a])
    # (0-d results as NumPy scalars, as jit returns them)
    return tree_unflatten(out_tree, [o[()] if o.ndim == 0 else o for o in outs])
  dynamic = [x for x, a in zip(leaves, arrays) if a]
  outs = pure_callback_p.bind(
      *dynamic, callback=callback, name=name, in_tree=in_tree, static=tuple(
          None if a else x for x, a in zip(leaves, arrays)), out_tree=out_tree,
      out_avals=out_avals, vectorized=bool(vectorized), batch=None)
  return tree_unflatten(out_tree, outs)


def _call(callback, name, in_tree, leaves, arrays, out_tree, out_avals, batch, dynamic):
  """Call the callback on NumPy values and check its results."""
  it = iter(_read_only(x) for x in dynamic)
  call_leaves = [next(it) if a else x for x, a in zip(leaves, arrays)]
  args, kwargs = tree_unflatten(in_tree, call_leaves)
  where = f"pure_callback({name})"
  try:
    results = callback(*args, **kwargs)
  except Exception as e:  # (passed through as it is, with a note where it came from)
    if hasattr(e, "add_note"):
      e.add_note(f"raised by the callback of {where} (its array arguments are read-only)")
    raise
  res_leaves, res_tree = tree_flatten(results)
  if res_tree != out_tree:
    raise ValueError(f"{where}: the callback returned {res_tree}, but result_shape_dtypes "
                     f"declares {out_tree}")
  outs = []
  for i, (r, aval) in enumerate(zip(res_leaves, out_avals)):
    r = np.asarray(r)
    shape = aval.shape if batch is None else (batch,) + aval.shape
    if r.shape != shape:
      hint = (" (vectorized=True: it gets every array argument with the batch's leading axis, "
              "and must return results with it)") if batch is not None else ""
      raise ValueError(f"{where}: result {i} has shape {r.shape}, but {shape} was declared"
                       f"{hint}")
    if r.dtype != aval.dtype:
      if not np.can_cast(r.dtype, aval.dtype, "same_kind"):
        raise TypeError(f"{where}: result {i} has dtype {r.dtype}, but {aval.dtype} was "
                        "declared, another kind; declare the dtype it returns, or cast it")
      if aval.dtype.kind in "iu" and not np.can_cast(r.dtype, aval.dtype) and not \
          np.array_equal(r.astype(aval.dtype).astype(r.dtype), r):
        raise OverflowError(f"{where}: result {i} has dtype {r.dtype} and values out of the "
                            f"bounds of the declared {aval.dtype}")
    # (a copy: the result may be the callback's argument, a value it keeps, or another of its
    # results, and compiled code writes into the arrays that primitives return)
    outs.append(np.array(r, dtype=aval.dtype, order="C"))
  return outs


def _read_only(x):
  """An argument as the callback sees it: a NumPy array it cannot write into (it may be a
  value that compiled code reads again, or the caller's array)."""
  x = np.asarray(x)
  if x.flags.writeable:
    x = x.view()
    x.flags.writeable = False
  return x


def _impl(*dynamic, callback, name, in_tree, static, out_tree, out_avals, vectorized, batch):
  arrays = [s is None for s in static]
  return _call(callback, name, in_tree, list(static), arrays, out_tree, out_avals, batch,
               dynamic)


def _abstract_eval(*avals, callback, name, in_tree, static, out_tree, out_avals, vectorized,
                   batch):
  if batch is None:
    return list(out_avals)
  return [ShapedArray((batch,) + a.shape, a.dtype) for a in out_avals]


def _jvp(primals, tangents, **params):
  if any(t is not None for t in tangents):
    raise errors.MissingRuleError(
        f"pure_callback({params['name']}) has no derivative: dfdx cannot see inside the code it "
        "calls. Wrap the call in dfdx.custom_jvp (or custom_vjp) and give its derivative "
        "there (another pure_callback can compute it), or pass the input through "
        "dfdx.stop_gradient if its derivative is not wanted.")
  outs = pure_callback_p.bind(*primals, **params)
  return outs, [None] * len(outs)


_per_example = batching.defone_by_one(pure_callback_p)


def _batch(axis_size, vals, dims, **params):
  if not params["vectorized"]:
    return _per_example(axis_size, vals, dims, **params)
  if params["batch"] is not None:  # (nested vmaps: the inner batch is already stacked)
    return _per_example(axis_size, vals, dims, **params)
  moved = [batching.bdim_at_front(v, d, axis_size) for v, d in zip(vals, dims)]
  outs = pure_callback_p.bind(*moved, **{**params, "batch": axis_size})
  return outs, [0] * len(outs)


pure_callback_p.def_impl(_impl)
pure_callback_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[pure_callback_p] = _jvp
batching.primitive_batchers[pure_callback_p] = _batch


def _register_codegen():
  from dfdx._src import codegen_rules
  codegen_rules.register("pure_callback", codegen_rules._solver_call("pure_callback"))


_register_codegen()


def eval_shape(f, *args, **kwargs):
  """The shapes and dtypes of `f(*args, **kwargs)`, found without computing it: a pytree of
  `ShapeDtypeStruct` of f's output structure (output leaves that are not arrays, a string
  or a function, as they are, as jit returns them). Arguments may be arrays or anything
  with .shape and .dtype (a `ShapeDtypeStruct`); other leaves (strings, functions) are
  passed as they are.

  >>> out = dfdx.eval_shape(lambda a, b: a @ b, dfdx.ShapeDtypeStruct((3, 4), np.float32),
  ...                       np.ones((4, 5)))
  >>> out
  ShapeDtypeStruct(shape=(3, 5), dtype=float64)
  """
  from dfdx._src.staging import make_program
  leaves, in_tree = tree_flatten((args, kwargs))
  dynamic = [isinstance(x, (ShapeDtypeStruct, Tracer, np.ndarray, np.generic, bool, int, float,
                            complex)) or (hasattr(x, "shape") and hasattr(x, "dtype"))
             for x in leaves]
  avals = []
  for x, d in zip(leaves, dynamic):
    if not d:
      continue
    if isinstance(x, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
      avals.append(core.get_aval(x))
    else:
      avals.append(ShapedArray(tuple(x.shape), np.dtype(x.dtype),
                               bool(getattr(x, "weak_type", False))))
  store = {}

  def flat_fun(*xs):
    it = iter(xs)
    call_args, call_kwargs = tree_unflatten(in_tree, [next(it) if d else x
                                                      for x, d in zip(leaves, dynamic)])
    out_leaves, store["out_tree"] = tree_flatten(f(*call_args, **call_kwargs))
    # (other leaves, a string or a function, are returned as they are, as jit returns them)
    store["statics"] = {i: o for i, o in enumerate(out_leaves) if not isinstance(
        o, (Tracer, np.ndarray, np.generic, bool, int, float, complex))}
    return [o for i, o in enumerate(out_leaves) if i not in store["statics"]]
  program, _ = make_program(flat_fun, avals, record_source=False)
  structs = iter(ShapeDtypeStruct(a.shape, a.dtype, a.weak_type) for a in program.out_avals)
  statics = store["statics"]
  return tree_unflatten(store["out_tree"], [statics[i] if i in statics else next(structs)
                                            for i in range(store["out_tree"].num_leaves)])
