"""Implicit differentiation: `custom_root` and `custom_linear_solve`.

A solver's iterations are never differentiated. The solution x*(theta) of f(x, theta) = 0
has, by the implicit function theorem, the derivative

    df/dx dx + df/dtheta dtheta = 0,   so   dx = -(df/dx)^-1 (df/dtheta dtheta),

one linear solve per derivative, whatever the solver did to find x* (Newton, bisection,
a fixed-point iteration, SciPy). theta is whatever `f` closes over: traced values of
enclosing transformations are lifted to inputs of the primitive (closure conversion, as
custom_jvp does), so users never list the parameters.

Two primitives:

  * `custom_root(*x0, *closed; f, solve, tangent_solve, tree)`: the root, found by the
    user's `solve` on concrete NumPy values (its impl; jit's code calls it back). Its JVP is
    the linear solve above, with the operator v -> df/dx v at the root.
  * `linear_solve(*b, *operands; matvec, solve, transpose_solve, symmetric, tree)`: x with
    matvec(x, *operands) = b, found by the user's `solve`. Linear in b; its transpose solves
    with the transposed operator (by `transpose_solve`), and its JVP in the operands is
    x_dot = A^-1 (b_dot - A_dot x), another linear solve. So every derivative, to any order
    and in both modes, is again a `linear_solve`.

With no solver given for the linear systems, they are solved densely: the operator's matrix
comes from one vmapped call of it on the identity, then numpy.linalg.solve; that is plain
dfdx code, differentiable and batchable like any other. vmap runs the user's solvers once
per batch element (they are opaque code).
"""
from __future__ import annotations

import weakref

import numpy as np

from dfdx._src import ad, batching, core, errors, passes
from dfdx._src.core import Tracer
from dfdx._src.ir import eval_program
from dfdx._src.ops import checks
from dfdx._src.ops import elementwise as ew
from dfdx._src.ops import shape as shape_ops
from dfdx._src.staging import make_program
from dfdx._src.tree import tree_flatten, tree_unflatten

__all__ = ["custom_root", "custom_linear_solve"]


# ---- checks and conversions -----------------------------------------------------------------


def _float_leaves(where, what, tree_value):
  """The leaves of `tree_value` as floating arrays (integers and bools become float64, Python
  numbers NumPy values), with its tree. Complex and non-array leaves are errors."""
  import dfdx.numpy as dnp
  leaves, tree = tree_flatten(tree_value)
  out = []
  for i, leaf in enumerate(leaves):
    if not isinstance(leaf, (Tracer, np.ndarray, np.generic, bool, int, float, complex)):
      raise TypeError(f"{where}: leaf {i} of {what} is a {type(leaf).__name__} "
                      f"({leaf!r:.60}), not an array. Pass NumPy arrays or numbers.")
    dtype = core.get_aval(leaf).dtype
    if dtype.kind == "c":
      raise TypeError(f"{where}: leaf {i} of {what} is complex ({dtype}); only real systems "
                      "are supported. Split it into real and imaginary parts.")
    if dtype.kind != "f":
      dtype = np.dtype(np.float64)
    out.append(dnp.asarray(leaf, dtype))
  return out, tree


def _check_like(where, what, value, tree, avals):
  """The leaves of `value`, a result that must have `tree`'s structure and `avals`' shapes,
  cast to their dtypes (concrete NumPy values)."""
  leaves, value_tree = tree_flatten(value)
  if value_tree != tree:
    raise TypeError(f"{where}: {what} has the structure {value_tree}; expected {tree}, the "
                    "structure of the unknowns.")
  out = []
  for i, (leaf, aval) in enumerate(zip(leaves, avals)):
    if isinstance(leaf, Tracer):
      raise TypeError(f"{where}: {what} is a traced value; the solver runs on concrete "
                      "NumPy values and must return them.")
    arr = np.asarray(leaf)
    if arr.shape != aval.shape:
      raise ValueError(f"{where}: leaf {i} of {what} has shape {arr.shape}; expected "
                       f"{aval.shape}, the shape of the unknowns.")
    if arr.dtype.kind not in "fiub":
      raise TypeError(f"{where}: leaf {i} of {what} has dtype {arr.dtype}; expected a real "
                      f"{aval.dtype} array.")
    arr = np.asarray(arr, aval.dtype)
    out.append(arr[()] if arr.ndim == 0 else arr)
  return out


