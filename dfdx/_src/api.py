"""The user-facing transformations: grad, value_and_grad, vector_grad, jvp, vjp, linearize,
jacfwd, jacrev, jacobian, hessian, hvp and vmap.

Owns the plumbing around the flat transformations of `ad` and `batching`: choosing the
differentiated arguments (`argnums` or `wrt`), pytrees in and out, `has_aux` and
`return_value`, input checks and conversions (integers are differentiated as floats), and
output conventions (NumPy scalars for scalar inputs). jacfwd, jacrev and hessian are
compositions of vmap with jvp or the transpose of a linearization; none loops in Python over
basis vectors.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from dfdx._src import ad, batching, core, dtypes, errors, sparsity
from dfdx._src.batching import NOT_MAPPED
from dfdx._src.core import Tracer
from dfdx._src.state import Module, Variable
from dfdx._src.ops import elementwise
from dfdx._src.ops import shape as shape_ops
from dfdx._src.numpy.util import is_weak, strong
from dfdx._src.tree import tree_flatten, tree_map, tree_unflatten, tree_structure, PyTreeDef

# ---- choosing the differentiated arguments ----------------------------------------------


class _DefaultArgnums(int):
  """The default `argnums` (0), distinguishable from an explicit 0: with `grad_vars` and no
  explicit argnums, only the Variables are differentiated."""

  def __repr__(self):
    return "0"


DEFAULT_ARGNUMS = _DefaultArgnums(0)


class _DiffArgs:
  """What a derivative is taken with respect to: positional arguments (`argnums`), parameters
  by name (`wrt`, resolved from the signature so that keywords work too), and Variables
  (`grad_vars`). `pack` arranges the derivatives by the conventions of DESIGN.md."""

  def __init__(self, f, argnums, wrt, transform, allow_empty=False, grad_vars=None):
    self.f, self.transform = f, transform
    self.var_leaves, self.var_tree = _variables(grad_vars, transform)
    self.has_args = grad_vars is None or wrt is not None or argnums is not DEFAULT_ARGNUMS
    if wrt is not None:
      if argnums is not DEFAULT_ARGNUMS and argnums is not None:
        raise errors.ArgnumsError(
            f"{transform}: give argnums or wrt, not both (got argnums={argnums!r} and "
            f"wrt={wrt!r}).")
      names = tuple(n.strip() for n in wrt.split(",")) if isinstance(wrt, str) else tuple(wrt)
      if len(set(names)) < len(names):
        raise errors.ArgnumsError(
            f"{transform}: wrt={wrt!r} names a parameter more than once; name each once (the "
            "derivative with respect to it is the same each time).")
      self.single = isinstance(wrt, str) and len(names) == 1
      self.names, self.argnums = names, None
      self.signature = _signature(f, transform)
      missing = [n for n in names if n not in self.signature.parameters]
      if missing or not names:
        raise errors.ArgnumsError(
            f"{transform}: wrt names {', '.join(map(repr, missing)) or 'no parameter'}, but "
            f"{_fun_name(f)} has parameters ({', '.join(self.signature.parameters)}). Use "
            "parameter names from the signature, e.g. wrt='x' or wrt='x,y'.")
    else:
      argnums = 0 if argnums is None else argnums
      self.single = not isinstance(argnums, (tuple, list))
      nums = (argnums,) if self.single else tuple(argnums)
      if (not nums and not allow_empty) or not all(
          isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in nums):
        raise errors.ArgnumsError(
            f"{transform}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}.")
      self.argnums, self.names = tuple(int(a) for a in nums), None

  def select(self, args, kwargs):
    """The differentiated values (a tuple) and a function calling f with replacements."""
    if self.var_tree is None:
      return self._select_args(args, kwargs)
    if self.has_args:
      values, call_args = self._select_args(args, kwargs)
    else:
      values, call_args = (), lambda _: self.f(*args, **kwargs)
    var_values = self.var_tree.unflatten([v.value for v in self.var_leaves])

    def call(new_values):
      for var, value in zip(self.var_leaves, self.var_tree.flatten_up_to(new_values[0])):
        var.value = value
      return call_args(new_values[1:])
    return (var_values,) + values, call

  def pack(self, derivatives):
    """The derivatives (one per selected value) as the transformation returns them: a single
    derivative, a tuple of them, the Variables' derivatives, or (var_grads, arg_grads)."""
    if self.var_tree is not None:
      var_grads, rest = derivatives[0], derivatives[1:]
      if not self.has_args:
        return var_grads
      return var_grads, (rest[0] if self.single else rest)
    return derivatives[0] if self.single else derivatives

  def _select_args(self, args, kwargs):
    if self.names is not None:
      return self._select_names(args, kwargs)
    n = len(args)
    positions = []
    for a in self.argnums:
      if not -n <= a < n:
        raise errors.ArgnumsError(
            f"{self.transform}: argnums={a} is out of range: {_fun_name(self.f)} was called with "
            f"{n} positional argument{'s' if n != 1 else ''}. Pass the argument positionally, "
            "or choose it by name with wrt='...'.")
      positions.append(a % n)
    if len(positions) > 1 and len(set(positions)) < len(positions):
      raise errors.ArgnumsError(
          f"{self.transform}: argnums={self.argnums} chooses the same argument more than once "
          f"(of {n}); choose each once (the derivative with respect to it is the same each "
          "time).")

    def call(values):
      new_args = list(args)
      for p, v in zip(positions, values):
        new_args[p] = v
      return self.f(*new_args, **kwargs)
    return tuple(args[p] for p in positions), call

  def _select_names(self, args, kwargs):
    try:
      bound = self.signature.bind(*args, **kwargs)
    except TypeError as e:
      raise TypeError(f"{self.transform}: could not call {_fun_name(self.f)}: {e}") from None
    bound.apply_defaults()
    values = tuple(bound.arguments[n] for n in self.names)

    def call(new_values):
      b = self.signature.bind(*args, **kwargs)
      b.apply_defaults()
      for n, v in zip(self.names, new_values):
        b.arguments[n] = v
      return self.f(*b.args, **b.kwargs)
    return values, call

  def describe(self, i):
    if self.var_tree is not None:
      if i == 0:
        return "grad_vars"
      i -= 1
    return f"argument {self.names[i]!r}" if self.names else f"argument {self.argnums[i]}"

  def suffix(self):
    parts = ["vars"] if self.var_tree is not None else []
    if self.has_args:
      parts += list(self.names) if self.names else list(map(str, self.argnums))
    return "_".join(parts)


