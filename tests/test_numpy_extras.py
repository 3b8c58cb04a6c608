"""The rest of autograd.numpy's API in dfdx.numpy (dfdx/_src/numpy/extras.py and its modules
sorting, statistics, floating, numerical) against NumPy, one table line per use (HIPS
autograd's test_systematic): values and dtypes on traced inputs (under vmap, against the
stacked per-row results, and under jvp), NumPy's own result with no traced input, and
`check_grads(order=2)` in each differentiable argument away from ties and kinks.

Then what a table line cannot say: NaN slices (NumPy's values and warnings, finite
derivatives that are zero at NaN entries), ties in sort, functions that need concrete values
(unique, set functions, trim_zeros: ConcretizationError under vmap), r_/c_, piecewise, errors,
in-place functions, jit, and coverage of autograd.numpy's names.
"""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from dfdx._src.numpy import extras
from tests.test_numpy_elementwise import assert_same, check_traced, check_untraced, sample


def R(*shape, lo=-2.0, hi=2.0, seed=0):
  return sample(shape, (lo, hi), seed=seed)


class C:
  """A table line: `np_fun(*args)` against `dnp_fun(*args)`; `diff` are the positions of the
  differentiated arguments (default: the floating arrays; () for no derivative check)."""

  def __init__(self, name, *args, kw=None, diff=None, np_fun=None, dnp_fun=None, id=""):
    kw = kw or {}
    self.name, self.args = name, args
    self.np_fun = np_fun or (lambda *a: getattr(np, name)(*a, **kw))
    self.dnp_fun = dnp_fun or (lambda *a: getattr(dnp, name)(*a, **kw))
    self.diff = tuple(i for i, a in enumerate(args) if isinstance(a, np.ndarray)
                      and a.dtype.kind == "f") if diff is None else diff
    self.id = f"{name}{'-' + id if id else ''}"

  def param(self):
    return pytest.param(self, id=self.id)


X, Y = R(3, 4, seed=1), R(3, 4, seed=2)
V5, W4 = R(5, seed=3), R(4, seed=4)
NAN = R(3, 4, 5, seed=5)
NAN[0, 1, :] = np.nan  # an all-NaN slice along the last axis
NAN[1, :, 2] = np.nan
NAN[2, 2, 3] = np.nan
PARTIAL_NAN = R(3, 4, seed=6)
PARTIAL_NAN[[0, 1, 2], [1, 3, 0]] = np.nan  # NaN in every row, but no all-NaN slice
XP, FP = np.array([-1.5, -0.2, 0.4, 1.1, 2.0]), R(5, seed=7)
SORTED = np.array([-1.0, 0.0, 0.0, 0.5, 2.0])
SPECIAL = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e-310, 3.0])
INTS = np.arange(12).reshape(3, 4) % 5 - 2
POS = R(3, 4, lo=0.5, hi=2.0, seed=8)

SORTING = [
    C("sort", X), C("sort", X, kw=dict(axis=0), id="axis0"),
    C("sort", X, kw=dict(axis=None), id="flat"), C("sort", INTS, id="int"),
    C("sort", X, kw=dict(kind="stable"), id="stable"),
    C("sort", np.array([[1.0, np.nan, -1.0]]), id="nan", diff=()),
    C("argsort", X, diff=()), C("argsort", X, kw=dict(axis=None), id="flat", diff=()),
    C("partition", R(2, 6), 2), C("partition", R(2, 6), (0, 4), id="kths"),
    C("partition", R(5, 2), -1, kw=dict(axis=0), id="axis0"),
    C("argpartition", R(2, 6), 3, diff=()),
    C("lexsort", X, INTS, np_fun=lambda a, b: np.lexsort((a, b)),
      dnp_fun=lambda a, b: dnp.lexsort((a, b)), diff=()),
    C("searchsorted", X, np_fun=lambda v: np.searchsorted(SORTED, v),
      dnp_fun=lambda v: dnp.searchsorted(SORTED, v), diff=()),
    C("searchsorted", X, np_fun=lambda v: np.searchsorted(SORTED, v, "right"),
      dnp_fun=lambda v: dnp.searchsorted(SORTED, v, "right"), id="right", diff=()),
    C("isin", INTS, np_fun=lambda a: np.isin(a, [0, 2]), dnp_fun=lambda a: dnp.isin(a, [0, 2])),
]

