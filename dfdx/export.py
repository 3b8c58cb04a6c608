"""Export derivatives (and any traced function) as code or formulas.

`to_source` returns the NumPy source of the optimized program: a function that runs on its
own with only NumPy imported. `to_sympy` returns SymPy expressions for programs on scalars
and small arrays (SymPy, an optional dependency, is imported only there).
"""
from __future__ import annotations

import builtins
import inspect
import keyword
import re

import numpy as np

from dfdx._src import ad, codegen, core
from dfdx._src.ir import Program
from dfdx._src.jit import _static_argnums_tuple, make_expr
from dfdx._src.tree import tree_flatten, tree_leaves

__all__ = ["to_source", "to_sympy"]


def _arg_names(f, n_args, leaves_per_arg):
  try:
    params = [p.name for p in inspect.signature(f).parameters.values()]
  except (TypeError, ValueError):
    params = []
  if len(params) >= n_args and all(k == 1 for k in leaves_per_arg):
    return params[:n_args]
  return None


def to_source(f, *args, name=None, static_argnums=()):
  """The source of a standalone NumPy function computing `f` (any composition, e.g.
  `grad(g)`) for arguments like `args`, after jit's optimizing passes.

  The generated function takes the leaves of the arguments (for array arguments: the
  arguments themselves, named as in `f`; a name the code uses itself, such as `np`, `v0` or
  a keyword, gets a trailing underscore, as does such a `name`) and returns the output (a
  tuple of the output leaves when there are several; leaves that are not arrays, such as a
  string, as they were). `static_argnums` are positions of arguments that are settings, not
  data (a size, a flag): their values are fixed in the source, which takes only the others.
  The code imports NumPy, and SciPy where `f` calls dfdx.scipy functions that SciPy
  computes.

  >>> import dfdx, dfdx.numpy as dnp
  >>> print(to_source(dfdx.grad(dnp.sin), 1.0, name="dsin"))
  import numpy as np
  <BLANKLINE>
  def dsin(x):
      v0 = np.cos(x)
      return v0
  <BLANKLINE>
  """
  trace = make_expr(f, optimize=True, static_argnums=static_argnums)
  expr = trace(*args)
  program = _as_compiled(expr.program)
  _check_standalone(program)
  dynamic = _dynamic_positions(static_argnums, len(args))
  names = _arg_names(f, len(args), [1] * len(args))
  if names is None or any(len(tree_leaves(args[i])) != 1 for i in dynamic) or \
      len(dynamic) != len(program.in_vars):  # (pytree arguments: their leaves, numbered)
    names = [f"x{i}" for i in range(len(program.in_vars))]
  else:
    names = [names[i] for i in dynamic]
  names = [_free_name(n) for n in names]
  name = _free_name(codegen._identifier(name or expr.name))
  returned = _returned(expr, len(program.outs))
  # A derivative: as dfdx computes it, a result holding a NaN is computed again with the
  # zero-absorbing chain rule (see README, "Derivatives that stay finite"). Where that
  # program has none of its equations left, it is the whole answer (its constants folded
  # with the rule; nothing differentiated: the plain program again).
  safe = ad.run_zero_absorbing(lambda: _as_compiled(trace(*args).program))
  if not _absorbs_zeros(safe):
    if returned is None:
      return codegen.program_source(safe, name, arg_names=names,
                                    single_output=len(safe.outs) == 1)
    source = codegen.program_source(safe, f"_{name}_outputs", arg_names=names)
    return source + _wrapper(name, names, f"_{name}_outputs({', '.join(names)})", returned)
  plain_src = codegen.program_source(program, f"_{name}_plain", arg_names=names)
  safe_src = codegen.program_source(safe, f"_{name}_zero_absorbing", arg_names=names,
                                    prefix="z")
  start = safe_src.index(f"def _{name}_zero_absorbing")
  safe_body = safe_src[start:]
  # The second program's prelude: the helpers the first does not define already, and its own
  # constants (named with the prefix "z").
  safe_prelude = [source.rstrip("\n") for h, source in sorted(codegen.helpers.items())
                  if f"def {h}(" in safe_src[:start] and f"def {h}(" not in plain_src]
  safe_prelude += [line for line in safe_src[:start].splitlines()
                   if re.match(r"z[ck]\d+ = ", line)]
  args_text = ", ".join(names)
  choose = (
      f"def _{name}_holds_nan(outs):\n"
      f"    return any(np.isnan(np.sum(o)) for o in outs if np.iscomplexobj(o) or "
      f"np.issubdtype(np.result_type(o), np.floating))\n\n"
      f"def _{name}_outputs({args_text}):\n"
      f"    outs = _{name}_plain({args_text})\n"
      f"    if _{name}_holds_nan(outs):  # where a factor is infinite: 0 * inf = 0 in the "
      f"chain rule\n"
      f"        outs = _{name}_zero_absorbing({args_text})\n"
      f"    return outs\n")
  return "\n".join([plain_src.rstrip("\n"), "", *safe_prelude, "", safe_body.rstrip("\n"),
                    "", choose]) + _wrapper(name, names, f"_{name}_outputs({args_text})",
                                            returned or (["outs[0]"] if len(program.outs) == 1
                                                         else None))