def _variables(grad_vars, transform):
  """The Variables of `grad_vars` (a Variable, or a tuple, list or dict of them) and their
  structure; (None, None) without grad_vars."""
  if grad_vars is None:
    return None, None
  module = grad_vars if isinstance(grad_vars, Module) else None
  if module is not None:  # (its trainable Variables, by name)
    grad_vars = grad_vars.train_vars()
    if not grad_vars:
      raise TypeError(f"{transform}: grad_vars is a {type(module).__name__} that holds no "
                      "TrainVar (its trainable Variables); make the arrays to differentiate "
                      "dfdx.TrainVar, or pass the Variables themselves (module.vars() holds "
                      "them all).")
  leaves, tree = tree_flatten(grad_vars, is_leaf=lambda x: isinstance(x, (Variable, Module)))
  modules = [x for x in leaves if isinstance(x, Module)]
  bad = [type(x).__name__ for x in leaves if not isinstance(x, Variable)]
  if modules:
    raise TypeError(f"{transform}: grad_vars holds a Module ({type(modules[0]).__name__}) "
                    "inside a container; pass the Module itself, or its Variables "
                    "(module.train_vars(), a dict name -> TrainVar).")
  if bad or not leaves:
    raise TypeError(f"{transform}: grad_vars must be a Variable, a Module, or a tuple, list or "
                    f"dict of Variables, but it holds {', '.join(bad) or 'none'}. Wrap arrays "
                    "the function reads in dfdx.Variable (or dfdx.TrainVar in a dfdx.Module).")
  paths, seen = tree.leaf_paths(), {}
  for var, path in zip(leaves, paths):
    if id(var) in seen:  # (each copy would get a tracer; all but the last a zero derivative)
      first = seen[id(var)] or "the root"
      raise errors.ArgnumsError(
          f"{transform}: grad_vars holds the same Variable twice (at {first} and {path}); "
          "list each Variable once.")
    seen[id(var)] = path
  return leaves, tree


def _signature(f, transform):
  try:
    return inspect.signature(f)
  except (TypeError, ValueError):
    raise errors.ArgnumsError(
        f"{transform}: cannot read the signature of {_fun_name(f)} to resolve wrt; use "
        "argnums instead.") from None


def _fun_name(f):
  return getattr(f, "__name__", type(f).__name__)


def _wraps(f, name):
  """Name the transformed function after `f`; a derivative that comes out NaN is computed
  again with the zero-absorbing chain rule (`ad.recompute_if_nan`). Python's cyclic garbage
  collector is paused for the call (see ad, "the garbage collector")."""
  def decorate(g):
    def transformed(*args, **kwargs):
      with ad.paused_collector():
        return ad.recompute_if_nan(lambda: g(*args, **kwargs))
    try:
      functools.update_wrapper(transformed, f)
    except (AttributeError, TypeError):
      pass
    transformed.__name__ = transformed.__qualname__ = name
    return transformed
  return decorate


# ---- input and output conversions ----------------------------------------------------------


def _differentiable_leaf(x, transform, where):
  """`x` as an array (or tracer) of a floating dtype, ready to be differentiated. `where()`
  describes the argument, for error messages."""
  if isinstance(x, Tracer):  # (a staged Python scalar becomes an array, as below)
    return strong(x) if dtypes.is_differentiable(x.dtype) else \
        shape_ops.convert_element_type(x, dtypes.default_float)
  if isinstance(x, (bool, np.bool_)) or (isinstance(x, np.ndarray) and x.dtype == bool):
    place = where()
    raise errors.NonDifferentiableInputError(
        f"{transform}: cannot differentiate with respect to {place}, which is boolean. " + (
            "Leave this Variable out of grad_vars." if place.startswith("grad_vars") else
            "Differentiate only real-valued arguments (choose them with argnums or wrt)."))
  if not isinstance(x, (int, float, complex, np.ndarray, np.number)) or \
      np.asarray(x).dtype.kind not in "iufc":
    place = where()
    raise errors.NonDifferentiableInputError(
        f"{transform}: cannot differentiate with respect to {place}, which is "
        f"{type(x).__name__} ({x!r:.60}); expected a number or an array of numbers. " + (
            "Leave this Variable out of grad_vars, or hold numbers in it." if
            place.startswith("grad_vars") else "Choose the differentiated arguments with "
            "argnums or wrt, or make this value static."))
  x = np.asarray(x)
  return x if x.dtype.kind in "fc" else x.astype(dtypes.default_float)


def _flatten_diff_args(values, spec, transform):
  """Leaves of the differentiated values, ready for differentiation, their treedef, and which
  leaves were scalars (their derivatives are returned as NumPy scalars)."""
  leaves, tree = tree_flatten(values)
  scalar_inputs = []
  for i, x in enumerate(leaves):
    if type(x) is np.ndarray and x.dtype.kind == "f":
      scalar_inputs.append(False)
      continue
    scalar_inputs.append(not isinstance(x, (np.ndarray, Tracer)))
    leaves[i] = _differentiable_leaf(x, transform, lambda: _where(spec, tree, i))
  return leaves, tree, scalar_inputs


def _where(spec, tree, leaf_index):
  # A leaf's path looks like "[0]['a']": its first index selects the differentiated argument.
  path = tree.leaf_paths()[leaf_index]
  i = int(path[1:path.index("]")])
  rest = path[path.index("]") + 1:]
  return spec.describe(i) + (f" at {rest}" if rest else "")


def _to_output(x, scalar):
  """A derivative leaf as NumPy: a NumPy scalar for scalar inputs, else a writable array."""
  if type(x) is not np.ndarray:
    if isinstance(x, Tracer):
      return x
    x = np.asarray(x)
  if scalar and x.ndim == 0:
    return x[()]
  return x if x.flags.writeable else x.copy()


_ONES: dict = {}


def _one(dtype):
  """A read-only 0-d one of `dtype` (the cotangent that starts a gradient)."""
  try:
    return _ONES[dtype]
  except KeyError:
    one = _ONES[dtype] = np.ones((), dtype)
    one.flags.writeable = False
    return one


def _zeros_like_leaf(x):
  return np.zeros(np.shape(x), x.dtype)


def _split_aux(out, transform):
  if not isinstance(out, (tuple, list)) or len(out) != 2:
    raise TypeError(f"{transform}: has_aux=True requires the function to return a pair "
                    f"(output, aux), but it returned {core.describe_value(out)}. Return "
                    "`output, aux`, or drop has_aux.")
  return out[0], out[1]


def _traced_call(call, in_tree, has_aux, transform, store):
  """A flat function for the `ad`/`batching` layer: unflattens the inputs, calls f, keeps
  the output structure and auxiliary data (with this trace's tracers stripped) in `store`."""
  def flat_fun(*leaves):
    out = call(tree_unflatten(in_tree, leaves))
    if has_aux:
      out, aux = _split_aux(out, transform)
      aux_leaves, aux_tree = tree_flatten(aux)
      stripped = ad.strip_tracers(core.current_trace(), aux_leaves)
      store["aux"] = tree_unflatten(aux_tree, [
          _numpy_value(x) if x is not a else x for x, a in zip(stripped, aux_leaves)])
    out_leaves, store["out_tree"] = tree_flatten(out)
    return [_as_value(o, transform) for o in out_leaves]
  return flat_fun


def _as_value(x, transform):
  if isinstance(x, Tracer):
    return strong(x)  # (one standing for a Python number as the array np.asarray makes)
  if isinstance(x, (np.ndarray, np.generic)):
    return x  # a 0-d NumPy scalar or array
  if isinstance(x, (int, float, bool, complex)):
    return np.asarray(x)
  raise TypeError(f"{transform}: the function returned a {type(x).__name__} ({x!r:.60}) "
                  "where an array was expected.")


def _pack(derivative, value, aux, return_value, has_aux):
  """BrainPy's conventions: derivative, (derivative, value), (derivative, aux) or
  (derivative, value, aux)."""
  if return_value and has_aux:
    return derivative, value, aux
  if return_value:
    return derivative, value
  if has_aux:
    return derivative, aux
  return derivative


# ---- reverse mode: grad, value_and_grad, vector_grad, vjp ---------------------------------