STATISTICS = [
    C("median", X), C("median", R(4, 5), kw=dict(axis=1), id="axis1"),
    C("median", R(3, 4, 5), kw=dict(axis=(0, 2), keepdims=True), id="axes"),
    C("median", NAN, kw=dict(axis=-1), id="nan", diff=()), C("median", INTS, id="int"),
    C("nanmedian", NAN, kw=dict(axis=2), id="all-nan", diff=()),
    C("nanmedian", PARTIAL_NAN, kw=dict(axis=0), id="nan"),
    C("nanmedian", PARTIAL_NAN, kw=dict(axis=1, keepdims=True), id="even-odd"),
    C("quantile", X, 0.3), C("quantile", X, np.array([0.1, 0.5, 1.0]), kw=dict(axis=1),
                             id="q-array", diff=(0,)),
    C("quantile", R(3, 4, 5), 0.7, kw=dict(axis=(0, 2), method="hazen"), id="hazen"),
    C("quantile", X, 0.4, kw=dict(axis=0, method="midpoint"), id="midpoint"),
    C("quantile", X, 0.4, kw=dict(axis=0, method="nearest"), id="nearest"),
    C("quantile", X.astype(np.float32), 0.3, kw=dict(axis=0), id="f32", diff=()),
    C("quantile", INTS, 1, id="int-q", diff=()),
    C("quantile", np.array([0.6, 0.2]), np_fun=lambda q: np.quantile(X, q, axis=1),
      dnp_fun=lambda q: dnp.quantile(X, q, axis=1), id="in-q"),
    C("percentile", X, 30.0, kw=dict(axis=1)),
    C("percentile", np.array([20.0, 70.0]), np_fun=lambda q: np.percentile(X, q),
      dnp_fun=lambda q: dnp.percentile(X, q), id="in-q"),
    C("nanquantile", NAN, 0.3, kw=dict(axis=2), id="all-nan", diff=()),
    C("nanquantile", PARTIAL_NAN, 0.3, kw=dict(axis=1)),
    C("nanquantile", PARTIAL_NAN, np.array([0.25, 0.8]), kw=dict(axis=1, method="weibull"),
      id="weibull", diff=(0,)),
    C("nanpercentile", PARTIAL_NAN, 40.0, kw=dict(axis=0)),
    C("quantile", X, np.array([0.1, 0.7]), kw=dict(axis=1, weights=POS[0], method="inverted_cdf"),
      id="weights", diff=(0,)),
    C("quantile", POS, np_fun=lambda w: np.quantile(X, 0.4, weights=w, method="inverted_cdf"),
      dnp_fun=lambda w: dnp.quantile(X, 0.4, weights=w, method="inverted_cdf"),
      id="traced-weights", diff=()),
    C("nanpercentile", PARTIAL_NAN, 60.0, kw=dict(axis=0, weights=POS, method="inverted_cdf"),
      id="weights"),
    C("nansum", NAN, kw=dict(axis=2)), C("nansum", PARTIAL_NAN, id="all"),
    C("nanprod", PARTIAL_NAN, kw=dict(axis=1)), C("nanmean", NAN, kw=dict(axis=(0, 2))),
    C("nanmean", NAN, kw=dict(axis=2, keepdims=True), id="all-nan", diff=()),
    C("nanvar", PARTIAL_NAN, kw=dict(axis=1, ddof=1)),
    C("nanvar", NAN, kw=dict(axis=2), id="all-nan", diff=()),
    C("nanstd", PARTIAL_NAN, kw=dict(axis=0)), C("nanstd", INTS, id="int"),
    C("nanmin", NAN, kw=dict(axis=2), diff=()), C("nanmin", PARTIAL_NAN, id="partial"),
    C("nanmax", PARTIAL_NAN, kw=dict(axis=1)),
    C("nanmax", NAN, kw=dict(axis=2, initial=-5.0), id="initial"),
    C("nanargmin", PARTIAL_NAN, kw=dict(axis=1), diff=()),
    C("nanargmax", PARTIAL_NAN, diff=()),
    C("nancumsum", PARTIAL_NAN, kw=dict(axis=1)), C("nancumprod", PARTIAL_NAN),
]

FLOATING = [
    C("copysign", X, Y), C("copysign", SPECIAL, SPECIAL[::-1], id="special", diff=()),
    C("copysign", INTS, 1.5, id="int"), C("signbit", SPECIAL, diff=()),
    C("heaviside", X, Y), C("heaviside", SPECIAL, 0.5, id="special", diff=()),
    C("fmod", X, R(3, 4, lo=0.6, hi=2.0, seed=9)), C("fmod", INTS, 3, id="int"),
    C("ldexp", X, INTS), C("ldexp", X.astype(np.float32), 3, id="f32"),
    C("frexp", X), C("frexp", SPECIAL, id="special", diff=()), C("modf", X * 3),
    C("modf", SPECIAL, id="special", diff=()), C("spacing", X, diff=()),
    C("nextafter", X, 0.0), C("sinc", X), C("sinc", np.array([0.0, 1.0, -2.0]), id="zero",
                                            diff=()),
    C("i0", R(6, lo=-12.0, hi=12.0)), C("i0", INTS, id="int"),
    C("nan_to_num", SPECIAL, diff=()), C("nan_to_num", X),
    C("nan_to_num", SPECIAL, kw=dict(nan=-1.0, posinf=9.0), id="values", diff=()),
    C("real_if_close", X), C("isreal", X, diff=()), C("iscomplex", X, diff=()),
    C("isrealobj", X, diff=()), C("iscomplexobj", X, diff=()),
    C("angle", SPECIAL, kw=dict(deg=True), diff=()), C("unwrap", X * 4),
    C("unwrap", R(3, 6, seed=10) * 4, kw=dict(axis=0, period=5.0), id="period"),
    C("isposinf", SPECIAL, diff=()), C("isneginf", SPECIAL, diff=()),
    C("allclose", X, X + 1e-9, diff=()), C("array_equal", X, X, diff=()),
    C("array_equiv", X, X[0], diff=()),
]