def _zeros(aval):
  return np.zeros(aval.shape, aval.dtype)


def _call_solver(solver, operator, rhs, tree, avals, where, what):
  """`solver(operator, rhs)` on concrete values, outside every transformation, its result
  checked against the unknowns' structure."""
  with core.set_trace(None):
    try:
      result = solver(operator, tree_unflatten(tree, list(rhs)))
    except (RecursionError, errors.EscapedTracerError, errors.TracerArrayConversionError,
            errors.ConcretizationError) as e:
      raise TypeError(
          f"{where}: {what} computed with a traced value ({type(e).__name__}). It runs on "
          "NumPy values, outside the transformations: it must reach the parameters only "
          "through the function it is given, not by closing over them.") from e
    return _check_like(where, f"the result of {what}", result, tree, avals)


COMPILE_AFTER = 50  # calls of a solver's function on NumPy values before it is compiled


def _as_function(program, tree, extra):
  """The program (leaves of x, *extra) -> leaves as a function of the pytree x, for solvers
  (which may differentiate it: Newton's method)."""
  import dfdx.numpy as dnp
  from dfdx._src.codegen import program_function
  compiled, calls = [], [0]

  def fun(x):
    leaves, x_tree = tree_flatten(x)
    if x_tree != tree:
      raise TypeError(f"the function given to a solver takes a value of structure {tree}, "
                      f"got {x_tree}.")
    leaves = [dnp.asarray(leaf, v.aval.dtype) for leaf, v in zip(leaves, program.in_vars)]
    for i, (leaf, v) in enumerate(zip(leaves, program.in_vars)):
      if tuple(core.shape_of(leaf)) != v.aval.shape:
        raise ValueError(f"the function given to a solver takes leaf {i} of shape "
                         f"{v.aval.shape}, got {tuple(core.shape_of(leaf))}.")
    if core.current_trace() is None and not any(isinstance(v, Tracer) for v in extra):
      calls[0] += 1  # (a solver that calls it many times gets compiled NumPy code, which
      if calls[0] == COMPILE_AFTER:  # costs about what 100 interpreted calls cost)
        compiled.append(program_function(program))
      outs = compiled[0](*leaves, *extra) if compiled else eval_program(program, *leaves, *extra)
      return tree_unflatten(tree, [np.asarray(o)[()] if np.ndim(o) == 0 else o for o in outs])
    return tree_unflatten(tree, eval_program(program, *leaves, *extra))
  return fun


def _stage_residual(where, f, leaves, tree):
  """f as a program (leaves of x, *closed-over values) -> leaves of f(x), which must have x's
  structure and shapes (cast to x's dtypes). Returns (program, closed-over tracers)."""
  import dfdx.numpy as dnp
  avals = [core.shaped_array(core.shape_of(x), core.get_aval(x).dtype) for x in leaves]

  def flat(*xs):
    out = f(tree_unflatten(tree, list(xs)))
    out_leaves, out_tree = tree_flatten(out)
    if out_tree != tree:
      raise TypeError(f"{where}: the function returned the structure {out_tree}; it must "
                      f"return one like its argument, {tree} (a square system).")
    result = []
    for i, (o, a) in enumerate(zip(out_leaves, avals)):
      o = dnp.asarray(o)
      if tuple(o.shape) != a.shape:
        raise ValueError(f"{where}: leaf {i} of the function's result has shape "
                         f"{tuple(o.shape)}; it must have its argument's shape {a.shape} "
                         "(a square system).")
      if core.get_aval(o).dtype.kind == "c":
        raise TypeError(f"{where}: the function returned a complex value; only real systems "
                        "are supported.")
      result.append(dnp.asarray(o, a.dtype))
    return result
  return make_program(flat, avals, record_source=False)