def _linearize_args(f, spec, args, kwargs, has_aux, transform):
  values, call = spec.select(args, kwargs)
  leaves, in_tree, scalar_inputs = _flatten_diff_args(values, spec, transform)
  store = {}
  out_leaves, lin = ad.linearize_flat(_traced_call(call, in_tree, has_aux, transform, store),
                                      leaves)
  return leaves, in_tree, scalar_inputs, [_numpy_value(o) for o in out_leaves], lin, store


def _numpy_value(x):
  """An output as the conventions give it: a 0-d array (an input passed through, a Python
  number returned, or one a jitted function gave where no tangent reached it) as a NumPy
  scalar, as NumPy's own operations give one."""
  if type(x) is np.ndarray:
    return x[()] if x.ndim == 0 else x
  return np.asarray(x)[()] if is_weak(x) else x


def _pull_back(lin, cts, leaves, in_tree, scalar_inputs, spec, last=False):
  with ad.derivative_pass():
    in_cts = lin.transpose(cts, last)
  grads = [_to_output(_zeros_like_leaf(x) if ct is None else ct, s)
           for x, ct, s in zip(leaves, in_cts, scalar_inputs)]
  return spec.pack(tree_unflatten(in_tree, grads))


def _non_scalar_error(f, transform, out_leaves, out_tree):
  return errors.NonScalarOutputError(
      f"{transform}: {_fun_name(f)} must return a scalar, but it returned "
      f"{_describe_output(out_leaves, out_tree)}. Use vector_grad for the gradient of its sum, "
      "jacobian (or jacrev) for the full derivative, or reduce the output (e.g. with .sum()).")


def _grad_of_one_array(f, argnum, transform, args, kwargs):
  """The common case, with no pytree plumbing: the gradient with respect to one float array
  argument of a function returning one scalar. Returns (derivative, value)."""
  x = args[argnum]

  def flat_fun(t):
    new_args = list(args)
    new_args[argnum] = t
    out = f(*new_args, **kwargs)
    if not isinstance(out, (Tracer, np.ndarray, np.generic)):
      out_leaves, out_tree = tree_flatten(out)
      if out_tree.kind is not None:
        raise _non_scalar_error(f, transform, [_as_value(o, transform) for o in out_leaves],
                                out_tree)
      out = _as_value(out, transform)
    return [out]
  (value,), lin = ad.linearize_flat(flat_fun, [x])
  value = _numpy_value(value)
  if value.shape != ():
    raise _non_scalar_error(f, transform, [value], tree_structure(value))
  value = _scalar_output(value, f, transform, False)
  with ad.derivative_pass():
    (ct,) = lin.transpose([_one(value.dtype)], last=True)
  return _to_output(np.zeros(x.shape, x.dtype) if ct is None else ct, False), value


def _scalar_output(value, f, transform, holomorphic):
  """The value of a function `grad` differentiates, checked: real, or complex with
  `holomorphic` (whose gradient is then the complex derivative f'(z))."""
  kind = value.dtype.kind
  if kind == "c" and not holomorphic:
    raise TypeError(
        f"{transform}: {_fun_name(f)} returned a complex value ({value.dtype}); a gradient "
        "needs a real-valued function. Differentiate a real loss (dnp.abs(z) ** 2, "
        "dnp.real(z)), or pass holomorphic=True for the complex derivative of a holomorphic "
        "function.")
  if holomorphic and kind != "c":
    raise TypeError(f"{transform}: holomorphic=True needs a complex output, but "
                    f"{_fun_name(f)} returned {value.dtype}.")
  return value if kind in "fc" else np.asarray(value, dtypes.default_float)


def _conj_tree(tree):
  return tree_map(lambda g: g.conjugate() if np.iscomplexobj(g) else g, tree)


def _grad_with_value(f, spec, has_aux, transform, args, kwargs, holomorphic=False):
  if spec.single and not has_aux and spec.argnums is not None and spec.var_tree is None \
      and not holomorphic:
    argnum = spec.argnums[0]
    if -len(args) <= argnum < len(args):
      x = args[argnum]
      if type(x) is np.ndarray and x.dtype.kind == "f":
        return (*_grad_of_one_array(f, argnum, transform, args, kwargs), None)
  leaves, in_tree, scalar_inputs, out_leaves, lin, store = _linearize_args(
      f, spec, args, kwargs, has_aux, transform)
  out_tree = store["out_tree"]
  if out_tree.kind is not None or core.shape_of(out_leaves[0]) != ():
    raise _non_scalar_error(f, transform, out_leaves, out_tree)
  value = _scalar_output(out_leaves[0], f, transform, holomorphic)
  if holomorphic:
    _check_holomorphic_inputs(transform, leaves)
  derivative = _pull_back(lin, [_one(value.dtype)], leaves, in_tree, scalar_inputs, spec,
                          last=True)
  if holomorphic:  # the pullback of 1 is conj(f'(z)) (the adjoint): conjugate it back
    derivative = _conj_tree(derivative)
  return derivative, value, store.get("aux")


def _describe_output(out_leaves, out_tree):
  if out_tree.kind is None:
    return core.get_aval(out_leaves[0]).str_short()
  if not out_leaves:
    return f"{tree_unflatten(out_tree, [])!r:.80} (no arrays)"
  return f"a pytree {out_tree} of {', '.join(core.get_aval(o).str_short() for o in out_leaves)}"


def grad(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
         grad_vars=None, holomorphic=False):
  """Return a function computing the gradient of scalar-valued `f`.

  Args:
    f: function of arrays or pytrees of arrays returning a scalar (with `has_aux`, a pair
      `(scalar, aux)`).
    argnums: int or tuple of ints; the positional arguments to differentiate.
    wrt: parameter names instead of argnums (`"x"`, `"x,y"` or `("x", "y")`); the gradient
      function then accepts those arguments positionally or by keyword.
    has_aux: `f` returns `(output, aux)`; aux is returned, not differentiated.
    return_value: also return `f`'s value.
    grad_vars: a `dfdx.Variable`, or a tuple, list or dict of them, or a `dfdx.Module` (its
      `train_vars()`), that `f` reads: their values are differentiated too. Without an
      explicit argnums, only they are.
    holomorphic: `f` is a holomorphic function returning a complex scalar; the result is
      its complex derivative f'(z). Without it, `f` must return a real scalar; for complex
      arguments the gradient is then df/dx + i df/dy (z = x + iy), the direction of steepest
      ascent (PyTorch's convention; JAX returns its conjugate).

  Returns:
    A function returning the gradient (same structure as the differentiated arguments; a
    tuple of them for a tuple argnums; the structure of grad_vars for Variables, and
    `(var_grads, arg_grads)` with both), or `(gradient, value)`, `(gradient, aux)`,
    `(gradient, value, aux)` as `return_value` and `has_aux` ask.

  Raises:
    NonScalarOutputError (a TypeError): if `f` returns a non-scalar.

  >>> import dfdx.numpy as dnp
  >>> float(grad(dnp.sin)(0.0))
  1.0
  """
  spec = _DiffArgs(f, argnums, wrt, "grad", grad_vars=grad_vars)

  @_wraps(f, f"grad_of_{_fun_name(f)}_wrt_{spec.suffix()}")
  def grad_f(*args, **kwargs):
    derivative, value, aux = _grad_with_value(f, spec, has_aux, "grad", args, kwargs,
                                              holomorphic)
    return _pack(derivative, value, aux, return_value, has_aux)
  return grad_f


