"""Sums of products that share a factor, computed as one product (compiled code only).

Forward mode through y = R (A W), with W a large matrix (a skinning matrix, a layer's
weights), makes the tangent dR (A W) + R (dA W): a product of dA with W's columns, a
product on the large result A W, and a sum of two large arrays, where (dR A + R dA) W is
one product with W and small work on arrays W does not multiply. `share_factors` finds, at
a sum or difference, two terms that are each a product with the same W (the same variable,
or constants holding the same values), reached through transposes, negations, scalings by
a scalar and products acting only on the other factor's axes (associativity: R (S W) =
(R S) W), and rewrites the sum as one product with W where that costs fewer operations
(multiply-adds of the products, entries of the rest).

Each term is described in a canonical form, `_Form`: an array S whose leading axes are the
term's axes not from W, in the term's order, and whose trailing axes are contracted with
W's axes `cw`; `wpos` are the term's axes that W's free axes become. Two terms sum inside
the product when their forms agree on W, `cw` and `wpos`.

The result is the same sum of products, associated differently: rounding may differ in the
last bits, as for pull_gathers' products of another shape. Programs that are differentiated
again keep their products as written (the pass runs under `optimize(evaluate_only=True)`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dfdx._src.ir import Program, Var
from dfdx._src.passes import _Mover, _rewrite_each, _Subst, _same_type

_MAX_DEPTH = 8  # equations followed from a term down to its product with W


class _Form(NamedTuple):
  s: object  # the atom S: (term's axes not from W..., axes contracted with W)
  w: object  # the shared factor W
  cw: tuple  # W's contracted axes, in the order of S's trailing axes
  wpos: tuple  # the term's axes that W's free axes (in order) become


def _free(ndim, contracted):
  return [i for i in range(ndim) if i not in contracted]


def _cost(eqn):
  """Operations an equation costs: multiply-adds of a product, entries written otherwise
  (nothing for a transpose, a view)."""
  out = eqn.outputs[0].aval
  if eqn.prim.name == "dot_general":
    (xc, _), _ = eqn.params["dimension_numbers"]
    return math.prod(out.shape) * math.prod(eqn.inputs[0].aval.shape[i] for i in xc)
  if eqn.prim.name == "transpose":
    return 0
  return math.prod(out.shape)


class _Factorer(_Mover):

  def __init__(self, program, subst):
    from dfdx._src.ops import contraction, elementwise, shape
    super().__init__(program)
    self.subst = subst
    self.consts = {id(v): c for v, c in zip(program.const_vars, program.const_vals)}
    self.dot_p, self.transpose_p = contraction.dot_general_p, shape.transpose_p
    self.neg_p, self.mul_p = elementwise.neg_p, elementwise.mul_p
    self.sum_ps = {"add": elementwise.add_p, "sub": elementwise.sub_p}
    self.dying = []

  # ---- what a term is ----------------------------------------------------------------------

  def same(self, a, b):
    """Whether atoms `a` and `b` hold the same array (one variable, or equal constants)."""
    if a is b:
      return True
    x, y = self.consts.get(id(a)), self.consts.get(id(b))
    return (x is not None and y is not None and x.shape == y.shape and x.dtype == y.dtype
            and (x is y or np.array_equal(x, y)))

  def _producer(self, v):
    """(equation, its inputs with substitutions applied) producing `v`, else None."""
    eqn = self.producer.get(id(v)) if isinstance(v, Var) else None
    if eqn is None or len(eqn.outputs) != 1:
      return None
    return eqn, [self.subst(a) for a in eqn.inputs]

  def _followed(self, v, dtype):
    """The producer of `v` where a term's form may be read through it, else None."""
    found = self._producer(v)
    if found is None or v.aval.dtype != dtype:
      return None
    eqn, inputs = found
    name = eqn.prim.name
    if name == "dot_general":
      (_, _), (xb, _) = eqn.params["dimension_numbers"]
      if xb or any(a.aval.dtype != dtype for a in inputs):
        return None
    elif name == "mul":
      if not any(a.aval.shape == () for a in inputs):
        return None
    elif name not in ("neg", "transpose"):
      return None
    return eqn, inputs

  def candidates(self, v, dtype, depth=0):
    """The operands of the products a term may be read as (its possible factors W)."""
    found = None if depth > _MAX_DEPTH else self._followed(v, dtype)
    if found is None:
      return []
    eqn, inputs = found
    if eqn.prim.name == "dot_general":
      out = list(inputs)
      for a in inputs:
        out += self.candidates(a, dtype, depth + 1)
      return out
    return [c for a in inputs if a.aval.shape != () for c in self.candidates(a, dtype, depth + 1)]

  # ---- a term's form ------------------------------------------------------------------------

  def transposed(self, a, perm):
    perm = tuple(perm)
    return a if perm == tuple(range(len(perm))) else self.emit_prim(self.transpose_p, [a],
                                                                 {"perm": perm})

  def form(self, v, w, dies, depth=0):
    """The canonical form of term `v` as a product with `w`, else None. Equations read
    through that die with the rewrite (`dies`: reached by variables used once) go to
    self.dying; a failed attempt leaves self.out and self.dying as they were."""
    found = None if depth > _MAX_DEPTH else self._followed(v, w.aval.dtype)
    if found is None:
      return None
    eqn, inputs = found
    n_out, n_dying = len(self.out), len(self.dying)
    if dies:
      self.dying.append(eqn)
    f = getattr(self, "_form_" + eqn.prim.name)(eqn, inputs, w, dies, depth + 1)
    if f is None:
      del self.out[n_out:], self.dying[n_dying:]
    return f

  def _dies(self, dies, a):
    return dies and self.uses.get(id(a)) == 1

  def _form_dot_general(self, eqn, inputs, w, dies, depth):
    x, y = inputs
    (xc, yc), _ = eqn.params["dimension_numbers"]
    xf, yf = _free(x.aval.ndim, xc), _free(y.aval.ndim, yc)
    for w_right in (True, False):
      if self.same(y if w_right else x, w):  # S W or W S: S's free axes stay in order
        s, sc, wc, sf = (x, xc, yc, xf) if w_right else (y, yc, xc, yf)
        order = sorted(range(len(wc)), key=lambda i: wc[i])
        cw = tuple(wc[i] for i in order)
        start, n_w = (len(xf), len(yf)) if w_right else (0, len(xf))
        return _Form(self.transposed(s, sf + [sc[i] for i in order]), w, cw,
                     tuple(range(start, start + n_w)))
    # R (S W): R contracts only axes of the term S W that come from S.
    f = self.form(y, w, self._dies(dies, y), depth)
    if f is not None and not set(yc) & set(f.wpos):
      s_axes = [p for p in range(y.aval.ndim) if p not in f.wpos]
      s = self.emit_prim(self.dot_p, [x, f.s],
                    {"dimension_numbers": ((tuple(xc), tuple(s_axes.index(p) for p in yc)),
                                           ((), ()))})
      return _Form(s, f.w, f.cw, tuple(len(xf) + yf.index(p) for p in f.wpos))
    # (S W) R, likewise.
    f = self.form(x, w, self._dies(dies, x), depth)
    if f is not None and not set(xc) & set(f.wpos):
      s_axes = [p for p in range(x.aval.ndim) if p not in f.wpos]
      s = self.emit_prim(self.dot_p, [f.s, y],
                    {"dimension_numbers": ((tuple(s_axes.index(p) for p in xc), tuple(yc)),
                                           ((), ()))})
      kept = len(s_axes) - len(xc)  # S's free axes left, then its tail, then y's free axes
      tail = f.s.aval.ndim - len(s_axes)
      s = self.transposed(s, list(range(kept)) + list(range(kept + tail, kept + tail + len(yf)))
                          + list(range(kept, kept + tail)))
      return _Form(s, f.w, f.cw, tuple(xf.index(p) for p in f.wpos))
    return None

  def _form_transpose(self, eqn, inputs, w, dies, depth):
    (z,), perm = inputs, eqn.params["perm"]
    f = self.form(z, w, self._dies(dies, z), depth)
    if f is None:
      return None
    s_axes = [p for p in range(len(perm)) if p not in f.wpos]
    order = sorted(s_axes, key=perm.index)
    tail = range(len(s_axes), f.s.aval.ndim)
    s = self.transposed(f.s, [s_axes.index(p) for p in order] + list(tail))
    return _Form(s, f.w, f.cw, tuple(perm.index(p) for p in f.wpos))

  def _form_neg(self, eqn, inputs, w, dies, depth):
    f = self.form(inputs[0], w, self._dies(dies, inputs[0]), depth)
    return None if f is None else f._replace(s=self.emit_prim(self.neg_p, [f.s], {}))

  def _form_mul(self, eqn, inputs, w, dies, depth):
    z, c = inputs if inputs[1].aval.shape == () else inputs[::-1]
    f = self.form(z, w, self._dies(dies, z), depth)
    return None if f is None else f._replace(s=self.emit_prim(self.mul_p, [f.s, c], {}))

  # ---- a sum of two terms ------------------------------------------------------------------

  def product(self, f, like):
    """Equations computing form `f` (a term shaped like variable `like`); their output."""
    n_free = f.s.aval.ndim - len(f.cw)
    out = self.emit_prim(self.dot_p, [f.s, f.w],
                    {"dimension_numbers": ((tuple(range(n_free, f.s.aval.ndim)), f.cw),
                                           ((), ()))})
    s_positions = [p for p in range(like.aval.ndim) if p not in f.wpos]
    perm = [n_free + f.wpos.index(p) if p in f.wpos else s_positions.index(p)
            for p in range(like.aval.ndim)]
    return self.transposed(out, perm)

  def shared(self, eqn, inputs):
    """Equations computing the sum or difference `eqn` as one product, where that costs
    less; their output, else None."""
    x, y = inputs
    v = eqn.outputs[0]
    dtype = v.aval.dtype
    if (dtype.kind not in "fc" or x.aval.shape != v.aval.shape
            or y.aval.shape != v.aval.shape or x.aval.dtype != dtype or y.aval.dtype != dtype):
      return None
    ys = self.candidates(y, dtype)
    for w in self.candidates(x, dtype):
      if not any(self.same(w, u) for u in ys):
        continue
      self.out, self.dying = [], [eqn]
      fx = self.form(x, w, self._dies(True, x))
      fy = None if fx is None else self.form(y, w, self._dies(True, y))
      if (fy is None or fx.cw != fy.cw or fx.wpos != fy.wpos
              or fx.s.aval.shape != fy.s.aval.shape):
        continue
      s = self.emit_prim(self.sum_ps[eqn.prim.name], [fx.s, fy.s], {})
      result = self.product(_Form(s, fx.w, fx.cw, fx.wpos), v)
      if (_same_type(result, v)
              and sum(map(_cost, self.out)) < sum(_cost(e) for e in set(self.dying))):
        return result
    return None


def share_factors(program: Program) -> Program:
  """Compute sums of products with a shared factor as one product (see the module
  docstring)."""
  if sum(e.prim.name == "dot_general" for e in program.eqns) < 2:
    return program
  subst = _Subst()
  factorer = _Factorer(program, subst)

  def shared(eqn, inputs):
    result = factorer.shared(eqn, inputs) if eqn.prim.name in ("add", "sub") else None
    if result is None:
      return None
    for new in factorer.out:
      factorer.producer[id(new.outputs[0])] = new
      factorer.uses[id(new.outputs[0])] = 1
    factorer.uses[id(result)] = factorer.uses.get(id(eqn.outputs[0]), 0)
    return factorer.out, result
  return _rewrite_each(program, subst, shared)