# ---- dense solves ---------------------------------------------------------------------------
def _dense_solve(matvec, b, operands, where):
  """x with matvec(x, *operands) = b: the operator's matrix from one vmapped call on the
  identity, then numpy.linalg.solve. Plain dfdx code, so it differentiates and batches."""
  import dfdx.numpy as dnp
  from dfdx._src.api import vmap
  shapes = [core.shape_of(x) for x in b]
  dtypes = [core.get_aval(x).dtype for x in b]
  sizes = [int(np.prod(s)) for s in shapes]
  dtype = np.result_type(np.float32, *dtypes)  # (LAPACK has no float16)
  n = sum(sizes)
  if n == 0:  # (nothing to solve: x is b, empty, which keeps a tangent's linearity)
    return list(b)

  def split(v):
    out, start = [], 0
    for s, size, d in zip(shapes, sizes, dtypes):
      out.append(dnp.asarray(dnp.reshape(v[start:start + size], s), d))
      start += size
    return out

  def join(leaves):
    return dnp.concatenate([dnp.reshape(dnp.asarray(x, dtype), (-1,)) for x in leaves])

  columns = vmap(lambda e: join(eval_program(matvec, *split(e), *operands)))(
      np.eye(n, dtype=dtype))
  singular = (f"{where}: the linear system is singular, so the implicit derivative does not "
              "exist here.")
  rhs = join(b)
  if type(columns) is np.ndarray and isinstance(rhs, Tracer) and \
      np.linalg.slogdet(columns)[0] == 0:  # (reverse mode would meet it in its transpose;
    raise np.linalg.LinAlgError(singular)  # a concrete right-hand side is solved just below)
  if isinstance(columns, Tracer):  # (known later: under jit or vmap, checked when computed)
    columns = checks.check(columns, "nonsingular", "LinAlgError", singular)
  try:
    x = dnp.linalg.solve(dnp.transpose(columns), rhs)
  except np.linalg.LinAlgError as e:
    raise np.linalg.LinAlgError(singular) from e
  return split(x)


def _solve(matvec, b, operands, solve, transpose_solve, symmetric, tree, where, names):
  if solve is None:
    return _dense_solve(matvec, b, operands, where)
  return linear_solve_p.bind(*b, *operands, matvec=matvec, solve=solve,
                             transpose_solve=transpose_solve, symmetric=symmetric, tree=tree,
                             where=where, names=names)


# ---- linear_solve ---------------------------------------------------------------------------
linear_solve_p = core.primitive("linear_solve", multiple_results=True)


def _n_unknowns(matvec):
  return len(matvec.outs)


def _linear_solve_impl(*args, matvec, solve, transpose_solve, symmetric, tree, where, names):
  n = _n_unknowns(matvec)
  b, operands = args[:n], args[n:]
  avals = matvec.out_avals
  return _call_solver(solve, _as_function(matvec, tree, operands), b, tree, avals, where,
                      names[0])


def _linear_solve_abstract_eval(*avals, matvec, solve, transpose_solve, symmetric, tree,
                                where, names):
  return list(matvec.out_avals)


def _linear_solve_jvp(primals, tangents, *, matvec, solve, transpose_solve, symmetric, tree,
                      where, names):
  # x = A^-1 b:  x_dot = A^-1 (b_dot - A_dot x), A_dot x the operator's JVP in its operands.
  n = _n_unknowns(matvec)
  params = dict(matvec=matvec, solve=solve, transpose_solve=transpose_solve,
                symmetric=symmetric, tree=tree, where=where, names=names)
  x = linear_solve_p.bind(*primals, **params)
  rhs = list(tangents[:n])
  operands, operand_dots = list(primals[n:]), list(tangents[n:])
  if any(t is not None for t in operand_dots):
    _, moved = ad.jvp_flat(lambda *ops: eval_program(matvec, *x, *ops), operands, operand_dots)
    rhs = [r if m is None else ew.neg(m) if r is None else ew.sub(r, m)
           for r, m in zip(rhs, moved)]
  if all(r is None for r in rhs):
    return x, [None] * n
  rhs = [_zeros(a) if r is None else r for a, r in zip(matvec.out_avals, rhs)]
  x_dot = linear_solve_p.bind(*rhs, *operands, **params)
  return x, [ad.match_primal(t, p) for t, p in zip(x_dot, x)]