def value_and_grad(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, grad_vars=None,
                   holomorphic=False):
  """Return a function computing `f`'s value and gradient in one pass.

  Returns `(value, gradient)`, or `((value, aux), gradient)` with `has_aux=True` (JAX's
  convention). Arguments are as for `grad`.

  >>> import dfdx.numpy as dnp
  >>> value_and_grad(lambda x: x ** 2)(3.0)
  (np.float64(9.0), np.float64(6.0))
  """
  spec = _DiffArgs(f, argnums, wrt, "value_and_grad", grad_vars=grad_vars)

  @_wraps(f, f"value_and_grad_of_{_fun_name(f)}_wrt_{spec.suffix()}")
  def value_and_grad_f(*args, **kwargs):
    derivative, value, aux = _grad_with_value(f, spec, has_aux, "value_and_grad", args, kwargs,
                                              holomorphic)
    return ((value, aux) if has_aux else value), derivative
  return value_and_grad_f


def vector_grad(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
                grad_vars=None):
  """Return a function computing the gradient of `sum(f)`: for functions with diagonal
  Jacobians (elementwise ones), the elementwise derivative.

  Outputs may be arrays or pytrees of arrays; every leaf is summed. Arguments and return
  conventions are as for `grad`.

  >>> import dfdx.numpy as dnp
  >>> vector_grad(dnp.square)(np.array([1.0, 2.0]))
  array([2., 4.])
  """
  spec = _DiffArgs(f, argnums, wrt, "vector_grad", grad_vars=grad_vars)

  @_wraps(f, f"vector_grad_of_{_fun_name(f)}_wrt_{spec.suffix()}")
  def vector_grad_f(*args, **kwargs):
    leaves, in_tree, scalar_inputs, out_leaves, lin, store = _linearize_args(
        f, spec, args, kwargs, has_aux, "vector_grad")
    complex_out = [str(o.dtype) for o in out_leaves if np.dtype(o.dtype).kind == "c"]
    if complex_out:
      raise TypeError(
          f"vector_grad: {_fun_name(f)} returned a complex value ({complex_out[0]}); the "
          "gradient of its sum needs a real-valued function. Differentiate a real function "
          "(dnp.real(z), dnp.abs(z) ** 2), or use jacfwd/jacrev with holomorphic=True for "
          "the complex derivative of a holomorphic function.")
    cts = [np.ones(np.shape(o), dtypes.differentiable_dtype(o.dtype)) for o in out_leaves]
    derivative = _pull_back(lin, cts, leaves, in_tree, scalar_inputs, spec, last=True)
    value = tree_unflatten(store["out_tree"], out_leaves)
    return _pack(derivative, value, store.get("aux"), return_value, has_aux)
  return vector_grad_f


def vjp(f, *primals, has_aux=False):
  """Evaluate `f(*primals)` and return `(output, vjp_fn)` (with `has_aux`, `(output, vjp_fn,
  aux)`); `vjp_fn(cotangent)` returns a tuple with one cotangent per primal.

  >>> out, vjp_fn = vjp(lambda x: x * 3.0, 2.0)
  >>> vjp_fn(1.0)
  (np.float64(3.0),)
  """
  spec = _DiffArgs(f, tuple(range(len(primals))), None, "vjp", allow_empty=True)
  leaves, in_tree, scalar_inputs, out_leaves, lin, store = _linearize_args(
      f, spec, primals, {}, has_aux, "vjp")
  out_tree = store["out_tree"]

  def vjp_fn(cotangent):
    cts = _matching_leaves(out_tree, cotangent, out_leaves, "vjp", "cotangent")
    return ad.recompute_if_nan(
        lambda: _pull_back(lin, cts, leaves, in_tree, scalar_inputs, spec), always=True,
        again=lambda: vjp(f, *primals, has_aux=has_aux)[1](cotangent))

  out = tree_unflatten(out_tree, out_leaves)
  return (out, vjp_fn, store.get("aux")) if has_aux else (out, vjp_fn)


def _matching_leaves(tree: PyTreeDef, values, like_leaves, transform, what):
  """Leaves of `values` (a pytree with structure `tree`), checked against `like_leaves`."""
  leaves = tree.flatten_up_to(values, path="")
  out = []
  for path, v, like in zip(tree.leaf_paths(), leaves, like_leaves):
    if not isinstance(v, Tracer):
      v = np.asarray(v)
    dtype = dtypes.differentiable_dtype(like.dtype)
    kind = np.dtype(v.dtype).kind
    if kind not in "biufc" or (kind == "c" and dtype.kind != "c"):
      raise TypeError(
          f"{transform}: the {what} at {path} has dtype {v.dtype}, but the value it pairs with "
          f"is {like.dtype}: a {what} must be a real number or array for a real value "
          f"(complex only for a complex one). Pass a {what} of dtype {dtype}.")
    like_shape = np.shape(like)
    if np.shape(v) != like_shape:
      raise ValueError(f"{transform}: the {what} at {path} has shape {np.shape(v)}, but the "
                       f"value it pairs with has shape {like_shape}.")
    out.append(v if v.dtype == dtype else shape_ops.convert_element_type(v, dtype))
  return out


# ---- forward mode: jvp, linearize ---------------------------------------------------------


def _check_primals(primals, transform):
  if not isinstance(primals, (tuple, list)):
    raise TypeError(f"{transform}: primals must be a tuple or list of arguments, got "
                    f"{type(primals).__name__}; write {transform}(f, (x,), ...) for one argument.")
  return tuple(primals)


def jvp(f, primals, tangents, has_aux=False):
  """Forward mode: evaluate `f(*primals)` and its directional derivative along `tangents`.

  Returns `(output, tangent_out)`, or `(output, tangent_out, aux)` with `has_aux`.

  >>> import dfdx.numpy as dnp
  >>> jvp(dnp.sin, (0.0,), (2.0,))
  (np.float64(0.0), np.float64(2.0))
  """
  return ad.recompute_if_nan(lambda: _jvp(f, primals, tangents, has_aux))


def _jvp(f, primals, tangents, has_aux, transform="jvp"):
  primals = _check_primals(primals, transform)
  tangents = _check_primals(tangents, transform)
  spec = _DiffArgs(f, tuple(range(len(primals))), None, transform, allow_empty=True)
  values, call = spec.select(primals, {})
  leaves, in_tree, scalar_inputs = _flatten_diff_args(values, spec, transform)
  if len(tangents) != len(primals):
    raise ValueError(f"{transform}: got {len(primals)} primals but {len(tangents)} tangents.")
  tangent_leaves = _matching_leaves(in_tree, tuple(tangents), leaves, transform, "tangent")
  store = {}
  out_leaves, out_tangents = ad.jvp_flat(_traced_call(call, in_tree, has_aux, transform, store),
                                         leaves, tangent_leaves)
  out_tree = store["out_tree"]
  out = tree_unflatten(out_tree, [_numpy_value(o) for o in out_leaves])
  tangent_out = tree_unflatten(out_tree, [
      _tangent_output(o, t) for o, t in zip(out_leaves, out_tangents)])
  return (out, tangent_out, store["aux"]) if has_aux else (out, tangent_out)


