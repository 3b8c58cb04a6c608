"""Division by the gaps of a spectrum: the factor 1 / (w_j - w_i) of eigenvector and
singular-vector derivatives, as one primitive so that a tie can be resolved exactly.

`gap_div(x, gap, tol)` is x / gap, and 0 where |gap| <= tol (a tie to working precision).
The 0 keeps every derivative finite. For a function that does not depend on the basis
chosen inside a repeated eigenspace (sum((V * w) @ V.T), a matrix function), the true value
at a tie is a limit: the cotangent reaching the tie vanishes with the gap, and the
derivative is the ratio of their rates, which no rule sees from one cotangent.

How dfdx gets that limit (`ad.recompute_if_nan` runs it when a reverse pass met a tie with a
nonzero cotangent): the derivative is computed once more with the spectrum split by an
infinitesimal, w + t delta with distinct delta_i (`ad.split_value`: a forward-mode tracer of
t at t = 0 whose tangent is delta). For a function that does not depend on the basis, the
split function is the same function of a nearby matrix with distinct eigenvalues, whose
derivative is continuous in t. At t = 0 the cotangent x and the gap both vanish at a tie, and
`gap_div`'s rule under the split (`ad.split_rules`) returns their ratio of rates,
d x / dt over d gap / dt: l'Hopital's rule, exact.

Where: eager reverse passes, batched or not (the outermost transformation reruns), and jit,
whose compiled reverse pass notes ties (`noted_gap_div`) so that the call is computed again
without jit. Forward mode cannot split (its tangent at a tie is infinite until a later
operation cancels the gap), and a spectrum computed under an enclosing derivative or jit
does not split: those keep the 0, finite but not exact at a tie.
"""
from __future__ import annotations

import numpy as np

from dfdx._src import ad, batching, core
from dfdx._src.core import ShapedArray
from dfdx._src.ops import elementwise as ew, shape as shape_ops

gap_div_p = core.primitive("gap_div")


def gap_div(x, gap, tol, *, difference=False, cotangent=False):
  """x / gap (NumPy broadcasting), 0 where |gap| <= tol. Linear in x; `tol` is a constant.
  `difference`: gap is a matrix of differences w_j - w_i, whose diagonal is 0 by
  construction. `cotangent` marks the division of a reverse pass (whose ties are counted,
  see `_note_ties`)."""
  return gap_div_p.bind(x, gap, tol, difference=bool(difference), cotangent=bool(cotangent))


def _impl(x, gap, tol, *, difference, cotangent):
  tie = np.abs(gap) <= tol
  if cotangent and not core.context.zero_absorbing:
    _note_ties(tie, difference)
  return np.where(tie, 0, x / np.where(tie, 1, gap))


def noted_gap_div(x, gap, tol, difference):
  """The division of a reverse pass, as code compiled by jit runs it (ties noted)."""
  return _impl(x, gap, tol, difference=difference, cotangent=True)


def _abstract_eval(x, gap, tol, *, difference, cotangent):
  shape = ew.broadcast_shapes(x.shape, gap.shape, tol.shape)
  return ShapedArray(shape, np.result_type(x.dtype, gap.dtype))


def _jvp(primals, tangents, **params):
  x, gap, tol = primals
  x_dot, gap_dot, _ = tangents
  out = gap_div(x, gap, tol, **params)
  parts = []
  if x_dot is not None:
    parts.append(gap_div(x_dot, gap, tol, **params))
  if gap_dot is not None:  # d(x / gap) = -(x / gap) dgap / gap
    parts.append(ew.neg(gap_div(ew.mul(out, gap_dot), gap, tol, **params)))
  if not parts:
    return out, None
  tangent = parts[0] if len(parts) == 1 else ew.add(*parts)
  shape = core.shape_of(out)
  return out, tangent if core.shape_of(tangent) == shape else shape_ops.broadcast_to(tangent,
                                                                                    shape)


def _transpose(ct, x, gap, tol, *, difference, cotangent):
  return [ew._unbroadcast(gap_div(ct, gap, tol, difference=difference, cotangent=True), x),
          None, None]


def _note_ties(tie, difference):
  """Count a reverse pass that met a tie (not on the diagonal of a difference, which the
  split leaves 0): the derivative is then computed again with the spectrum split (see the
  module docstring). The cotangent's value at the tie tells nothing: it vanishes there
  whenever the derivative is a limit, which is its rate."""
  if difference:
    tie = tie & ~np.eye(tie.shape[-1], dtype=bool)
  if tie.any():
    core.context.ties_met += 1


def _split_rule(primals, tangents, **params):
  """`gap_div` where the gap's tangent is the split (t): at a tie, x and the gap both vanish
  at t = 0 and x / gap is the ratio of their rates (l'Hopital). Diagonal entries of a
  difference, whose split gap stays 0, stay 0. The tangent at a tie would need second
  rates; it is 0 there (only the value at t = 0 is used)."""
  x, gap, tol = primals
  x_dot, gap_dot, _ = tangents
  out, tangent = _jvp(primals, tangents, **params)
  if gap_dot is None:
    return out, tangent
  if x_dot is None:  # x does not move with t: its rate is 0
    rate = np.zeros((), core.get_aval(out).dtype)
  else:
    rate = gap_div(x_dot, gap_dot, np.zeros((), core.get_aval(tol).dtype))
  return ew.select(ew.le(ew.abs(gap), tol), rate, out), tangent


gap_div_p.def_impl(_impl)
gap_div_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[gap_div_p] = _jvp
ad.primitive_transposes[gap_div_p] = _transpose
ad.split_rules[gap_div_p] = _split_rule
ad.complex_rules.add(gap_div_p)  # the gaps are real: x / gap is complex-linear in x
batching.defbroadcasting(gap_div_p)