_transposed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _transposed_matvec(matvec):
  """The program (leaves of c, *operands) -> A^T c, for the operator of `matvec`."""
  program = _transposed.get(matvec)
  if program is not None:
    return program
  n = _n_unknowns(matvec)
  x_avals = list(matvec.out_avals)

  def flat(*args):
    cs, operands = args[:n], args[n:]
    _, lin = ad.linearize_flat(lambda *xs: eval_program(matvec, *xs, *operands),
                               [_zeros(a) for a in x_avals])
    cts = lin.transpose(list(cs))
    return [_zeros(a) if c is None else ad.match_primal(c, _zeros(a))
            for a, c in zip(x_avals, cts)]
  program, lifted = make_program(flat, x_avals + [v.aval for v in matvec.in_vars[n:]],
                                 record_source=False)
  assert not lifted, lifted
  program = _transposed[matvec] = passes.dce(program)
  return program


def _linear_solve_transpose(cts, *args, matvec, solve, transpose_solve, symmetric, tree,
                            where, names):
  n = _n_unknowns(matvec)
  if any(ad.is_linear(a) for a in args[n:]):
    raise errors.MissingRuleError(f"{where}: the linear solve is linear in its right-hand "
                                  "side only, not in its operator.")
  if transpose_solve is None and not symmetric:
    raise errors.MissingRuleError(
        f"{where}: reverse mode solves with the transposed operator, and no transpose_solve "
        "was given. Pass transpose_solve= (a solver for A^T x = b, called with the "
        "transposed operator), or symmetric=True if A is symmetric.")
  operands = list(args[n:])
  cts = [_zeros(a) if c is None else c for a, c in zip(matvec.out_avals, cts)]
  if symmetric:
    b_bar = linear_solve_p.bind(*cts, *operands, matvec=matvec, solve=solve,
                                transpose_solve=transpose_solve, symmetric=True, tree=tree,
                                where=where, names=names)
  else:
    b_bar = linear_solve_p.bind(*cts, *operands, matvec=_transposed_matvec(matvec),
                                solve=transpose_solve, transpose_solve=solve, symmetric=False,
                                tree=tree, where=where, names=names[::-1])
  return [c if ad.is_linear(a) else None for a, c in zip(args[:n], b_bar)] + \
      [None] * len(operands)


# ---- custom_root ----------------------------------------------------------------------------
custom_root_p = core.primitive("custom_root", multiple_results=True)


def _custom_root_impl(*args, f, solve, tangent_solve, tree, where, vectorized, batch):
  n = len(f.outs)
  x0, closed = args[:n], args[n:]
  if batch:  # (every input stacked along axis 0: f over the batch, one call of the solver)
    f = _stacked(f, batch)
  return _call_solver(solve, _as_function(f, tree, closed), x0, tree, f.out_avals, where,
                      "solve")


def _custom_root_abstract_eval(*avals, f, solve, tangent_solve, tree, where, vectorized,
                               batch):
  if batch:
    return [core.shaped_array((batch,) + a.shape, a.dtype) for a in f.out_avals]
  return list(f.out_avals)


_stacked_programs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stacked(f, batch):
  """f over `batch` examples stacked along axis 0 of every input and output."""
  from dfdx._src.custom import _batched_program
  by_size = _stacked_programs.setdefault(f, {})
  if batch not in by_size:
    avals = [core.shaped_array((batch,) + v.aval.shape, v.aval.dtype) for v in f.in_vars]
    by_size[batch] = _batched_program(f, batch, avals, [0] * len(avals), False)[0]
  return by_size[batch]