def _tangent_output(primal, tangent):
  if tangent is None:
    return _numpy_value(np.zeros(np.shape(primal), dtypes.differentiable_dtype(primal.dtype)))
  if isinstance(tangent, Tracer):
    return tangent
  return _numpy_value(tangent) if np.ndim(tangent) == 0 else _to_output(tangent, False)


def jet(f, primals, series):
  """Taylor mode: `f(*primals)` and its first K derivatives along a path through `primals`.

  Each primal moves along x_i(t) = primals[i] + sum_k series[i][k-1] t^k / k! (series[i]
  lists the path's derivatives d^k x_i / dt^k at t = 0, each shaped like primals[i]), and
  the result is `(f(*primals), series_out)`, with series_out[k-1] = d^k f(x(t)) / dt^k at 0
  (for pytree outputs, each leaf replaced by the list of its K derivatives). With series =
  ([v, 0, ..., 0],), series_out[k-1] is the k-th directional derivative of f along v.

  The series are propagated primitive by primitive (Cauchy products, and each other
  primitive's JVP rule run on series one order lower), so K derivatives cost a polynomial
  in K, where K nested jvps cost 2^K evaluations. It composes with every transformation.

  >>> import dfdx.numpy as dnp
  >>> value, series = jet(dnp.exp, (0.0,), ([1.0, 0.0, 0.0],))
  >>> float(value), [float(s) for s in series]
  (1.0, [1.0, 1.0, 1.0])
  """
  return ad.recompute_if_nan(lambda: _jet(f, primals, series), always=True)


def _jet(f, primals, series):
  primals = _check_primals(primals, "jet")
  if not isinstance(series, (tuple, list)) or len(series) != len(primals):
    raise ValueError(f"jet: series must be a tuple with one sequence of derivatives per "
                     f"primal ({len(primals)}), got {type(series).__name__}"
                     f"{'' if not isinstance(series, (tuple, list)) else f' of {len(series)}'}.")
  orders = {len(s) if isinstance(s, (tuple, list)) else None for s in series}
  if None in orders or len(orders) > 1:
    raise ValueError("jet: each entry of series must be a list of the same number K of "
                     f"derivatives of its primal's path; got lengths "
                     f"{[len(s) if isinstance(s, (tuple, list)) else type(s).__name__ for s in series]}.")
  order = orders.pop() if orders else 0
  for i, s in enumerate(series):
    for k, term in enumerate(s):
      if any(leaf is None for leaf in tree_flatten(term, is_leaf=lambda x: x is None)[0]):
        raise ValueError(f"jet: series term {k + 1} of primal {i} is (or holds) None; pass "
                         "zeros (numpy.zeros_like of the primal) for a term that is zero.")
  spec = _DiffArgs(f, tuple(range(len(primals))), None, "jet", allow_empty=True)
  values, call = spec.select(primals, {})
  leaves, in_tree, _ = _flatten_diff_args(values, spec, "jet")
  terms = [_matching_leaves(in_tree, tuple(s[k] for s in series), leaves, "jet",
                            f"series term {k + 1}") for k in range(order)]
  per_leaf = [[terms[k][i] for k in range(order)] for i in range(len(leaves))]
  store = {}
  from dfdx._src.jet import jet_flat
  out_leaves, out_series = jet_flat(_traced_call(call, in_tree, False, "jet", store), leaves,
                                    per_leaf)
  out_tree = store["out_tree"]
  out = tree_unflatten(out_tree, [_numpy_value(o) for o in out_leaves])
  return out, tree_unflatten(out_tree, [[_tangent_output(o, t) for t in ts]
                                        for o, ts in zip(out_leaves, out_series)])


def linearize(f, *primals):
  """Evaluate `f(*primals)` and return `(output, jvp_fn)`, where `jvp_fn(*tangents)` applies
  the derivative at `primals` without evaluating `f` again.

  >>> import dfdx.numpy as dnp
  >>> out, jvp_fn = linearize(dnp.exp, 0.0)
  >>> jvp_fn(3.0)
  np.float64(3.0)
  """
  spec = _DiffArgs(f, tuple(range(len(primals))), None, "linearize", allow_empty=True)
  leaves, in_tree, _, out_leaves, lin, store = _linearize_args(f, spec, primals, {}, False,
                                                               "linearize")
  out_tree = store["out_tree"]

  def jvp_fn(*tangents):
    if len(tangents) != len(primals):
      raise ValueError(f"linearize: jvp_fn takes {len(primals)} tangents (one per primal), "
                       f"got {len(tangents)}.")
    tangent_leaves = _matching_leaves(in_tree, tangents, leaves, "linearize", "tangent")
    with ad.derivative_pass():
      outs = ad.recompute_if_nan(lambda: lin.forward(tangent_leaves), always=True)
    return tree_unflatten(out_tree, [_tangent_output(o, t) for o, t in zip(out_leaves, outs)])

  return tree_unflatten(out_tree, out_leaves), jvp_fn


# ---- Jacobians and Hessians ---------------------------------------------------------------


def _basis(leaves, dtype_of):
  """One block per leaf of the identity matrix of size N = total size: block j has shape
  (N, *shape_j), so that vmap over the first axis feeds one basis vector at a time."""
  sizes = [int(np.prod(np.shape(x), dtype=np.int64)) for x in leaves]
  n = sum(sizes)
  eye = np.eye(n, dtype=np.result_type(*[dtype_of(x) for x in leaves]) if leaves else float)
  blocks, start = [], 0
  for x, size in zip(leaves, sizes):
    blocks.append(eye[:, start:start + size].reshape((n,) + np.shape(x)).astype(dtype_of(x)))
    start += size
  return blocks, sizes, n


def _row_blocks(batched, sizes):
  """Split the first axis of `batched` (a basis-indexed stack) into pieces of `sizes`."""
  out, start = [], 0
  for size in sizes:
    out.append(shape_ops.slice_in_dim(batched, start, start + size, 0))
    start += size
  return out


def _leading_to_trailing(block, lead_shape, trail_shape):
  """(prod(lead), *trail) -> (*trail, *lead)."""
  block = shape_ops.reshape(block, tuple(lead_shape) + tuple(trail_shape))
  k = len(lead_shape)
  perm = tuple(range(k, k + len(trail_shape))) + tuple(range(k))
  return shape_ops.transpose(block, perm)


def _assemble_jacobian(blocks, out_tree, out_leaves, in_tree, leaves, scalar_inputs, spec):
  """Nest blocks[k][j] (output leaf k, input leaf j) as an output tree of input trees."""
  per_output = []
  for k, o in enumerate(out_leaves):
    scalar_out = np.ndim(o) == 0
    inner = tree_unflatten(in_tree, [_to_output(b, s and scalar_out)
                                     for b, s in zip(blocks[k], scalar_inputs)])
    per_output.append(spec.pack(inner))
  return tree_unflatten(out_tree, per_output)


def _jacobian_by_transpose(lin, out_leaves, leaves, chunk_size=None):
  """Reverse mode: pull back every output basis vector at once (vmap over the transpose), or
  `chunk_size` of them at a time."""
  cts, out_sizes, m = _basis(out_leaves, lambda o: dtypes.differentiable_dtype(o.dtype))
  with ad.derivative_pass():
    in_cts, dims = batching.vmap_chunked(lambda *c: lin.transpose(list(c)), m, cts,
                                         [0] * len(cts), chunk_size)
  blocks = [[None] * len(leaves) for _ in out_leaves]
  for j, (x, ct, d) in enumerate(zip(leaves, in_cts, dims)):
    full = _batched_or_broadcast(ct, d, m, x)
    for k, (o, rows) in enumerate(zip(out_leaves, _row_blocks(full, out_sizes))):
      blocks[k][j] = shape_ops.reshape(rows, np.shape(o) + np.shape(x))
  return blocks


