"""Exception classes of dfdx, and `warn_at_user` (a warning pointing at the user's line).

Each class subclasses the built-in exception a user would catch (`TypeError`, `ValueError`, ...)
so that existing `except` clauses keep working, and its docstring shows a failing example and
the fix. Messages say where (the transformation or primitive), what was received, what was
expected and how to fix it.
"""
import os
import sys
import warnings


class DfdxError(Exception):
  """Base class of every error dfdx raises on purpose."""


class NonScalarOutputError(DfdxError, TypeError):
  """`grad` of a function whose output is not a scalar.

  >>> dfdx.grad(lambda x: x * 2)(np.ones(3))        # doctest: +SKIP
  NonScalarOutputError: grad: f must return a scalar, but it returned float64[3] ...

  Fix: reduce the output (`.sum()`), or use `vector_grad` (gradient of the sum) or
  `jacobian` / `jacrev` for the full derivative.
  """


class ArgnumsError(DfdxError, ValueError):
  """`argnums` names a positional argument the call does not have, or `wrt` names a parameter
  the function does not have.

  >>> dfdx.grad(lambda x: x, argnums=1)(1.0)          # doctest: +SKIP
  ArgnumsError: grad: argnums=1 is out of range: f was called with 1 positional argument ...
  """


class NonDifferentiableInputError(DfdxError, TypeError):
  """A differentiated argument holds something that is not a real number array.

  >>> dfdx.grad(lambda s: 1.0)("text")                # doctest: +SKIP
  NonDifferentiableInputError: grad: cannot differentiate with respect to argument 0 ...

  Fix: differentiate only numeric arguments (choose them with `argnums` or `wrt`), or mark the
  field static.
  """


class AxisSizeError(DfdxError, ValueError):
  """`vmap` was given mapped arguments whose mapped axes have different sizes.

  >>> dfdx.vmap(lambda a, b: a + b)(np.ones(3), np.ones(4))   # doctest: +SKIP
  AxisSizeError: vmap got inconsistent sizes for the mapped axis: ...
  """


class EscapedTracerError(DfdxError, RuntimeError):
  """A traced value was used after the transformation that created it had ended, for example
  one stored in a global variable from inside `grad` and used afterwards.

  Fix: return the value from the transformed function instead of storing it.
  """

  def __init__(self, description):
    super().__init__(
        f"A traced value ({description}) was used after the transformation that created it "
        "had ended. Traced values are only valid inside the function being transformed; "
        "return them from that function instead of storing them elsewhere.")


class ConcretizationError(DfdxError, TypeError):
  """A traced value was used where Python needs a concrete value (`if`, `bool`, `float`),
  under a transformation that has no concrete value for it (vmap, jit), or where converting
  would silently drop its derivative (`float()` under grad).

  >>> dfdx.vmap(lambda x: x if x > 0 else -x)(np.ones(3))     # doctest: +SKIP
  ConcretizationError: bool() (an `if` or `while` on an array) needs a concrete value ...

  Fix: use `dfdx.numpy.where(x > 0, x, -x)`.
  """


class TracerArrayConversionError(DfdxError, TypeError):
  """`numpy.asarray` (or another plain-NumPy conversion) of a traced value.

  Fix: use the functions of `dfdx.numpy` on traced values.
  """


class MissingRuleError(DfdxError, NotImplementedError):
  """A primitive has no rule for a transformation (not implemented, as opposed to
  mathematically undefined)."""


class PytreeError(DfdxError, ValueError):
  """Two pytrees that must have the same structure do not, or a pytree is malformed.

  The message names the key path of the first difference, e.g. `['params'][0]`.
  """


class InvalidInputError(DfdxError, TypeError):
  """A primitive or transformation received a value of a type it cannot use."""


class NaNError(DfdxError, FloatingPointError):
  """While `dfdx.debug_nans` is on: an operation produced a NaN from inputs that held none,
  in the forward computation or in a derivative rule.

  >>> with dfdx.debug_nans():                         # doctest: +SKIP
  ...   dfdx.grad(lambda x: dnp.sqrt(x) - dnp.sqrt(x))(0.0)
  NaNError: debug_nans: `add` produced a NaN from inputs free of NaN, in reverse mode, adding
  up the cotangents that reach an input of `sqrt` (... inf - inf), for the operation at ...

  The message names the primitive, the rule it ran in, the user's line of the forward
  operation, and the inputs. So do the attributes: `primitive`; `context`, one of "forward",
  "jvp" (a JVP rule), "vjp" (a reverse-mode rule), "sum" (adding up cotangents in reverse
  mode) or "linear" (a linearized derivative applied); `derivative_of`, the primitive whose
  rule it was (or None); `source`, "file:line (function)"; and `code`, the text of that line.

  Fix: keep the input inside the function's domain, or guard it with `dnp.where` and a safe
  value before the operation (the double-where pattern).
  """

  def __init__(self, message, *, primitive=None, context=None, derivative_of=None,
               source=None, code=None):
    super().__init__(message)
    self.primitive, self.context, self.derivative_of = primitive, context, derivative_of
    self.source, self.code = source, code


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def warn_at_user(message, category=RuntimeWarning):
  """`warnings.warn`, pointing at the first caller outside dfdx (the user's line; dfdx's
  compiled code, "<dfdx ...>", is dfdx's too)."""
  frame, level = sys._getframe(1), 2
  while frame is not None and frame.f_code.co_filename.startswith((_PACKAGE, "<dfdx")):
    frame, level = frame.f_back, level + 1
  warnings.warn(message, category, stacklevel=level)