_x_derivatives: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _x_derivative(f):
  """The program (leaves of v, leaves of x, *closed) -> df/dx(x) v: the operator of the
  linear system of the root's derivatives."""
  program = _x_derivatives.get(f)
  if program is not None:
    return program
  n = len(f.outs)
  x_avals = list(f.out_avals)

  def flat(*args):
    v, x, closed = args[:n], args[n:2 * n], args[2 * n:]
    _, moved = ad.jvp_flat(lambda *xs: eval_program(f, *xs, *closed), list(x), list(v))
    return [_zeros(a) if m is None else ad.match_primal(m, _zeros(a))
            for a, m in zip(x_avals, moved)]
  program, lifted = make_program(flat, x_avals * 2 + [v.aval for v in f.in_vars[n:]],
                                 record_source=False)
  assert not lifted, lifted
  program = _x_derivatives[f] = passes.dce(program)
  return program


def _custom_root_jvp(primals, tangents, *, f, solve, tangent_solve, tree, where, vectorized,
                     batch):
  # f(x*, theta) = 0 near theta:  df/dx x_dot = -df/dtheta theta_dot. The initial guess has
  # no derivative (the root does not depend on it).
  n = len(f.outs)
  x = custom_root_p.bind(*primals, f=f, solve=solve, tangent_solve=tangent_solve, tree=tree,
                         where=where, vectorized=vectorized, batch=batch)
  closed, closed_dots = list(primals[n:]), list(tangents[n:])
  if all(t is None for t in closed_dots):
    return x, [None] * n
  if batch:  # (each example's system on its own, under vmap)
    moving = [i for i, t in enumerate(closed_dots) if t is not None]

    def one(*vals):
      xs, cs, ds = vals[:n], list(vals[n:n + len(closed)]), iter(vals[n + len(closed):])
      dots = [next(ds) if i in moving else None for i in range(len(closed))]
      return _root_tangent(f, list(xs), cs, dots, tangent_solve, tree, where)
    vals = list(x) + closed + [closed_dots[i] for i in moving]
    outs, dims = batching.vmap_flat(one, batch, vals, [0] * len(vals))
    return x, [ad.match_primal(batching.bdim_at_front(o, d, batch), p)
               for o, d, p in zip(outs, dims, x)]
  return x, _root_tangent(f, list(x), closed, closed_dots, tangent_solve, tree, where)


def _root_tangent(f, x, closed, closed_dots, tangent_solve, tree, where):
  """x_dot from df/dx x_dot = -df/dtheta theta_dot at the root x."""
  _, moved = ad.jvp_flat(lambda *cs: eval_program(f, *x, *cs), closed, closed_dots)
  if all(m is None for m in moved):
    return [_zeros(a) for a in f.out_avals]
  rhs = [_zeros(a) if m is None else ew.neg(m) for a, m in zip(f.out_avals, moved)]
  x_dot = _solve(_x_derivative(f), rhs, list(x) + closed, tangent_solve, tangent_solve, False,
                 tree, where, ("tangent_solve", "tangent_solve (with the transposed operator)"))
  return [ad.match_primal(t, p) for t, p in zip(x_dot, x)]


def _vectorized_batcher(axis_size, vals, dims, **params):
  """vmap of a vectorized custom_root: one root of the stacked systems (a batch already
  stacked takes the new axis in front of its own)."""
  if not params["vectorized"] or axis_size == 0:
    return _one_by_one(axis_size, vals, dims, **params)
  inner = params["batch"]
  stacked = []
  for v, d in zip(vals, dims):
    v = batching.bdim_at_front(v, d, axis_size)
    shape = tuple(core.shape_of(v))
    stacked.append(shape_ops.reshape(v, (axis_size * inner,) + shape[2:]) if inner else v)
  outs = custom_root_p.bind(*stacked, **dict(params, batch=axis_size * (inner or 1)))
  if inner:
    outs = [shape_ops.reshape(o, (axis_size, inner) + tuple(core.shape_of(o))[1:])
            for o in outs]
  return outs, [0] * len(outs)