with warnings.catch_warnings():
  warnings.simplefilter("ignore", DeprecationWarning)
  NUMERICAL = [
      C("cross", R(4, 3), R(4, 3, seed=1)), C("cross", R(3), R(2, 3, seed=1), id="bcast"),
      C("cross", R(3, 4), R(4, 3, seed=1), kw=dict(axisa=0, axisc=0), id="axes"),
      C("cross", R(3, 2), R(3, 2, seed=1), kw=dict(axis=0), id="axis"),
      C("convolve", V5, R(3)), C("convolve", R(3), V5, kw=dict(mode="same"), id="same"),
      C("convolve", V5, W4, kw=dict(mode="valid"), id="valid"),
      C("correlate", V5, R(3)), C("correlate", W4, V5, kw=dict(mode="full"), id="full"),
      C("correlate", R(6), W4, kw=dict(mode="same"), id="same"),
      C("interp", R(7) * 1.5, FP, np_fun=lambda x, fp: np.interp(x, XP, fp),
        dnp_fun=lambda x, fp: dnp.interp(x, XP, fp)),
      C("interp", R(7) * 3, FP, np_fun=lambda x, fp: np.interp(x, XP, fp, -4.0, period=2.5),
        dnp_fun=lambda x, fp: dnp.interp(x, XP, fp, -4.0, period=2.5), id="period"),
      C("interp", np.array([-2.0, 2.0, 2.5, np.nan]), np_fun=lambda x: np.interp(x, XP, FP, 5.0),
        dnp_fun=lambda x: dnp.interp(x, XP, FP, 5.0), id="ends", diff=()),
      C("trapezoid", X), C("trapezoid", X, np.sort(R(3, seed=2)), kw=dict(axis=0), id="x"),
      C("trapezoid", X, 0.5, np_fun=lambda y, dx: np.trapezoid(y, dx=dx),
        dnp_fun=lambda y, dx: dnp.trapezoid(y, dx=dx), id="dx"),
      C("cov", R(3, 6)), C("cov", R(6, 2), kw=dict(rowvar=False, ddof=0), id="cols"),
      C("cov", R(2, 6), R(6, seed=1), id="y"),
      C("cov", R(3, 6), np.abs(R(6, seed=2)) + 0.5,
        np_fun=lambda m, a: np.cov(m, aweights=a, fweights=np.array([1, 2, 1, 1, 3, 1])),
        dnp_fun=lambda m, a: dnp.cov(m, aweights=a, fweights=np.array([1, 2, 1, 1, 3, 1])),
        id="weights"),
      C("corrcoef", R(3, 6)), C("corrcoef", R(6), R(6, seed=1), id="y"),
      C("histogram", R(20), kw=dict(bins=4), diff=()),
      C("histogram", R(20), kw=dict(bins=np.array([-1.0, 0.0, 0.5, 2.0]), density=True),
        id="edges", diff=()),
      C("histogram", np.abs(R(20, seed=1)), np_fun=lambda w: np.histogram(V20, 4, weights=w),
        dnp_fun=lambda w: dnp.histogram(V20, 4, weights=w), id="weights"),
      C("bincount", R(4), np_fun=lambda w: np.bincount(np.array([0, 3, 1, 3]), w, 6),
        dnp_fun=lambda w: dnp.bincount(np.array([0, 3, 1, 3]), w, 6)),
      C("digitize", X, np.array([-1.0, 0.0, 0.5]), diff=()),
      C("digitize", X, np.array([0.5, 0.0, -1.0]), kw=dict(right=True), id="decreasing",
        diff=()),
      C("ediff1d", X), C("ediff1d", V5, np.array([1.0, 2.0]),
                         np_fun=lambda a, b: np.ediff1d(a, to_begin=b, to_end=3.0),
                         dnp_fun=lambda a, b: dnp.ediff1d(a, to_begin=b, to_end=3.0), id="ends"),
      C("vander", W4), C("vander", W4, kw=dict(N=3, increasing=True), id="N"),
      C("vander", np.arange(3), id="int"),
      C("polyval", W4, X), C("polyval", np.arange(3), X, id="int-p"),
      C("polyfit", R(8), np_fun=lambda y: np.polyfit(np.linspace(-1, 1, 8), y, 2),
        dnp_fun=lambda y: dnp.polyfit(np.linspace(-1, 1, 8), y, 2)),
      C("polyfit", R(8, 2), np_fun=lambda y: np.polyfit(np.linspace(-1, 1, 8), y, 3, cov=True),
        dnp_fun=lambda y: dnp.polyfit(np.linspace(-1, 1, 8), y, 3, cov=True), id="cov"),
      C("polyadd", R(3), V5), C("polysub", V5, R(2)), C("polymul", R(3), W4),
      C("polydiv", V5, R(2, lo=0.5)), C("polyder", V5, kw=dict(m=2)),
      C("polyint", W4, np.array([1.0, -1.0]),
        np_fun=lambda p, k: np.polyint(p, 2, k), dnp_fun=lambda p, k: dnp.polyint(p, 2, k)),
      C("poly", R(3)),
      C("cumulative_sum", X, kw=dict(axis=1, include_initial=True)),
      C("cumulative_prod", V5), C("vecdot", X, W4), C("vecdot", X, Y, kw=dict(axis=0), id="axis"),
      C("matvec", R(2, 3, 4), W4), C("vecmat", R(3), R(2, 3, 4)),
  ]
V20 = R(20, seed=11)

BUILDING = [
    C("r_", R(3), R(2, seed=1), np_fun=lambda a, b: np.r_[a, 0.0, b, 1:3],
      dnp_fun=lambda a, b: dnp.r_[a, 0.0, b, 1:3]),
    C("r_", R(3), R(3, seed=1), np_fun=lambda a, b: np.r_["0,2,0", a, b],
      dnp_fun=lambda a, b: dnp.r_["0,2,0", a, b], id="directive"),
    C("c_", R(3), R(3, 2, seed=1), np_fun=lambda a, b: np.c_[a, b, a],
      dnp_fun=lambda a, b: dnp.c_[a, b, a]),
    C("select", X, np_fun=lambda a: np.select([a > 0.5, a < -0.5], [a, a ** 2], -1.0),
      dnp_fun=lambda a: dnp.select([a > 0.5, a < -0.5], [a, a ** 2], -1.0)),
    C("piecewise", X, np_fun=lambda a: np.piecewise(a, [a < 0], [lambda v: v ** 2, 1.5]),
      dnp_fun=lambda a: dnp.piecewise(a, [a < 0], [lambda v: v ** 2, 1.5])),
    C("choose", W4, R(4, seed=1), np_fun=lambda a, b: np.choose(np.array([0, 1, 1, 0]), [a, b]),
      dnp_fun=lambda a, b: dnp.choose(np.array([0, 1, 1, 0]), [a, b])),
    C("block", R(2, 2), R(2, 3, seed=1), np_fun=lambda a, b: np.block([[a, b], [b, a]]),
      dnp_fun=lambda a, b: dnp.block([[a, b], [b, a]])),
    C("diagflat", R(2, 2), kw=dict(k=1)), C("extract", V5, np_fun=lambda a: np.extract(
        np.array([1, 0, 1, 1, 0]), a), dnp_fun=lambda a: dnp.extract(np.array([1, 0, 1, 1, 0]), a)),
    C("resize", V5, (3, 4)), C("rollaxis", R(2, 3, 4), 2, kw=dict(start=1)),
    C("unstack", X, kw=dict(axis=1)),
    C("apply_along_axis", X, np_fun=lambda a: np.apply_along_axis(lambda v: v * v.sum(), 1, a),
      dnp_fun=lambda a: dnp.apply_along_axis(lambda v: v * v.sum(), 1, a)),
    C("apply_over_axes", R(2, 3, 4), np_fun=lambda a: np.apply_over_axes(np.sum, a, [0, 2]),
      dnp_fun=lambda a: dnp.apply_over_axes(dnp.sum, a, [0, 2])),
    C("geomspace", np.array(1.5), np.array(20.0), np_fun=lambda a, b: np.geomspace(a, b, 5),
      dnp_fun=lambda a, b: dnp.geomspace(a, b, 5)),
    C("geomspace", R(2, lo=-3, hi=-1), np_fun=lambda a: np.geomspace(a, -50.0, 4, axis=1),
      dnp_fun=lambda a: dnp.geomspace(a, -50.0, 4, axis=1), id="negative"),
    C("astype", X, np.float32, diff=()), C("matrix_transpose", R(2, 3, 4)),
    C("permute_dims", R(2, 3, 4), (2, 0, 1)), C("concat", X, Y,
                                                np_fun=lambda a, b: np.concat([a, b], axis=1),
                                                dnp_fun=lambda a, b: dnp.concat([a, b], axis=1)),
    C("vectorize", W4, 1.5, np_fun=np.vectorize(lambda a, b: np.where(a > 0, b * a, a ** 2)),
      dnp_fun=dnp.vectorize(lambda a, b: dnp.where(a > 0, b * a, a ** 2))),
]