# Names generated code uses itself: its values v0, v1, ..., constants c0 and k0, outputs d0,
# the loops' xs0, ys0 and step, functions fn0, helpers _name, those with the prefix z, and
# the wrapper's outs (np, keywords and builtins are checked apart)
_GENERATED_NAME = re.compile(r"z?(v|c|k|d|xs|ys|fn)\d+|z?step|outs|_.*")


def _free_name(name):
  """`name`, with a trailing underscore where the generated code would shadow it or it would
  shadow something there (np, a builtin, a keyword, a generated name)."""
  while (_GENERATED_NAME.fullmatch(name) or keyword.iskeyword(name) or name == "np"
         or name in dir(builtins)):
    name += "_"
  return name


def _dynamic_positions(static_argnums, n_args):
  """The positions of the arguments that are not static (whose leaves the program takes)."""
  nums = _static_argnums_tuple(static_argnums, "f", "export")
  statics = {i % n_args for i in nums if -n_args <= i < n_args}
  return [i for i in range(n_args) if i not in statics]


def _returned(expr, n_outs):
  """How the function's result is built from the program's outputs `outs` (source of each
  output leaf, in order, non-array leaves written as literals), or None where it is the
  program's result as it is."""
  if not expr.out_statics:
    return None
  it = iter(range(n_outs))
  parts = []
  for i in range(expr.out_tree.num_leaves):
    if i in expr.out_statics:
      try:
        parts.append(codegen.literal(expr.out_statics[i]))
      except Exception as e:  # (a value with no literal: an object of the process)
        raise TypeError(f"to_source: output leaf {i} of {expr.name} is "
                        f"{core.short_value(expr.out_statics[i])}, which has no source "
                        "form; return arrays and numbers only.") from e
    else:
      parts.append(f"outs[{next(it)}]")
  return parts


def _wrapper(name, names, call, returned):
  """The exported function: `call` gives the program's outputs, returned as `returned` says
  (None: the tuple of them as it is)."""
  args_text = ", ".join(names)
  if returned is None:
    result = "outs"
  else:
    result = returned[0] if len(returned) == 1 else "(" + ", ".join(returned) + ",)"
  return f"\ndef {name}({args_text}):\n    outs = {call}\n    return {result}\n"


def _leaf_names(args, names):
  """(leaf, name) for each leaf of the arguments, in the order of the program's inputs: an
  argument that is one leaf is named `names[i]`, a pytree's leaves `names[i]` and the keys
  on their paths (`d["a"][0]` -> `d_a_0`, `p.w` -> `p_w`). Names are made distinct (SymPy
  symbols of the same name are the same symbol), and so are the array entries named from
  them (`name_i`)."""
  named = []
  for arg, base in zip(args, names):
    leaves, tree = tree_flatten(arg)
    named += zip(leaves, _path_names(tree, base))
  taken, out = set(), []
  for leaf, name in named:
    size = int(np.prod(np.shape(leaf)))
    unique, k = name, 1
    # (two paths may read the same, d["a_b"] and d["a"]["b"], or an array's entries may
    # read as another leaf's name, d["a"][0] of d["a"] = [1.0, 2.0])
    while unique in taken or (np.shape(leaf) != () and any(
        f"{unique}_{i}" in taken for i in range(size))):
      unique, k = f"{name}_{k}", k + 1
    taken.add(unique)
    if np.shape(leaf) != ():
      taken.update(f"{unique}_{i}" for i in range(size))
    out.append((leaf, unique))
  return out