def _jacobian_by_pushforward(lin, leaves, out_leaves, chunk_size=None):
  """Forward mode: push every input basis vector at once (vmap over the tape's forward
  application), or `chunk_size` of them at a time."""
  tangents, in_sizes, n = _basis(leaves, lambda x: x.dtype)
  with ad.derivative_pass():
    out_tangents, dims = batching.vmap_chunked(lambda *t: lin.forward(list(t)), n, tangents,
                                               [0] * len(tangents), chunk_size)
  blocks = [[None] * len(leaves) for _ in out_leaves]
  for k, (o, t, d) in enumerate(zip(out_leaves, out_tangents, dims)):
    full = _batched_or_broadcast(t, d, n, o)
    for j, (x, rows) in enumerate(zip(leaves, _row_blocks(full, in_sizes))):
      block = _leading_to_trailing(rows, np.shape(x), np.shape(o))
      # real blocks take the input's dtype, as reverse mode's rows (and grad) do, so that a
      # Jacobian's dtype does not depend on the mode
      dtype = dtypes.differentiable_dtype(x.dtype)
      block_dtype = core.get_aval(block).dtype
      if dtype.kind == "f" and block_dtype.kind == "f" and block_dtype != dtype:
        block = shape_ops.convert_element_type(block, dtype)
      blocks[k][j] = block
  return blocks


def _batched_or_broadcast(x, bdim, size, like):
  dtype = dtypes.differentiable_dtype(like.dtype)
  if x is None:
    return np.zeros((size,) + np.shape(like), dtype)
  return batching.bdim_at_front(x, bdim, size)


def jacfwd(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
           grad_vars=None, holomorphic=False, sparse=False, chunk_size=None):
  """Jacobian of `f` by forward mode: best when inputs are smaller than outputs. `f` is
  linearized once (its tape records the forward pass's residuals) and the input basis is
  pushed through the tape at once (vmap of its forward application, compiled once for a tape
  seen again: see dfdx/_src/reverse_cache.py). `vmap` of `jvp` computes the same values
  without holding the residuals, by the interpreter on every call.

  Each block has shape `out.shape + in.shape`; pytrees nest as output tree of input trees.
  Arguments and return conventions are as for `grad`. Complex outputs of real inputs are
  fine; complex inputs need `holomorphic=True` (the blocks are then complex derivatives).
  `sparse=True` gives the Jacobian as a scipy.sparse matrix (see `jacobian`), computed by
  forward mode. `chunk_size=k` pushes k basis vectors at a time, not all at once: the
  intermediates held are k times one tangent's, not N times (less memory, more calls).

  >>> import dfdx.numpy as dnp
  >>> jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
  array([[2., 0.],
         [0., 4.]])
  """
  return _jacobian(f, argnums, wrt, has_aux, return_value, "fwd", "jacfwd", grad_vars,
                   holomorphic, sparse, chunk_size=chunk_size)


def jacrev(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
           grad_vars=None, holomorphic=False, sparse=False, chunk_size=None):
  """Jacobian of `f` by reverse mode (one linearization, then vmap of its transpose over the
  output basis): best when outputs are smaller than inputs.

  Shapes and conventions are as for `jacfwd`. Real outputs of complex inputs give gradient
  rows as `grad` does; complex outputs need `holomorphic=True`. `sparse=True` gives the
  Jacobian as a scipy.sparse matrix (see `jacobian`), computed by reverse mode.
  `chunk_size=k` pulls k output basis vectors back at a time (see `jacfwd`).

  >>> import dfdx.numpy as dnp
  >>> jacrev(lambda x: dnp.sum(x ** 2))(np.array([1.0, 2.0]))
  array([2., 4.])
  """
  return _jacobian(f, argnums, wrt, has_aux, return_value, "rev", "jacrev", grad_vars,
                   holomorphic, sparse, chunk_size=chunk_size)


def jacobian(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
             mode="auto", grad_vars=None, holomorphic=False, sparse=False, chunk_size=None):
  """Jacobian of `f`. `mode="auto"` linearizes once and then pushes the input basis forward
  when there are no more inputs than outputs, else pulls the output basis back (and pulls
  back the few rows of a Python loop's tape too long to compile whole, from the second call
  on, when they run rolled: see dfdx/_src/rolled_loop.py); "fwd" and "rev" force a mode.
  Shapes and conventions are as for `jacfwd`; `chunk_size=k` computes k rows or columns
  at a time, not all at once (less memory).

  `sparse=True` returns a `scipy.sparse.csr_array` of shape (M, N): a row per output entry
  and a column per differentiated input entry (each pytree's leaves raveled and
  concatenated in order). Its pattern is read from the derivative's program at the point;
  columns (forward) or rows (reverse) that share no entry are computed together, in one pass
  per color of a greedy coloring, and "auto" takes the mode with fewer colors: a banded or
  block-sparse Jacobian costs a few passes, not N. `sparse=P` (a scipy.sparse matrix or a 0/1
  array of that shape, e.g. an earlier result) skips finding the pattern and trusts P: it
  must hold every nonzero (one it misses is not only dropped, it is added into the entries
  that share its pass). Needs SciPy; see dfdx/_src/sparsity.py.

  >>> lap = lambda u: u[:-2] - 2 * u[1:-1] + u[2:] + u[1:-1] ** 3
  >>> jacobian(lap, sparse=True)(np.ones(5)).toarray()
  array([[1., 1., 1., 0., 0.],
         [0., 1., 1., 1., 0.],
         [0., 0., 1., 1., 1.]])

  >>> import dfdx.numpy as dnp
  >>> jacobian(lambda x: dnp.asarray([x[0] * x[1], x[1]]))(np.array([2.0, 3.0]))
  array([[3., 2.],
         [0., 1.]])
  """
  if mode not in ("auto", "fwd", "rev"):
    raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}.")
  if mode == "fwd":
    return jacfwd(f, argnums, wrt=wrt, has_aux=has_aux, return_value=return_value,
                  grad_vars=grad_vars, holomorphic=holomorphic, sparse=sparse,
                  chunk_size=chunk_size)
  return _jacobian(f, argnums, wrt, has_aux, return_value, mode, "jacobian", grad_vars,
                   holomorphic, sparse, chunk_size=chunk_size)


def _check_holomorphic_inputs(transform, leaves):
  """holomorphic=True is the complex derivative with respect to complex arguments: a real
  one would get the real part of a complex number (grad's pullback), so it is refused."""
  real = sorted({str(np.dtype(x.dtype)) for x in leaves if np.dtype(x.dtype).kind != "c"})
  if real:
    raise TypeError(
        f"{transform}: holomorphic=True differentiates with respect to complex arguments, "
        f"but a differentiated argument has dtype {', '.join(real)}. Pass it as a complex "
        "array (x + 0j, or x.astype(complex)), or drop holomorphic=True for a real argument.")