TABLE = SORTING + STATISTICS + FLOATING + NUMERICAL + BUILDING
GRADS = [c for c in TABLE if c.diff]


@pytest.mark.parametrize("case", [c.param() for c in TABLE])
def test_values(case):
  check_traced(case.np_fun, case.dnp_fun, *case.args)
  check_untraced(case.np_fun, case.dnp_fun, *case.args)


@pytest.mark.parametrize("case", [c.param() for c in GRADS])
def test_grads(case):
  def f(*diff_args):
    args = list(case.args)
    for i, a in zip(case.diff, diff_args):
      args[i] = a
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      return case.dnp_fun(*args)
  check_grads(f, tuple(case.args[i] for i in case.diff), order=2)


# ---- coverage -------------------------------------------------------------------------------
ALIASES = {"acos": "arccos", "acosh": "arccosh", "asin": "arcsin", "asinh": "arcsinh",
           "atan": "arctan", "atanh": "arctanh", "atan2": "arctan2", "pow": "power",
           "bitwise_invert": "invert", "permute_dims": "transpose", "concat": "concatenate"}
TESTED_BELOW = {"unique", "unique_values", "unique_counts", "unique_inverse", "unique_all",
                "union1d", "intersect1d", "setdiff1d", "setxor1d", "sort_complex", "trim_zeros",
                "histogram_bin_edges", "histogram2d", "histogramdd", "einsum_path", "row_stack",
                "put", "place", "putmask", "copyto", "fill_diagonal", "put_along_axis",
                "asarray_chkfinite", "asfortranarray", "require", "isfortran"}


def test_every_function_is_tested():
  tested = {c.name for c in TABLE} | set(ALIASES) | TESTED_BELOW
  new = set(extras.__all__) - set(extras._REEXPORTED)
  assert new - tested == set()


def test_aliases_are_the_same_functions():
  for alias, name in ALIASES.items():
    assert getattr(dnp, alias) is getattr(dnp, name), alias


AUTOGRAD_INTERNALS = {"Box", "array_from_args", "builtins", "c_class", "concatenate_args",
                      "custom_where", "make_diagonal", "metadata", "notrace_functions",
                      "notrace_primitive", "numpy_boxes", "numpy_jvps", "numpy_version",
                      "numpy_vjps", "numpy_vspaces", "numpy_wrapper", "parse_einsum_input",
                      "primitive", "r_class", "test", "warnings", "wrap_if_boxes_inside",
                      "wrap_intdtype", "wrap_namespace",
                      "fft"}  # complex numbers: not yet


def test_autograd_numpy_names_are_all_here():
  anp = pytest.importorskip("autograd.numpy")
  names = {n for n in dir(anp) if not n.startswith("_")} - AUTOGRAD_INTERNALS
  assert sorted(n for n in names if not hasattr(dnp, n)) == []


# ---- sorting: ties, unique and the set functions ---------------------------------------------


def test_sort_ties_get_a_permutation_of_the_cotangent():
  x = np.array([1.0, 0.0, 1.0, 1.0, -2.0])
  w = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
  g = dfdx.grad(lambda x: dnp.sum(dnp.sort(x) * w))(x)
  assert sorted(g) == sorted(w)
  assert g[4] == 1.0 and g[1] == 10.0
  g = dfdx.grad(lambda x: dnp.sum(dnp.partition(x, 2) * w))(x)
  assert sorted(g) == sorted(w)


def test_sort_jvp_is_the_sorted_tangent():
  x, t = R(3, 5), R(3, 5, seed=1)
  _, tangent = dfdx.jvp(lambda x: dnp.sort(x, axis=1), (x,), (t,))
  assert_same(tangent, np.take_along_axis(t, np.argsort(x, axis=1), axis=1))


def _check_concrete_only(np_fun, dnp_fun, *args):
  """Values and derivatives under jvp (where the values are concrete), ConcretizationError
  under vmap."""
  check_untraced(np_fun, dnp_fun, *args)
  tangents = tuple(np.arange(np.size(a), dtype=float).reshape(np.shape(a)) for a in args)
  primal, _ = dfdx.jvp(dnp_fun, args, tangents)
  expected = np_fun(*args)
  for p, e in zip(*(v if isinstance(v, tuple) else (v,) for v in (primal, expected))):
    assert_same(p, e)
  with pytest.raises(dfdx.ConcretizationError, match="vmap"):
    dfdx.vmap(dnp_fun)(*[np.stack([a, a]) for a in args])


U = np.array([3.0, 1.0, 2.0, 1.0, 3.0, np.nan])


@pytest.mark.parametrize("kw", [{}, dict(return_index=True), dict(return_inverse=True),
                                dict(return_index=True, return_inverse=True, return_counts=True),
                                dict(equal_nan=False)], ids=str)
def test_unique(kw):
  _check_concrete_only(lambda a: np.unique(a, **kw), lambda a: dnp.unique(a, **kw), U)


@pytest.mark.parametrize("name", ["unique_values", "unique_counts", "unique_inverse",
                                  "unique_all"])
def test_unique_array_api(name):
  _check_concrete_only(getattr(np, name), getattr(dnp, name), U.reshape(2, 3))