for _prim, _impl, _abstract in ((linear_solve_p, _linear_solve_impl, _linear_solve_abstract_eval),
                                (custom_root_p, _custom_root_impl, _custom_root_abstract_eval)):
  _prim.def_impl(_impl)
  _prim.def_abstract_eval(_abstract)
batching.defone_by_one(linear_solve_p)
_one_by_one = batching.defone_by_one(custom_root_p)  # (what a root not vectorized takes)
batching.primitive_batchers[custom_root_p] = _vectorized_batcher
ad.primitive_jvps[linear_solve_p] = _linear_solve_jvp
ad.primitive_transposes[linear_solve_p] = _linear_solve_transpose
ad.primitive_jvps[custom_root_p] = _custom_root_jvp


# ---- the public functions -------------------------------------------------------------------


def _traced(*values):
  return core.current_trace() is not None or any(
      isinstance(x, Tracer) for v in values for x in tree_flatten(v)[0])


def custom_root(f, initial_guess, solve, tangent_solve=None, *, vectorized=False):
  """The root x of `f(x) = 0` that `solve` finds, differentiated implicitly.

  The solver's iterations are not differentiated: the derivative of the root with respect
  to whatever `f` closes over comes from the implicit function theorem,
  dx = -(df/dx)^-1 (df/dtheta dtheta), one linear solve per derivative. So any solver works,
  however it finds the root (Newton, bisection, a fixed-point iteration, SciPy), and
  derivatives exist to any order, in forward and reverse mode, under vmap and jit.

  Args:
    f: the residual, a function of x (a pytree of float arrays) returning a pytree of x's
      structure and shapes. It is written with `dfdx.numpy` and closes over the parameters
      to differentiate (traced values of enclosing transformations).
    initial_guess: x's starting value (a pytree of arrays; integers become float64). No
      derivative flows through it.
    solve: `solve(f, initial_guess) -> x`, called on concrete NumPy values and never traced:
      any code, including SciPy's (`scipy.optimize.root(f, x0).x`). Under vmap it runs once
      per batch element.
    tangent_solve: `tangent_solve(g, y) -> z` with g(z) = y, for the linear function g it is
      given (df/dx at the root; reverse mode gives it the transpose). None solves densely:
      g's matrix from one vmapped call, then numpy.linalg.solve (fine up to a few thousand
      unknowns).
    vectorized: under vmap, call `solve` once for the whole batch instead of once per
      example: every leaf of the unknowns (and of initial_guess) then has the examples
      stacked along a new leading axis, and f maps such stacks to stacks (each example's
      residual from its own unknowns: independent systems side by side). For solvers that
      work on arrays elementwise or on stacked problems; derivatives are still computed
      example by example.

  Returns:
    the root, a pytree like initial_guess.

  >>> import dfdx, dfdx.numpy as dnp
  >>> def bisect(f, x):  # any solver: here a bisection on [0, 10]
  ...   lo, hi = 0.0, 10.0
  ...   for _ in range(100):
  ...     mid = (lo + hi) / 2
  ...     lo, hi = (lo, mid) if f(mid) > 0 else (mid, hi)
  ...   return (lo + hi) / 2
  >>> cube_root = lambda a: custom_root(lambda x: x ** 3 - a, 1.0, bisect)
  >>> round(float(dfdx.grad(cube_root)(8.0)), 6)  # 1 / (3 * 8 ** (2/3))
  0.083333
  """
  where = "custom_root"
  if not callable(f) or not callable(solve):
    raise TypeError(f"{where}(f, initial_guess, solve, tangent_solve=None): f and solve must "
                    f"be functions, got {type(f).__name__} and {type(solve).__name__}.")
  if tangent_solve is not None and not callable(tangent_solve):
    raise TypeError(f"{where}: tangent_solve must be a function tangent_solve(g, y) or None, "
                    f"got {type(tangent_solve).__name__}.")
  leaves, tree = _float_leaves(where, "initial_guess", initial_guess)
  program, closed = _stage_residual(where, f, leaves, tree)
  if not _traced(leaves) and not closed:
    return tree_unflatten(tree, _custom_root_impl(*leaves, f=program, solve=solve,
                                                  tangent_solve=tangent_solve, tree=tree,
                                                  where=where, vectorized=False, batch=0))
  outs = custom_root_p.bind(*leaves, *closed, f=program, solve=solve,
                            tangent_solve=tangent_solve, tree=tree, where=where,
                            vectorized=bool(vectorized), batch=0)
  return tree_unflatten(tree, outs)