def _check_complex(transform, f, leaves, out_leaves, mode, holomorphic):
  """Which modes give a Jacobian with complex values around: forward mode needs real inputs
  (or a holomorphic f), reverse mode real outputs (or a holomorphic f)."""
  complex_in = any(np.dtype(x.dtype).kind == "c" for x in leaves)
  complex_out = any(np.dtype(o.dtype).kind == "c" for o in out_leaves)
  if holomorphic or (mode == "fwd" and not complex_in) or (mode == "rev" and not complex_out):
    return
  what = "its arguments are complex" if mode == "fwd" else "its outputs are complex"
  raise TypeError(
      f"{transform}: the Jacobian of {_fun_name(f)} is not defined by {mode} mode, because "
      f"{what} (a non-holomorphic function of complex numbers is not complex-linear). Pass "
      "holomorphic=True for a holomorphic function, or split real and imaginary parts with "
      "dnp.real and dnp.imag.")


def _jacobian(f, argnums, wrt, has_aux, return_value, mode, transform, grad_vars=None,
              holomorphic=False, sparse=False, symmetric=False, chunk_size=None):
  spec = _DiffArgs(f, argnums, wrt, transform, grad_vars=grad_vars)
  chunk_size = batching.check_chunk_size(chunk_size, transform)
  sparse, pattern = _sparse_argument(sparse, transform)
  colorings = {}  # (sparse=True: the colorings of the patterns seen, see sparsity.py)

  @_wraps(f, f"{transform}_of_{_fun_name(f)}_wrt_{spec.suffix()}")
  def jac_f(*args, **kwargs):
    leaves, in_tree, scalar_inputs, out_leaves, lin, store = _linearize_args(
        f, spec, args, kwargs, has_aux, transform)
    if sparse:
      jac = _sparse_jacobian(lin, leaves, out_leaves, mode, pattern, holomorphic, transform,
                             colorings, symmetric, chunk_size)
      value = tree_unflatten(store["out_tree"], out_leaves)
      return _pack(jac, value, store.get("aux"), return_value, has_aux)
    n_in = sum(int(np.prod(np.shape(x), dtype=np.int64)) for x in leaves)
    n_out = sum(int(np.prod(np.shape(o), dtype=np.int64)) for o in out_leaves)
    use = mode
    if mode == "auto":  # by size, unless only one mode is defined for complex values
      complex_in = any(np.dtype(x.dtype).kind == "c" for x in leaves)
      complex_out = any(np.dtype(o.dtype).kind == "c" for o in out_leaves)
      if complex_in != complex_out:
        use = "rev" if complex_in else "fwd"
      else:
        use = "fwd" if n_in <= n_out else "rev"
        if use == "fwd" and ad.rows_one_by_one(lin, n_out):
          use = "rev"  # (a long tape whose rows run rolled: see ad.rows_one_by_one)
    _check_complex(transform, f, leaves, out_leaves, use, holomorphic)
    if holomorphic:
      _check_holomorphic_inputs(transform, leaves)
    if use == "fwd":
      blocks = _jacobian_by_pushforward(lin, leaves, out_leaves, chunk_size)
    else:
      blocks = _jacobian_by_transpose(lin, out_leaves, leaves, chunk_size)
    jac = _assemble_jacobian(blocks, store["out_tree"], out_leaves, in_tree, leaves,
                             scalar_inputs, spec)
    if use == "rev" and holomorphic:  # pullbacks give conj(f'(z)): conjugate them back
      jac = _conj_tree(jac)
    value = tree_unflatten(store["out_tree"], out_leaves)
    return _pack(jac, value, store.get("aux"), return_value, has_aux)
  return jac_f


def _sparse_argument(sparse, transform):
  """`sparse=` as (whether sparse, the pattern to trust or None): False, True (the pattern
  found at every call), or a pattern (a scipy.sparse matrix or a 2-D 0/1 array)."""
  if isinstance(sparse, (bool, np.bool_)):
    return bool(sparse), None
  if sparse is None or isinstance(sparse, (int, float, complex, str, np.generic)):
    raise TypeError(f"{transform}: sparse= takes True, False or a pattern (a scipy.sparse "
                    f"matrix or a 2-D 0/1 array), got {sparse!r}.")
  return True, sparse


def _sparse_jacobian(lin, leaves, out_leaves, mode, pattern, holomorphic, transform, cache,
                     symmetric, chunk_size=None):
  sparsity.check_untraced(list(leaves) + list(out_leaves), transform)
  if holomorphic or any(np.dtype(x.dtype).kind == "c" for x in list(leaves) + out_leaves):
    raise TypeError(f"{transform}(sparse=True): complex inputs or outputs are not supported; "
                    "split real and imaginary parts with dnp.real and dnp.imag.")
  return sparsity.sparse_jacobian(lin, leaves, out_leaves, mode, pattern, transform, cache,
                                  symmetric, chunk_size)


def hessian(f, argnums=DEFAULT_ARGNUMS, *, wrt=None, has_aux=False, return_value=False,
            grad_vars=None, sparse=False, chunk_size=None):
  """Hessian of scalar-valued `f`: `jacfwd(jacrev(f))` (forward over reverse).

  Blocks have shape `in.shape + in.shape`. Conventions are as for `grad`; `return_value`
  returns `f`'s value. `sparse=True` (or a pattern) gives a scipy.sparse matrix, as
  `jacobian` does: the Jacobian of the gradient, in as few passes as its coloring needs
  (a star coloring where symmetry saves passes: an arrowhead Hessian in 2). `chunk_size=k`
  pushes k basis vectors through the gradient at a time (less memory).

  >>> import dfdx.numpy as dnp
  >>> hessian(lambda x: dnp.sum(x ** 3))(np.array([1.0, 2.0]))
  array([[ 6.,  0.],
         [ 0., 12.]])
  """
  chunk_size = batching.check_chunk_size(chunk_size, "hessian")
  inner = _jacobian(f, argnums, wrt, has_aux, True, "rev", "hessian", grad_vars)

  @_wraps(f, _fun_name(f))
  def gradient_with_value(*args, **kwargs):
    out = inner(*args, **kwargs)
    return out[0], out[1:]
  dense = not _sparse_argument(sparse, "hessian")[0]
  outer = _jacobian(gradient_with_value, argnums, wrt, True, False, "fwd" if dense else "auto",
                    "hessian", grad_vars, False, sparse, symmetric=True, chunk_size=chunk_size)

  @_wraps(f, f"hessian_of_{_fun_name(f)}")
  def hessian_f(*args, **kwargs):
    hess, rest = outer(*args, **kwargs)
    value, aux = (rest[0], rest[1]) if has_aux else (rest[0], None)
    return _pack(hess, value, aux, return_value, has_aux)
  return hessian_f


def hvp(f, primals, tangents):
  """Hessian-vector product of scalar-valued `f` at `primals` along `tangents` (forward over
  reverse, without forming the Hessian). Returns one result per primal (a single value for
  one primal).

  >>> import dfdx.numpy as dnp
  >>> hvp(lambda x: dnp.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
  array([6., 0.])
  """
  primals = _check_primals(primals, "hvp")
  argnums = 0 if len(primals) == 1 else tuple(range(len(primals)))
  spec = _DiffArgs(f, argnums, None, "hvp")

  @_wraps(f, _fun_name(f))
  def gradient(*args):
    return _grad_with_value(f, spec, False, "hvp", args, {})[0]
  return ad.recompute_if_nan(lambda: _jvp(gradient, primals, tuple(tangents), False, "hvp"))[1]