def test_unique_along_an_axis_and_its_derivative():
  x = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0]])
  _check_concrete_only(lambda a: np.unique(a, axis=0), lambda a: dnp.unique(a, axis=0), x)
  # Each unique value carries the derivative of its first occurrence.
  jac = dfdx.jacrev(dnp.unique)(np.array([3.0, 1.0, 3.0]))
  assert_same(jac, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("name", ["union1d", "intersect1d", "setdiff1d", "setxor1d"])
def test_set_functions(name):
  a, b = np.array([3.0, 1.0, 2.0, 5.0]), np.array([2.0, 4.0, 3.0])
  _check_concrete_only(getattr(np, name), getattr(dnp, name), a, b)
  # Each value carries the tangent of its first occurrence, in a then in b.
  ta, tb = np.arange(4.0), 10 + np.arange(3.0)
  _, tangent = dfdx.jvp(getattr(dnp, name), (a, b), (ta, tb))
  both, values = list(np.concatenate([a, b])), getattr(np, name)(a, b)
  assert_same(tangent, np.concatenate([ta, tb])[[both.index(v) for v in values]])


def test_trim_zeros_and_extract_need_concrete_values():
  z = np.array([0.0, 0.0, 1.5, 0.0, 2.0, 0.0])
  for trim in ["fb", "f", "b"]:
    _check_concrete_only(lambda a: np.trim_zeros(a, trim), lambda a: dnp.trim_zeros(a, trim), z)
  z2 = np.zeros((4, 5))
  z2[1:3, 2] = 1.0
  for axis in [None, 0, 1]:
    _check_concrete_only(lambda a: np.trim_zeros(a, axis=axis),
                         lambda a: dnp.trim_zeros(a, axis=axis), z2)
  _check_concrete_only(lambda c: np.extract(c > 1, V5), lambda c: dnp.extract(c > 1, V5), z)


def test_interp_in_the_sample_points():
  xp = np.sort(R(3, 5, seed=12), axis=1)
  x = R(4, seed=13)
  out = dfdx.vmap(lambda p: dnp.interp(x, p, FP))(xp)
  assert_same(out, np.stack([np.interp(x, p, FP) for p in xp]))
  check_grads(lambda p, f: dnp.interp(x, p, f), (xp[0], FP), order=2)


@pytest.mark.parametrize("kw", [{}, dict(left=1j, right=-2.0), dict(period=3.0)])
def test_interp_of_complex_values(kw):
  # NumPy interpolates a complex fp's real and imaginary parts apart, and returns complex128
  fp = FP + 1j * R(5, seed=14)
  x = np.concatenate([R(6, lo=-3.0, hi=3.0, seed=15), XP])
  want = np.interp(x, XP, fp, **kw)
  got = dfdx.jit(lambda x, fp: dnp.interp(x, XP, fp, **kw))(x, fp)
  assert_same(got, want)
  assert_same(dfdx.vmap(lambda x: dnp.interp(x, XP, fp, **kw))(x), want)
  value, _ = dfdx.value_and_grad(lambda f: dnp.sum(dnp.abs(dnp.interp(x, XP, f, **kw))))(fp)
  np.testing.assert_allclose(value, np.sum(np.abs(want)), rtol=1e-12)
  parts = lambda x, re, im: (lambda v: dnp.concatenate([dnp.real(v), dnp.imag(v)]))(  # noqa: E731
      dnp.interp(x, XP, re + 1j * im, **kw))
  x_away = R(6, lo=-1.4, hi=1.9, seed=16)  # between the sample points
  check_grads(parts, (x_away, fp.real, fp.imag), order=2)


def test_complex_keys_sort_as_numpy_orders_them():
  # real part first, then imaginary part: lexsort and searchsorted under jit, vmap and grad
  rng = np.random.default_rng(3)
  z = np.round(rng.normal(size=(2, 7)) + 1j * rng.normal(size=(2, 7)))  # ties in both parts
  table = np.sort_complex(z[0])
  ints = rng.integers(0, 2, (2, 7))
  check_traced(lambda a, b: np.lexsort((a, b)), lambda a, b: dnp.lexsort((a, b)), z, ints)
  for side in ("left", "right"):
    check_traced(lambda v: np.searchsorted(table, v, side), lambda v: dnp.searchsorted(
        table, v, side), z)
    got = dfdx.vmap(lambda t, v: dnp.searchsorted(t, v, side), in_axes=(None, 0))(table, z)
    assert_same(got, np.searchsorted(table, z, side))
  # the index has zero derivative: the gradient of |v|^2 times it is 2 v times it
  counts = np.searchsorted(table, z[1])
  g = dfdx.grad(lambda v: dnp.sum(dnp.abs(v) ** 2 * dnp.searchsorted(table, v)))(z[1])
  np.testing.assert_allclose(g, 2 * z[1] * counts)


@pytest.mark.parametrize("name", ["unique", "unique_values", "union1d", "intersect1d",
                                  "setdiff1d", "setxor1d"])
def test_unique_and_set_functions_of_complex_values(name):
  # each distinct value carries the derivative of its first occurrence: of sum |u|^2, 2 z
  # there and 0 at later copies
  z = np.array([1 + 1j, 2j, 1 + 1j, 3 + 0j, 2j])
  other = np.array([2j, 5 + 0j])
  args = (z,) if name.startswith("unique") else (z, other)
  f = lambda z: dnp.sum(dnp.abs(getattr(dnp, name)(z, *args[1:])) ** 2)  # noqa: E731
  kept = np.isin(z, getattr(np, name)(*args)) & (np.arange(5) == [0, 1, 0, 3, 1])
  assert_same(getattr(dnp, name)(*args), getattr(np, name)(*args))
  assert_same(dfdx.grad(f)(z), np.where(kept, 2 * z, 0))


def test_lexsort_of_an_array_of_keys():
  check_traced(np.lexsort, dnp.lexsort, X[0])  # a 1-d array holds 0-d keys
  check_traced(np.lexsort, dnp.lexsort, X[:2])


def test_sort_complex_and_errors_follow_numpy():
  assert_same(dnp.sort_complex(np.array([2.0, 1.0])), np.sort_complex(np.array([2.0, 1.0])))
  for x in [np.array([[3.0, 1.0, 2.0], [0.0, -1.0, 5.0]]), np.array([[3, 1], [0, 2]], np.int16),
            np.array([[1 + 2j, 1 + 1j, -1j]] * 2, np.complex64)]:
    check_traced(np.sort_complex, dnp.sort_complex, x)  # (NumPy's complex width per dtype)
  # the real part of the sorted values: the derivative follows each value to its place
  g = dfdx.grad(lambda x: dnp.sort_complex(x).real @ np.arange(3.0))(np.array([3.0, 1.0, 2.0]))
  assert_same(g, np.array([2.0, 0.0, 1.0]))
  for call, error in [(lambda x: dnp.sort(x, kind="bad"), ValueError),
                      (lambda x: dnp.sort(x, order="f"), ValueError),
                      (lambda x: dnp.partition(x, 9), ValueError),
                      (lambda x: dnp.sort(x, axis=3), np.exceptions.AxisError),
                      (lambda x: dnp.searchsorted(x, 0.0, side="middle"), ValueError),
                      (lambda x: dnp.lexsort([x, x[:2]]), ValueError)]:
    with pytest.raises(error):
      call(np.ones(3))
    with pytest.raises(error):
      dfdx.grad(lambda x: dnp.sum(call(x)))(np.ones(3))


# ---- NaN slices: NumPy's values and warnings, finite derivatives ------------------------------
NAN_REDUCTIONS = ["nansum", "nanprod", "nanmean", "nanvar", "nanstd", "nanmin", "nanmax",
                  "nanmedian", "nancumsum", "nancumprod"]


@pytest.mark.parametrize("name", NAN_REDUCTIONS + ["nanquantile", "nanpercentile"])
def test_nan_functions_have_finite_derivatives_zero_at_nan(name):
  q = {"nanquantile": (0.3,), "nanpercentile": (30.0,)}.get(name, ())
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    for axis in [None, 1, 2]:
      g = dfdx.grad(lambda a: dnp.sum(getattr(dnp, name)(a, *q, axis=axis) ** 2))(NAN)
      assert np.all(np.isfinite(g)), (name, axis)
      assert np.all(g[np.isnan(NAN)] == 0), (name, axis)
      assert np.any(g != 0)


@pytest.mark.parametrize("name,message", [
    ("nanmean", "Mean of empty slice"), ("nanvar", "Degrees of freedom"),
    ("nanstd", "Degrees of freedom"), ("nanmin", "All-NaN slice"), ("nanmax", "All-NaN slice"),
    ("nanmedian", "All-NaN slice"), ("nanquantile", "All-NaN slice"),
    ("nanpercentile", "All-NaN slice")])
def test_all_nan_slices_warn_as_numpy_does(name, message):
  q = {"nanquantile": (0.5,), "nanpercentile": (50.0,)}.get(name, ())
  with pytest.warns(RuntimeWarning, match=message):
    expected = getattr(np, name)(NAN, *q, axis=2)
  with pytest.warns(RuntimeWarning, match=message):
    value, _ = dfdx.jvp(lambda a: getattr(dnp, name)(a, *q, axis=2), (NAN,), (NAN * 0 + 1,))
  assert_same(value, expected)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no warning where every slice has numbers
    dfdx.grad(lambda a: dnp.sum(getattr(dnp, name)(a, *q, axis=1)))(PARTIAL_NAN)


def test_nanargmin_of_an_all_nan_slice_raises_where_values_are_concrete():
  with pytest.raises(ValueError, match="All-NaN slice"):
    dfdx.grad(lambda a: dnp.sum(dnp.nanargmin(a, axis=2) * a[..., 0]))(NAN)


@pytest.mark.parametrize("name", ["nanargmin", "nanargmax"])
def test_nanarg_extremum_of_an_all_nan_slice_raises_under_jit_and_vmap(name):
  # the values are not known when the function is traced: the compiled code and the batch
  # check them when they are computed, and raise NumPy's error
  f = getattr(dnp, name)
  for g in (dfdx.jit(lambda a: f(a, axis=2)), dfdx.vmap(lambda a: f(a, axis=-1)),
            dfdx.jit(dfdx.vmap(lambda a: f(a, axis=1))),
            dfdx.jit(lambda a: f(a, axis=2, keepdims=True)), dfdx.jit(lambda a: f(a[0, 1]))):
    with pytest.raises(ValueError, match="All-NaN slice encountered"):
      g(NAN)
  # where every slice holds a number, NumPy's indices
  for kw in (dict(axis=1), dict(axis=0, keepdims=True), {}):
    want = getattr(np, name)(PARTIAL_NAN, **kw)
    assert_same(dfdx.jit(lambda a: f(a, **kw))(PARTIAL_NAN), want)
    assert_same(dfdx.jit(dfdx.vmap(lambda a: f(a, **kw)))(PARTIAL_NAN[None])[0], want)
  assert_same(dfdx.vmap(f)(PARTIAL_NAN), getattr(np, name)(PARTIAL_NAN, axis=1))
  namespace = {}
  exec(dfdx.export.to_source(lambda a: f(a, axis=1), PARTIAL_NAN, name="g"), namespace)
  assert_same(namespace["g"](PARTIAL_NAN), getattr(np, name)(PARTIAL_NAN, axis=1))
  with pytest.raises(ValueError, match="All-NaN slice encountered"):
    namespace["g"](NAN[0])


def test_median_and_quantile_of_nan_slices_are_nan():
  for f in [lambda a: dnp.median(a, axis=2), lambda a: dnp.quantile(a, 0.4, axis=2),
            lambda a: dnp.percentile(a, [10.0, 90.0], axis=1)]:
    g = dfdx.grad(lambda a: dnp.sum(dnp.nan_to_num(f(a))))(NAN)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("method", ["inverted_cdf", "averaged_inverted_cdf",
                                    "closest_observation", "interpolated_inverted_cdf", "hazen",
                                    "weibull", "linear", "median_unbiased", "normal_unbiased",
                                    "lower", "higher", "midpoint", "nearest"])
def test_every_quantile_method(method):
  q = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
  for a in [R(3, 7), INTS, NAN]:
    check_traced(lambda a: np.quantile(a, q, axis=1, method=method),
                 lambda a: dnp.quantile(a, q, axis=1, method=method), a)
    check_traced(lambda a: np.nanquantile(a, 0.3, axis=-1, method=method),
                 lambda a: dnp.nanquantile(a, 0.3, axis=-1, method=method), a)


def test_quantile_errors():
  for call, error in [(lambda x: dnp.quantile(x, 1.5), ValueError),
                      (lambda x: dnp.percentile(x, -1.0), ValueError),
                      (lambda x: dnp.quantile(x, 0.5, method="bad"), ValueError),
                      (lambda x: dnp.quantile(x[:0], 0.5), IndexError)]:
    with pytest.raises(error):
      call(np.ones(3))
    with pytest.raises(error):
      dfdx.grad(lambda x: dnp.sum(call(x)))(np.ones(3))


# ---- elementwise special points ---------------------------------------------------------------


def test_special_derivatives():
  assert dfdx.grad(dnp.sinc)(0.0) == 0.0
  np.testing.assert_allclose(dfdx.hessian(dnp.sinc)(0.0), -np.pi ** 2 / 3, rtol=1e-12)
  # heaviside: the derivative in x2 where x1 == 0, none in x1.
  assert dfdx.grad(lambda h: dnp.heaviside(0.0, h))(0.3) == 1.0
  assert dfdx.grad(lambda h: dnp.heaviside(1.0, h))(0.3) == 0.0
  assert dfdx.grad(lambda x: dnp.heaviside(x, 0.5))(1.0) == 0.0
  # copysign: |x1| with the sign of x2 (signbit, so -0.0 counts as negative).
  assert dfdx.grad(lambda x: dnp.copysign(x, -0.0))(2.0) == -1.0
  assert dfdx.grad(lambda y: dnp.copysign(2.0, y))(-3.0) == 0.0
  # nan_to_num: zero where replaced.
  assert_same(dfdx.grad(lambda x: dnp.sum(dnp.nan_to_num(x)))(SPECIAL),
              np.isfinite(SPECIAL).astype(float))
  # frexp's mantissa is x / 2**e; ldexp is linear in x1.
  assert dfdx.grad(lambda x: dnp.frexp(x)[0])(12.0) == 1 / 16
  assert dfdx.grad(lambda x: dnp.ldexp(x, 1000))(1e-300) == 2.0 ** 1000


def test_complex_traced_values_are_refused():
  # (where NumPy defines no order or no meaning for them, or dfdx has no version yet)
  with pytest.raises(TypeError, match="complex"):
    dfdx.vmap(lambda z: dnp.isposinf(z.astype(np.complex128)))(np.ones((2, 2)))
  # real_if_close's dtype depends on the values
  with pytest.raises(dfdx.ConcretizationError, match="real_if_close"):
    dfdx.vmap(lambda z: dnp.real_if_close(z.astype(np.complex128)))(np.ones((2, 2)))


# ---- functions that build arrays ------------------------------------------------------------


def test_r_and_c_concatenate_traced_values():
  g = dfdx.grad(lambda x, y: dnp.sum(dnp.r_[x, 0.0, y] ** 2), argnums=(0, 1))(W4, V5)
  assert_same(g[0], 2 * W4)
  assert_same(g[1], 2 * V5)
  out = dfdx.vmap(lambda x: dnp.c_[x, x ** 2])(X)
  assert_same(out, np.stack([np.c_[x, x ** 2] for x in X]))
  with pytest.raises(ValueError, match="first entry"):
    dfdx.grad(lambda x: dnp.sum(dnp.r_[x, "0"]))(W4)


def test_piecewise_under_vmap_uses_where():
  funcs = [lambda v: dnp.log(v), lambda v: -v]
  with np.errstate(invalid="ignore"):  # log is evaluated on all entries
    out = dfdx.vmap(lambda a: dnp.piecewise(a, [a > 0], funcs))(POS - 1)
  with np.errstate(invalid="ignore"):
    expected = np.stack([np.piecewise(a, [a > 0], [np.log, lambda v: -v]) for a in POS - 1])
  assert_same(out, expected)
  # Under grad the conditions are concrete, and each function sees only its entries.
  g = dfdx.grad(lambda a: dnp.sum(dnp.piecewise(a, [a > 0], funcs)))(POS - 1)
  assert np.all(np.isfinite(g))


def test_select_and_choose_errors_follow_numpy():
  for call in [lambda a: dnp.select([a > 0], [a, a]), lambda a: dnp.select([], []),
               lambda a: dnp.select([a], [a]), lambda a: dnp.choose(np.array([0, 3]), [a, a]),
               lambda a: dnp.block([[a], [a[:1]]]), lambda a: dnp.cross(a[:1], a[:1]),
               lambda a: dnp.convolve(a, a[:0]), lambda a: dnp.correlate(a, a, "bad"),
               lambda a: dnp.interp(a, np.ones(2), np.ones(3)), lambda a: dnp.vander(a[None]),
               lambda a: dnp.cov(a[None, None]), lambda a: dnp.unstack(a[0])]:
    with pytest.raises((ValueError, TypeError)) as expected:
      call(np.ones(2))
    with pytest.raises(type(expected.value)):
      dfdx.grad(lambda a: dnp.sum(call(a)))(np.ones(2))


def test_in_place_functions_refuse_traced_values():
  a = np.zeros(3)
  dnp.put(a, [0], 1.0)
  assert a[0] == 1.0
  for name in ["put", "place", "putmask", "copyto", "fill_diagonal", "put_along_axis"]:
    with pytest.raises(TypeError, match="in place"):
      dfdx.grad(lambda x: getattr(dnp, name)(x, x > 0, x).sum())(np.ones((2, 2)))


def test_small_helpers():
  x = R(2, 3)
  assert dfdx.grad(lambda a: dnp.sum(a) * (not dnp.isfortran(a)))(x)[0, 0] == 1.0
  for name in ["asarray_chkfinite", "asfortranarray", "require"]:
    assert_same(dfdx.vmap(getattr(dnp, name))(x), x)
  with pytest.warns(DeprecationWarning):
    out = dfdx.vmap(lambda a: dnp.row_stack([a, a]))(x)
  assert_same(out, np.stack([np.vstack([r, r]) for r in x]))
  path = dfdx.vmap(lambda a: dnp.einsum_path("ij,jk->ik", a[None], a[:, None])[0] and a)(x)
  assert_same(path, x)
  for name in ["histogram_bin_edges", "histogram2d", "histogramdd"]:
    args = (V20,) if name == "histogram_bin_edges" else (V20, V20) if name == "histogram2d" \
        else (np.stack([V20, V20], axis=1),)
    expected = getattr(np, name)(*args, bins=3)
    got = dfdx.jvp(lambda *a: getattr(dnp, name)(*a, bins=3), args,
                   tuple(np.ones_like(a) for a in args))[0]
    for g, e in zip(*(v if isinstance(v, tuple) else (v,) for v in (got, expected))):
      assert_same(g, e)


# ---- jit ----------------------------------------------------------------------------------------
JITTED = [lambda x: dnp.sort(x, axis=0) * np.arange(3.0)[:, None],
          lambda x: dnp.median(x, axis=1) + dnp.nanquantile(x, 0.3),
          lambda x: dnp.interp(x, XP, FP) + dnp.copysign(x, -1.0) + dnp.fmod(x, 0.7),
          lambda x: dnp.partition(x, 1, axis=1) + dnp.frexp(x)[0] + dnp.ldexp(x, 2),
          lambda x: dnp.cross(x[:, :3], x[:, 1:]) + dnp.convolve(x[0], x[1], "same")[:3]]


@pytest.mark.parametrize("k", range(len(JITTED)))
def test_jit(k):
  f = JITTED[k]

  def loss(x):
    return dnp.sum(f(x) ** 2)
  np.testing.assert_allclose(dfdx.jit(f)(X), f(X), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(loss))(X), dfdx.grad(loss)(X), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(dfdx.vmap(f))(X[None]), f(X)[None], rtol=1e-12)