_NAMES = ("solve", "transpose_solve")


def custom_linear_solve(matvec, b, solve=None, transpose_solve=None, symmetric=False):
  """x with `matvec(x) = b`, found by `solve`, differentiated implicitly.

  The solver is not differentiated: x = A^-1 b is linear in b, and its derivative with
  respect to what `matvec` closes over is -A^-1 (A_dot x), another solve. Reverse mode
  solves with the transposed operator. So an iterative solver (conjugate gradients, GMRES,
  SciPy's) gives exact derivatives, to any order.

  Args:
    matvec: the linear operator, x -> A x for x a pytree like b, written with `dfdx.numpy`;
      it closes over A's entries (traced values allowed).
    b: the right-hand side, a pytree of float arrays (integers become float64).
    solve: `solve(matvec, b) -> x`, on concrete NumPy values and never traced (SciPy's
      `scipy.sparse.linalg.cg` wrapped, for one). None solves densely: A's matrix from one
      vmapped call of matvec, then numpy.linalg.solve.
    transpose_solve: `transpose_solve(vecmat, b) -> x` solving A^T x = b, called with the
      transposed operator; needed for reverse mode when `solve` is given and A is not
      symmetric.
    symmetric: A is symmetric: reverse mode reuses `solve` and `matvec`.

  >>> import dfdx, dfdx.numpy as dnp
  >>> import numpy as np
  >>> def jacobi(mv, b):  # a solver that only calls the operator
  ...   x = np.zeros_like(b)
  ...   for _ in range(200):
  ...     x = x + (b - mv(x)) / 4.0
  ...   return x
  >>> def f(a):
  ...   A = dnp.array([[4.0, a], [a, 4.0]])
  ...   return dnp.sum(custom_linear_solve(lambda x: A @ x, np.ones(2), jacobi, symmetric=True))
  >>> round(float(dfdx.grad(f)(1.0)), 6)  # d/da 2 / (4 + a) = -2 / 25
  -0.08
  """
  where = "custom_linear_solve"
  if not callable(matvec):
    raise TypeError(f"{where}(matvec, b, solve=None, ...): matvec must be a function, got "
                    f"{type(matvec).__name__}.")
  for name, fn in (("solve", solve), ("transpose_solve", transpose_solve)):
    if fn is not None and not callable(fn):
      raise TypeError(f"{where}: {name} must be a function or None, got {type(fn).__name__}.")
  leaves, tree = _float_leaves(where, "b", b)
  program, closed = _stage_residual(where, matvec, leaves, tree)
  if symmetric and transpose_solve is None:
    transpose_solve = solve
  if solve is None:
    outs = _dense_solve(program, leaves, closed, where)
    return tree_unflatten(tree, [o[()] if type(o) is np.ndarray and o.ndim == 0 else o
                                 for o in outs])
  if not _traced(leaves) and not closed:
    return tree_unflatten(tree, _linear_solve_impl(
        *leaves, matvec=program, solve=solve, transpose_solve=transpose_solve,
        symmetric=bool(symmetric), tree=tree, where=where, names=_NAMES))
  outs = linear_solve_p.bind(*leaves, *closed, matvec=program, solve=solve,
                             transpose_solve=transpose_solve, symmetric=bool(symmetric),
                             tree=tree, where=where, names=_NAMES)
  return tree_unflatten(tree, outs)
