"""Spec lines of the elementwise primitives (see tests/op_specs.py)."""
import numpy as np

from dfdx._src.ops import elementwise as ew
from tests.op_specs import BINARY_SHAPES, UNARY_SHAPES, Bool, Fixed, OpSpec


def unary(name, prim, fun, ref, domain=(-2.0, 2.0), **kw):
  return OpSpec(name, prim, fun, ref, UNARY_SHAPES, domain=domain, **kw)


def binary(name, prim, fun, ref, domain=(-2.0, 2.0), **kw):
  return OpSpec(name, prim, fun, ref, BINARY_SHAPES, domain=domain, **kw)


def _logistic(x):
  return 1 / (1 + np.exp(-x))


SPECS = [
    unary("neg", ew.neg_p, ew.neg, np.negative),
    binary("add", ew.add_p, ew.add, np.add),
    binary("sub", ew.sub_p, ew.sub, np.subtract),
    binary("mul", ew.mul_p, ew.mul, np.multiply),
    binary("div", ew.div_p, ew.div, np.true_divide, domain=[(-2.0, 2.0), (0.5, 2.0)]),
    binary("zmul", ew.zmul_p, ew.zmul, np.multiply),
    # Complex values inside real functions: forward and reverse must agree with finite
    # differences through the conjugating transposes.
    binary("complex", ew.complex_p, lambda x, y: ew.imag(ew.exp(ew.complex(x, y))),
           lambda x, y: np.imag(np.exp(x + 1j * y)), linear=False),
    binary("real", ew.real_p,
           lambda x, y: ew.real(ew.mul(ew.complex(x, y), ew.sin(ew.complex(y, x)))),
           lambda x, y: np.real((x + 1j * y) * np.sin(y + 1j * x)), linear=False),
    binary("imag", ew.imag_p,
           lambda x, y: ew.imag(ew.div(ew.log(ew.complex(x, y)), ew.complex(y, 2.0))),
           lambda x, y: np.imag(np.log(x + 1j * y) / (y + 2j)),
           domain=[(0.5, 2.0), (-2.0, 2.0)], linear=False),
    binary("conj", ew.conj_p,
           lambda x, y: ew.abs(ew.mul(ew.conj(ew.complex(x, y)), ew.sqrt(ew.complex(y, x)))),
           lambda x, y: np.abs(np.conj(x + 1j * y) * np.sqrt(y + 1j * x)),
           domain=[(0.5, 2.0), (0.5, 2.0)], linear=False),
    binary("zdiv", ew.zdiv_p, ew.zdiv, np.true_divide, domain=[(-2.0, 2.0), (0.5, 2.0)]),
    binary("pow", ew.pow_p, ew.pow, np.power, domain=[(0.5, 2.0), (-2.0, 2.0)]),
    binary("pow_negative_base_int_exponent", ew.pow_p, ew.pow, np.power,
           domain=[(-2.0, -0.5), Fixed(3.0)]),
    unary("integer_pow_2", ew.integer_pow_p, lambda x: ew.integer_pow(x, 2),
          lambda x: np.power(x, 2)),
    unary("integer_pow_3", ew.integer_pow_p, lambda x: ew.integer_pow(x, 3),
          lambda x: np.power(x, 3)),
    unary("integer_pow_0", ew.integer_pow_p, lambda x: ew.integer_pow(x, 0),
          lambda x: np.power(x, 0)),
    unary("integer_pow_neg2", ew.integer_pow_p, lambda x: ew.integer_pow(x, -2),
          lambda x: np.power(x, -2), domain=(0.5, 2.0)),
    unary("sqrt", ew.sqrt_p, ew.sqrt, np.sqrt, domain=(0.2, 2.0)),
    unary("cbrt", ew.cbrt_p, ew.cbrt, np.cbrt, domain=(0.2, 2.0)),
    unary("exp", ew.exp_p, ew.exp, np.exp),
    unary("exp2", ew.exp2_p, ew.exp2, np.exp2),
    unary("expm1", ew.expm1_p, ew.expm1, np.expm1),
    unary("log", ew.log_p, ew.log, np.log, domain=(0.2, 2.0)),
    unary("log2", ew.log2_p, ew.log2, np.log2, domain=(0.2, 2.0)),
    unary("log10", ew.log10_p, ew.log10, np.log10, domain=(0.2, 2.0)),
    unary("log1p", ew.log1p_p, ew.log1p, np.log1p, domain=(-0.5, 2.0)),
    unary("logistic", ew.logistic_p, ew.logistic, _logistic, domain=(-4.0, 4.0)),
    binary("logaddexp", ew.logaddexp_p, ew.logaddexp, np.logaddexp),
    unary("sin", ew.sin_p, ew.sin, np.sin, domain=(-3.0, 3.0)),
    unary("cos", ew.cos_p, ew.cos, np.cos, domain=(-3.0, 3.0)),
    unary("tan", ew.tan_p, ew.tan, np.tan, domain=(-1.2, 1.2)),
    unary("arcsin", ew.arcsin_p, ew.arcsin, np.arcsin, domain=(-0.8, 0.8)),
    unary("arccos", ew.arccos_p, ew.arccos, np.arccos, domain=(-0.8, 0.8)),
    unary("arctan", ew.arctan_p, ew.arctan, np.arctan),
    unary("sinh", ew.sinh_p, ew.sinh, np.sinh),
    unary("cosh", ew.cosh_p, ew.cosh, np.cosh),
    unary("tanh", ew.tanh_p, ew.tanh, np.tanh),
    unary("arcsinh", ew.arcsinh_p, ew.arcsinh, np.arcsinh),
    unary("arccosh", ew.arccosh_p, ew.arccosh, np.arccosh, domain=(1.2, 3.0)),
    unary("arctanh", ew.arctanh_p, ew.arctanh, np.arctanh, domain=(-0.8, 0.8)),
    binary("arctan2", ew.arctan2_p, ew.arctan2, np.arctan2, domain=(0.3, 2.0)),
    binary("hypot", ew.hypot_p, ew.hypot, np.hypot, domain=(0.3, 2.0)),
    unary("abs", ew.abs_p, ew.abs, np.abs, domain=(0.1, 2.0)),
    unary("abs_negative", ew.abs_p, ew.abs, np.abs, domain=(-2.0, -0.1)),
    unary("sign", ew.sign_p, ew.sign, np.sign),
    unary("stop_gradient", ew.stop_gradient_p, ew.stop_gradient, lambda x: x,
          grad=False),  # zero derivative by definition; tested in test_core.py
    unary("floor", ew.floor_p, ew.floor, np.floor),
    unary("ceil", ew.ceil_p, ew.ceil, np.ceil),
    unary("trunc", ew.trunc_p, ew.trunc, np.trunc),
    unary("round", ew.round_p, lambda x: ew.round(x, 1), lambda x: np.round(x, 1)),
    binary("floor_divide", ew.floor_divide_p, ew.floor_divide, np.floor_divide,
           domain=[(-2.0, 2.0), (0.5, 2.0)]),
    binary("rem", ew.rem_p, ew.rem, np.remainder, domain=[(0.1, 0.9), (1.0, 2.0)]),
    binary("maximum", ew.maximum_p, ew.maximum, np.maximum),
    binary("minimum", ew.minimum_p, ew.minimum, np.minimum),
    binary("fmax", ew.fmax_p, ew.fmax, np.fmax),
    binary("fmin", ew.fmin_p, ew.fmin, np.fmin),
    binary("eq", ew.eq_p, ew.eq, np.equal),
    binary("ne", ew.ne_p, ew.ne, np.not_equal),
    binary("lt", ew.lt_p, ew.lt, np.less),
    binary("le", ew.le_p, ew.le, np.less_equal),
    binary("gt", ew.gt_p, ew.gt, np.greater),
    binary("ge", ew.ge_p, ew.ge, np.greater_equal),
    binary("logical_and", ew.logical_and_p, ew.logical_and_p.bind, np.logical_and,
           domain=[Bool(), Bool()]),
    binary("logical_or", ew.logical_or_p, ew.logical_or_p.bind, np.logical_or,
           domain=[Bool(), Bool()]),
    binary("logical_xor", ew.logical_xor_p, ew.logical_xor_p.bind, np.logical_xor,
           domain=[Bool(), Bool()]),
    unary("logical_not", ew.logical_not_p, ew.logical_not_p.bind, np.logical_not,
          domain=Bool()),
    unary("isnan", ew.isnan_p, ew.isnan_p.bind, np.isnan),
    unary("isfinite", ew.isfinite_p, ew.isfinite_p.bind, np.isfinite),
    unary("isinf", ew.isinf_p, ew.isinf_p.bind, np.isinf),
    OpSpec("select", ew.select_p, ew.select, np.where,
           [((), (), ()), ((3,), (3,), (3,)), ((2, 3), (2, 3), (2, 3)), ((2, 1), (1, 3), (3,)),
            ((0, 3), (3,), ()), ((2, 3), (), (2, 3))],
           domain=[Bool(), (-2.0, 2.0), (-2.0, 2.0)]),
]