def test_jit_of_index_results():
  f = lambda x: (dnp.argsort(x) + dnp.searchsorted(SORTED, x) + dnp.argpartition(x, 1)
                 + dnp.lexsort([x]) + dnp.digitize(x, SORTED[2:]) + dnp.signbit(x)
                 + dnp.histogram(x, 3)[0][0] + dnp.spacing(x).astype(int))
  np.testing.assert_array_equal(dfdx.jit(f)(X), f(X))
  batched = dfdx.jit(dfdx.vmap(lambda a: dnp.searchsorted(a, 0.5)))(np.sort(X, axis=1))
  np.testing.assert_array_equal(batched, [np.searchsorted(r, 0.5) for r in np.sort(X, axis=1)])


def test_partition_of_an_empty_axis():
  # (NumPy takes any kth there: dfdx divided by the axis length, 0)
  for e in (np.zeros((0,)), np.zeros((2, 0))):
    for kth in (0, -1, [0, 1]):
      for name in ("partition", "argpartition"):
        want = getattr(np, name)(e, kth)
        got = dfdx.jit(lambda x: getattr(dnp, name)(x, kth))(e)
        assert got.shape == want.shape and got.dtype == want.dtype


# ---- found by the randomized NumPy-parity tester ----------------------------------------------
_ZERO_D = np.array(2.5)