def _path_names(tree, prefix):
  """The name of each leaf of `tree`: `prefix` and the keys on its path, joined by `_`, each
  key reduced to letters, digits and underscores (`['a']` -> `a`, `[0]` -> `0`, `.w` -> `w`)."""
  if tree.kind is None:
    return [prefix]
  keys = tree.kind.child_keys(tree.data, len(tree.children))
  out = []
  for child, key in zip(tree.children, keys):
    word = re.sub(r"\W+", "_", key).strip("_")
    out += _path_names(child, f"{prefix}_{word}" if word else prefix)
  return out


def _check_standalone(program):
  """Refuse programs whose code would call Python functions of this process (the solvers
  given to custom_root and custom_linear_solve, minimize's, a pure_callback's function): a
  standalone source cannot hold them."""
  def held(p):
    for e in p.eqns:
      if e.prim.name in ("custom_root", "linear_solve", "minimize", "pure_callback"):
        yield e.prim.name
      for v in e.params.values():
        for q in (v if isinstance(v, tuple) else (v,)):
          if isinstance(q, Program):
            yield from held(q)
  names = sorted(set(held(program)))
  if names:
    raise TypeError(
        f"to_source: the function calls {' and '.join(names)}, which calls a Python "
        "function of this process (a solver, a callback); a standalone source cannot hold it. "
        "Compile it here with dfdx.jit instead, or export the parts around it.")


def _as_compiled(program):
  """`program` after the passes jit runs on code that is only run (the layouts, loops that
  keep only what their carry needs)."""
  from dfdx._src import passes
  return passes.optimize(program, evaluate_only=True)


def _absorbs_zeros(program):
  """Whether the program (or a program in its equations' params: a loop's body, a cond's
  branches) has an equation of the zero-absorbing chain rule."""
  def nested(value):
    return (isinstance(value, Program) and _absorbs_zeros(value)) or (
        isinstance(value, tuple) and any(nested(v) for v in value))
  return any(e.prim.name in ("zmul", "zdiv") or any(nested(v) for v in e.params.values())
             for e in program.eqns)


def to_sympy(f, *args, simplify=True, static_argnums=()):
  """SymPy expressions of `f` (any composition) at arguments shaped like `args`: a scalar
  argument becomes a symbol named after the parameter, an array argument an array of
  symbols `name_i`; the symbols are real (`real=True`), or plain (complex) ones for a complex
  argument. A pytree argument gives one symbol (or array of symbols) per leaf,
  named after the parameter and the leaf's key path: `d["a"]` of `f(d)` is `d_a`,
  `p.w[1]` is `p_w_1`. Returns one expression (or `sympy.Array`) per output leaf; a
  single output is returned by itself. `static_argnums`: arguments that are settings (a
  size, a flag), fixed in the formulas instead of becoming symbols.

  >>> import dfdx
  >>> to_sympy(dfdx.grad(lambda x: 1 / x), 2.0)
  -1/x**2
  >>> to_sympy(lambda d: d["a"] * d["b"], {"a": 1.0, "b": 2.0})
  d_a*d_b
  """
  import sympy as sp
  expr = make_expr(f, optimize=True, static_argnums=static_argnums)(*args)
  names = _arg_names(f, len(args), [1] * len(args)) or [f"x{i}" for i in range(len(args))]
  dynamic = _dynamic_positions(static_argnums, len(args))
  inputs = []
  for leaf, name in _leaf_names([args[i] for i in dynamic], [names[i] for i in dynamic]):
    shape = np.shape(leaf)
    # (a complex leaf gets plain symbols: real ones would make conj(z) z and imag(z) 0)
    real = {} if np.iscomplexobj(leaf) else {"real": True}
    if shape == ():
      inputs.append(sp.Symbol(name, **real))
    else:
      flat = [sp.Symbol(f"{name}_{i}", **real) for i in range(int(np.prod(shape)))]
      inputs.append(np.array(flat, dtype=object).reshape(shape))
  from dfdx._src.sympy_export import sympy_eval
  results = sympy_eval(expr.program, inputs)
  if simplify:
    results = [sp.simplify(r) for r in results]
  return results[0] if len(results) == 1 else tuple(results)
