"""The primitives, one module per family. Importing this package registers all of them."""
from dfdx._src.ops import shape, reduction, elementwise  # noqa: F401  (shape first)
from dfdx._src.ops import indexing, contraction, linalg, special, sorting  # noqa: F401
from dfdx._src.ops import fft, gaps, control_flow, branches, checks  # noqa: F401

from dfdx._src import ad as _ad, core as _core  # noqa: E402

# Primitives whose rules hold for complex values (checked in tests/test_complex.py): the
# structural and linear ones, the holomorphic elementwise functions with conjugating
# transposes, and those with zero derivatives (NumPy orders complex values lexicographically,
# and rounds their parts: piecewise constant). Others raise MissingRuleError when
# differentiated at a complex operand.
_ad.complex_rules.update(
    p for p in _core.all_primitives.values() if p.name in {
        "neg", "add", "sub", "mul", "div", "zmul", "zdiv", "integer_pow", "pow", "sqrt", "exp",
        "log", "expm1", "log1p", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arcsin",
        "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "abs", "real", "imag", "conj",
        "complex", "select", "stop_gradient", "broadcast_to", "reshape", "transpose",
        "concatenate", "pad", "slice", "rev", "convert_element_type", "gather", "scatter_add",
        "scatter", "reduce_sum", "cumsum", "dot_general", "eq", "ne", "lt", "le", "gt", "ge",
        "round", "argmax", "argmin", "argsort", "sort", "partition", "argpartition", "isnan",
        "isfinite", "isinf", "searchsorted", "logical_and", "logical_or", "logical_xor",
        "logical_not", "solve", "fft", "eig", "det", "adjugate", "slogdet", "cholesky", "qr",
        "eigh", "svd", "pinv", "lstsq"})

# Elementwise primitives with only a JVP rule get a VJP rule from it (see elementwise.py).
elementwise.derive_vjps()