@pytest.mark.parametrize("name, f, x", [
    ("argsort of 0-d", lambda m, x: m.argsort(x), _ZERO_D),
    ("argsort of 0-d, axis 0", lambda m, x: m.argsort(x, axis=0), _ZERO_D),
    ("argpartition of 0-d", lambda m, x: m.argpartition(x, 0), _ZERO_D),
    ("take from 0-d", lambda m, x: m.take(x, 0, axis=0), _ZERO_D),
    ("take from 0-d, axis -1", lambda m, x: m.take(x, [0], axis=-1), _ZERO_D),
    ("repeat 0-d", lambda m, x: m.repeat(x, 2, axis=-1), _ZERO_D),
    ("compress 0-d", lambda m, x: m.compress([True], x, axis=0), _ZERO_D),
    ("repeat -1 along an empty axis", lambda m, x: m.repeat(x, -1, axis=-1), np.zeros((2, 0))),
    ("2-norm of an empty matrix", lambda m, x: m.linalg.norm(x, ord=2), np.zeros((0, 3))),
    ("nanquantile of empty ints", lambda m, x: m.nanquantile(x, 0.5), np.zeros(0, np.int32)),
    ("nanpercentile of empty ints", lambda m, x: m.nanpercentile(x, 50, axis=-1),
     np.zeros((2, 0), np.int32)),
])
def test_traced_values_match_numpy_at_the_edges(name, f, x):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    expected = f(np, x)
    for got in (dfdx.jit(lambda x: f(dnp, x))(x), dfdx.vmap(lambda x: f(dnp, x))(x[None])[0]):
      assert np.shape(got) == np.shape(expected)
      np.testing.assert_array_equal(got, expected)
  if x.dtype.kind == "f" and x.size:
    assert dfdx.grad(lambda x: dnp.sum(f(dnp, x)) * 1.0)(x) == pytest.approx(
        1.0 if "take" in name or "compress" in name else 2.0 if "repeat" in name else 0.0)


def test_edge_errors_and_types():
  with pytest.raises(np.exceptions.AxisError):
    dfdx.jit(lambda x: dnp.take(x, 0, axis=1))(_ZERO_D)
  with pytest.raises(np.exceptions.AxisError):
    dfdx.jit(lambda x, i: dnp.take_along_axis(x, i, axis=3))(np.ones((2, 3, 4)), np.array([8]))
  # A jitted function called inside a transformation on untraced arguments gives what it
  # gives at top level: a NumPy scalar, which Python's round() takes.
  g = dfdx.jit(lambda v: dnp.where(v > 0, v, 1.0))
  assert type(g(np.float64(3.5))) is np.float64
  assert dfdx.grad(lambda x: x * round(g(np.float64(3.5))))(1.0) == 4.0