# ---- stop_gradient ------------------------------------------------------------------------


def stop_gradient(x):
  """`x` (an array or a pytree of arrays), treated as a constant by every differentiation:
  its derivative is zero. Under vmap and jit it is the identity.

  >>> import dfdx.numpy as dnp
  >>> float(grad(lambda x: x * stop_gradient(x))(3.0))   # d/dx [x * c] with c = x = 3
  3.0
  """
  if isinstance(x, Tracer):  # a single traced array (a leaf): the common case
    return elementwise.stop_gradient(x)
  return tree_map(lambda leaf: elementwise.stop_gradient(leaf) if isinstance(leaf, Tracer)
                  else leaf, x)


# ---- vmap ---------------------------------------------------------------------------------


def _broadcast_prefix(prefix, tree, what):
  """Per-leaf values of a prefix pytree (`in_axes`/`out_axes`) over `tree`; None is a leaf."""
  prefix_leaves, prefix_tree = tree_flatten(prefix, is_leaf=lambda x: x is None)
  bad = [a for a in prefix_leaves
         if a is not None and (not isinstance(a, (int, np.integer)) or isinstance(a, bool))]
  if bad:
    raise TypeError(f"vmap: {what} entries must be ints (axes) or None, got {bad[0]!r} "
                    f"({type(bad[0]).__name__}) in {what}={prefix!r}.")
  try:
    subtrees = prefix_tree.flatten_up_to(tree)
  except errors.PytreeError as e:
    of = "arguments" if what == "in_axes" else "output"
    raise ValueError(f"vmap: {what} must be an int, None, or a pytree prefix of the "
                     f"{of}: {e}") from None
  out = []
  for axis, sub in zip(prefix_leaves, subtrees):
    out.extend([axis] * tree_structure(sub).num_leaves)
  return out


def vmap(f, in_axes=0, out_axes=0, *, axis_size=None, chunk_size=None):
  """Vectorize `f` over an axis of its inputs: `vmap(f)(xs)` is `stack([f(x) for x in xs])`,
  computed in one batched pass.

  Args:
    f: the function to vectorize.
    in_axes: int, None, or a tuple with one entry per positional argument (each an int, None
      or a pytree prefix of that argument): which axis of each input is mapped; None means
      the argument is the same for every element. Keyword arguments are mapped over axis 0.
    out_axes: int, None, or a pytree prefix of the output: where the mapped axis goes.
    axis_size: the batch size, required only when no input is mapped.
    chunk_size: map this many elements at a time (the last chunk may be smaller), not the
      whole batch at once: the batch's intermediates are held for one chunk at a time
      (less memory, more calls). The result is the same, up to rounding where values are
      summed over the batch (a derivative with respect to an unmapped input) or a matrix
      product's blocking depends on the batch size. Under jit the chunks after the first
      run as one loop (a scan), so the compiled program does not grow with their number.
      `f` runs once per chunk: a Variable it assigns is assigned once per chunk.

  Raises:
    AxisSizeError (a ValueError): if mapped inputs disagree on the axis size.

  >>> import dfdx.numpy as dnp
  >>> vmap(lambda x, y: dnp.sum(x * y), in_axes=(0, None))(np.eye(2), np.array([1.0, 2.0]))
  array([1., 2.])
  """
  chunk_size = batching.check_chunk_size(chunk_size, "vmap")

  @_wraps(f, f"vmap_of_{_fun_name(f)}")
  def vmapped(*args, **kwargs):
    if isinstance(in_axes, (tuple, list)) and len(in_axes) != len(args):
      raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but {_fun_name(f)} was called "
                       f"with {len(args)} positional arguments.")
    prefix = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else in_axes
    leaves, in_tree = tree_flatten((args, kwargs))
    axes = (_broadcast_prefix(prefix, args, "in_axes")
            + [0] * (len(leaves) - tree_structure(args).num_leaves))
    paths = in_tree.leaf_paths()
    vals, dims, size = _mapped_inputs(leaves, axes, paths, axis_size)
    store = {}

    def flat_fun(*xs):
      a, k = tree_unflatten(in_tree, xs)
      out_leaves, store["out_tree"] = tree_flatten(f(*a, **k))
      return [_as_value(o, "vmap") for o in out_leaves]
    outs, out_dims = batching.vmap_chunked(flat_fun, size, vals, dims, chunk_size)
    out_tree = store["out_tree"]
    targets = _broadcast_prefix(out_axes, tree_unflatten(out_tree, outs), "out_axes")
    return tree_unflatten(out_tree, [_place_batch_axis(o, d, t, size, p)
                                     for o, d, t, p in zip(outs, out_dims, targets,
                                                           out_tree.leaf_paths())])
  return vmapped


def _mapped_inputs(leaves, axes, paths, axis_size):
  vals, dims, sizes = [], [], {}
  for x, axis, path in zip(leaves, axes, paths):
    if axis is None:
      vals.append(x)
      dims.append(NOT_MAPPED)
      continue
    if not isinstance(x, Tracer):
      x = np.asarray(x)
    ndim = np.ndim(x)
    if not -ndim <= axis < ndim:
      raise ValueError(f"vmap: in_axes asks for axis {axis} of the argument at {_arg_path(path)},"
                       f" which has rank {ndim} (shape {np.shape(x)}). Use in_axes=None for "
                       "arguments that are not mapped.")
    axis %= ndim
    sizes.setdefault(np.shape(x)[axis], []).append(f"{_arg_path(path)} (axis {axis})")
    vals.append(x)
    dims.append(axis)
  if len(sizes) > 1:
    listing = "; ".join(f"size {s}: {', '.join(p)}" for s, p in sizes.items())
    raise errors.AxisSizeError(
        f"vmap got inconsistent sizes for the mapped axis: {listing}. Every mapped argument "
        "must have the same size along its mapped axis.")
  if not sizes:
    if axis_size is None:
      raise ValueError("vmap: no argument is mapped (every in_axes is None); pass axis_size=.")
    return vals, dims, int(axis_size)
  size = next(iter(sizes))
  if axis_size is not None and axis_size != size:
    raise errors.AxisSizeError(f"vmap: axis_size={axis_size}, but the mapped axis has size {size}.")
  return vals, dims, size


def _arg_path(path):
  # "[0][1]['a']" -> "argument 1['a']"; "[1]['k']" -> "keyword argument 'k'"
  if path.startswith("[0]"):
    rest = path[3:]
    i = rest[1:rest.index("]")]
    return f"argument {i}{rest[rest.index(']') + 1:]}"
  return f"keyword argument {path[4:-1]}"


def _place_batch_axis(x, bdim, target, size, path):
  if target is None:
    if bdim is not NOT_MAPPED:
      raise ValueError(f"vmap: out_axes is None for the output at {path}, but that output is "
                       "mapped (it depends on a mapped input). Use an integer out_axes.")
    return x
  ndim = np.ndim(x) + (bdim is NOT_MAPPED)
  if not -ndim <= target < ndim:
    raise ValueError(f"vmap: out_axes={target} is out of range for the output at {path}, which "
                     f"has rank {ndim} with the mapped axis.")
  target %= ndim
  x = batching.bdim_at_front(x, bdim, size)
  x = batching.moveaxis(x, 0, target)
  return x if isinstance(x, Tracer) else _to_output(x, False)
