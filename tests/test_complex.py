"""Complex numbers: gradients of real-valued functions of complex arguments (df/dx + i df/dy,
PyTorch's convention), holomorphic derivatives, Jacobians, and errors where a rule is not
written for complex values. Checked against central differences in float64."""
import warnings

import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp

RNG = np.random.default_rng(7)
Z = RNG.normal(size=3) + 1j * RNG.normal(size=3)
A = RNG.normal(size=(3, 3)) + 1j * RNG.normal(size=(3, 3))


def wirtinger_fd(f, z, eps=1e-6):
  """df/dx + i df/dy by central differences, for real-valued f of a complex array."""
  z = np.asarray(z, complex)
  out = np.zeros(z.shape, complex)
  for idx in np.ndindex(z.shape):
    for step, unit in ((eps, 1.0), (1j * eps, 1j)):
      e = np.zeros(z.shape, complex)
      e[idx] = step
      out[idx] += unit * (float(f(z + e)) - float(f(z - e))) / (2 * eps)
  return out


# real-valued functions of a complex vector, written once for NumPy and dfdx.numpy
LOSSES = {
    "abs_squared": lambda m, z: m.sum(m.abs(z) ** 2),
    "real_of_square": lambda m, z: m.sum(m.real(z * z)),
    "imag_of_exp": lambda m, z: m.sum(m.imag(m.exp(z))),
    "conj_product": lambda m, z: m.real(m.sum(m.conj(z) * m.sin(z))),
    "matmul_norm": lambda m, z: m.sum(m.abs(A @ z) ** 2),
    "log_sqrt": lambda m, z: m.sum(m.real(m.log(z) * m.sqrt(z))),
    "division": lambda m, z: m.sum(m.imag(1.0 / (z + 3.0))),
    "angle": lambda m, z: m.sum(m.angle(z) * m.abs(z)),
    "tanh_cos": lambda m, z: m.sum(m.real(m.tanh(z) * m.cos(z))),
    "einsum": lambda m, z: m.real(m.einsum("i,ij,j->", m.conj(z), A, z)),
    "power": lambda m, z: m.sum(m.abs(z ** 3 + z ** 0.5)),
    "indexing": lambda m, z: m.real(z[0] * z[2]) + m.imag(m.concatenate([z, z[::-1]]).sum()),
    "solve": lambda m, z: m.sum(m.abs(m.linalg.solve(A + m.diag(z), z)) ** 2),
    "inv": lambda m, z: m.real(m.sum(m.linalg.inv(A * z) @ z)),
    "det": lambda m, z: m.abs(m.linalg.det(A + m.diag(z))) ** 2,
    "det_real": lambda m, z: m.real(m.linalg.det(A * z)),
    "var": lambda m, z: m.var(z * z),
    "std": lambda m, z: m.std(A @ z, ddof=1),
    "nanvar": lambda m, z: m.nanvar(m.exp(z)),
    "nanstd": lambda m, z: m.nanstd(m.stack([z, 2 * z]), axis=0).sum(),
    "vdot": lambda m, z: m.real(m.vdot(z, A @ z)) + m.imag(m.vdot(A @ z, z)),
    "comparisons": lambda m, z: m.sum(m.where((z > 0.1) & (z <= 3), m.abs(z), m.real(z) ** 2)),
    "sign": lambda m, z: m.sum(m.imag(m.sign(z * z)) + m.real(m.sign(z) * m.round(z, 1))),
    "sort": lambda m, z: m.sum(m.real(m.sort(z * (1 - 2j)) * np.arange(1.0, 4.0))),
    "argmax": lambda m, z: m.abs(z[m.argmax(z)]) + m.real(z[m.argsort(z)][0]),
    "nan_to_num": lambda m, z: m.sum(m.abs(m.nan_to_num(m.log(z)))),
    "cov": lambda m, z: m.sum(m.abs(m.cov(m.stack([z, m.exp(z), z * z])))),
    "corrcoef": lambda m, z: m.sum(m.real(m.corrcoef(m.stack([z, m.exp(z), z * z])))),
    "real_if_close": lambda m, z: m.sum(m.real(m.real_if_close(z) * z)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_is_df_dx_plus_i_df_dy(name):
  f = LOSSES[name]
  got = dfdx.grad(lambda z: f(dnp, z))(Z)
  np.testing.assert_allclose(got, wirtinger_fd(lambda z: f(np, z), Z), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_forward_mode_matches_reverse_mode(name):
  f = lambda z: LOSSES[name](dnp, z)  # noqa: E731
  g = dfdx.grad(f)(Z)
  for direction in (np.array([1.0, -0.5, 2.0]), 1j * np.array([0.3, 1.0, -1.0])):
    # df along a complex direction v is Re(sum(conj(g) v)) with g = df/dx + i df/dy
    t = dfdx.jvp(f, (Z,), (direction.astype(complex),))[1]
    np.testing.assert_allclose(t, np.real(np.vdot(g, direction)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["var", "std", "nanvar", "nanstd"])
def test_variance_of_complex_values_is_real(name):
  # NumPy's variance of complex values is the mean of |z - mean(z)|^2, a real number
  z = np.stack([A, A * 1j + 2, np.conj(A)])
  z[1, 0, 2] = np.nan if name.startswith("nan") else z[1, 0, 2]
  want = getattr(np, name)(z, axis=(1, 2))
  for got in (dfdx.jit(lambda z: getattr(dnp, name)(z, axis=(1, 2)))(z),
              dfdx.vmap(getattr(dnp, name))(z)):
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12)
  value, _ = dfdx.value_and_grad(lambda z: getattr(dnp, name)(z[0]))(z)
  np.testing.assert_allclose(value, want[0], rtol=1e-12)


@pytest.mark.parametrize("name", ["isreal", "iscomplex", "nan_to_num", "sort", "cov",
                                  "corrcoef", "sign", "round", "argmax", "argsort", "greater"])
def test_functions_that_numpy_defines_on_complex_values(name):
  # NumPy orders complex values by real part, then imaginary part
  z = np.array([1 + 2j, 3 - 1j, -2 + 0.5j, 1 - 1j, 2.0, np.nan + 1j, 0j])
  if name in ("cov", "corrcoef"):
    z = np.stack([Z, Z * Z, np.conj(Z) + 1])
  f = {"greater": lambda z: np.greater(z, 1 + 0j)}.get(name, getattr(np, name))
  with np.errstate(invalid="ignore"):
    want = f(z)
  for got in (dfdx.jit(f)(z), dfdx.vmap(f)(z[None])[0]):
    np.testing.assert_array_equal(got, want) if name not in ("cov", "corrcoef") else \
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_real_if_close_of_a_traced_complex_value_needs_its_values():
  z = np.array([1 + 1e-15j, 2.0])
  value, g = dfdx.value_and_grad(lambda z: dnp.sum(dnp.real_if_close(z) ** 2), has_aux=False)(z)
  assert np.isclose(value, 5.0)
  np.testing.assert_allclose(g, 2 * z.real)
  with pytest.raises(dfdx.ConcretizationError, match="real_if_close"):
    dfdx.jit(dnp.real_if_close)(z)


def test_vdot_conjugates_its_first_argument():
  w = Z[::-1] * (1 - 2j)
  for f in (dfdx.jit(dnp.vdot), lambda a, b: dfdx.vmap(dnp.vdot)(a[None], b[None])[0]):
    np.testing.assert_allclose(f(Z, w), np.vdot(Z, w), rtol=1e-12)
    np.testing.assert_allclose(f(Z, 2.0 * A[0].real), np.vdot(Z, 2.0 * A[0].real), rtol=1e-12)
  g = dfdx.grad(lambda z: dnp.real(dnp.vdot(z, w)), holomorphic=False)(Z)
  np.testing.assert_allclose(g, w, rtol=1e-12)  # Re(conj(z) w) = x.Re w + y.Im w


def test_gradient_descent_direction():
  # the convention makes z - lr * grad a descent step
  f = lambda z: dnp.sum(dnp.abs(z - (1 + 2j)) ** 2)  # noqa: E731
  g = dfdx.grad(f)(Z)
  np.testing.assert_allclose(g, 2 * (Z - (1 + 2j)))
  assert float(f(Z - 0.1 * g)) < float(f(Z))


def test_second_order_and_vmap_and_jit():
  f = LOSSES["matmul_norm"]
  h = dfdx.hessian(lambda x: f(dnp, x + 1j * x[::-1]))(Z.real)
  want = dfdx.jacfwd(dfdx.grad(lambda x: f(dnp, x + 1j * x[::-1])))(Z.real)
  np.testing.assert_allclose(h, want, rtol=1e-10)
  np.testing.assert_allclose(h, h.T, rtol=1e-10)
  g = dfdx.grad(lambda z: f(dnp, z))
  batch = np.stack([Z, 2 * Z])
  np.testing.assert_allclose(dfdx.vmap(g)(batch), np.stack([g(Z), g(2 * Z)]), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(g)(Z), g(Z), rtol=1e-12)


@pytest.mark.parametrize("f,df", [
    (lambda z: z ** 3, lambda z: 3 * z ** 2),
    (lambda z: dnp.exp(z) * dnp.sin(z), lambda z: np.exp(z) * (np.sin(z) + np.cos(z))),
    (lambda z: 1 / (z - 2j), lambda z: -1 / (z - 2j) ** 2),
    (lambda z: dnp.log(z) * z, lambda z: np.log(z) + 1),
    (lambda z: dnp.linalg.det(A * z), lambda z: 3 * np.linalg.det(A) * z ** 2),
])
def test_holomorphic_grad_is_the_complex_derivative(f, df):
  z = np.complex128(0.7 - 1.3j)
  np.testing.assert_allclose(dfdx.grad(f, holomorphic=True)(z), df(z), rtol=1e-12)
  value, d = dfdx.value_and_grad(f, holomorphic=True)(z)
  np.testing.assert_allclose(d, df(z), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacfwd(f, holomorphic=True)(z), df(z), rtol=1e-12)
  np.testing.assert_allclose(dfdx.jacrev(f, holomorphic=True)(z), df(z), rtol=1e-12)
  # and it is the limit of difference quotients along any complex direction
  for h in (1e-6, 1e-6j):
    np.testing.assert_allclose((complex(f(z + h)) - complex(f(z - h))) / (2 * h), df(z),
                               rtol=1e-6)


def test_holomorphic_jacobians_of_vector_functions():
  f = lambda z: A @ dnp.exp(z)  # noqa: E731
  want = A * np.exp(Z)
  for jac in (dfdx.jacfwd, dfdx.jacrev, dfdx.jacobian):
    np.testing.assert_allclose(jac(f, holomorphic=True)(Z), want, rtol=1e-12)


def test_complex_outputs_of_real_inputs():
  x = np.array([0.5, 1.0])
  want = np.diag(1j * np.exp(1j * x))
  np.testing.assert_allclose(dfdx.jacfwd(lambda x: dnp.exp(1j * x))(x), want)
  np.testing.assert_allclose(dfdx.jacobian(lambda x: dnp.exp(1j * x))(x), want)
  out, t = dfdx.jvp(lambda x: dnp.exp(1j * x), (x,), (np.ones(2),))
  np.testing.assert_allclose(t, 1j * np.exp(1j * x))


def test_clear_errors():
  z = np.complex128(1 + 1j)
  with pytest.raises(TypeError, match="holomorphic=True"):
    dfdx.grad(lambda z: z * z)(z)
  with pytest.raises(TypeError, match="needs a complex output"):
    dfdx.grad(lambda z: dnp.abs(z), holomorphic=True)(z)
  with pytest.raises(TypeError, match="holomorphic=True"):
    dfdx.jacfwd(lambda z: dnp.abs(z))(Z)
  with pytest.raises(TypeError, match="holomorphic=True"):
    dfdx.jacrev(lambda x: x * 1j)(np.ones(2))
  # a rule written for real values refuses complex ones instead of answering wrongly
  with pytest.raises(dfdx.MissingRuleError, match="complex"):
    dfdx.grad(lambda a: dnp.abs(dnp.cumprod(a)).sum())(A)


def test_abs_at_zero_is_finite():
  np.testing.assert_array_equal(dfdx.grad(lambda z: dnp.sum(dnp.abs(z)))(np.zeros(2, complex)),
                                np.zeros(2))


def test_real_and_imag_attributes_of_traced_values():
  f = lambda z: dnp.sum(z.real * z.imag + (z.conj() * z).real)  # noqa: E731
  np.testing.assert_allclose(dfdx.grad(f)(Z), Z.imag + 1j * Z.real + 2 * Z, rtol=1e-12)
  np.testing.assert_allclose(dfdx.jit(lambda z: z.imag)(Z), Z.imag)
  np.testing.assert_allclose(dfdx.vmap(lambda z: z.real)(A), A.real)


def test_complex_and_non_finite_constants_in_compiled_code():
  x = np.arange(4.0)
  np.testing.assert_allclose(dfdx.jit(lambda x: x * (1 + 0.5j))(x), x * (1 + 0.5j))
  weights = np.array([np.nan, 1.0, -np.inf, 2.0 + 1j * np.inf])
  np.testing.assert_array_equal(dfdx.jit(lambda x: x * weights)(x), x * weights)
  namespace = {}
  exec(dfdx.export.to_source(lambda x: x * weights, x, name="g"), namespace)
  np.testing.assert_array_equal(namespace["g"](x), x * weights)


def test_jit_never_writes_into_the_memory_of_real_or_imag_parts():
  # np.real / np.imag of a complex array are views of it: generated code must not reuse them
  # as output buffers (that wrote into the caller's array).
  z = np.array([1 + 2j, 3 + 4j])
  for part, np_part in ((dnp.imag, np.imag), (dnp.real, np.real)):
    f = dfdx.jit(lambda z: dnp.exp(part(z) * 2.0) + 1.0)
    np.testing.assert_allclose(f(z), np.exp(np_part(z) * 2.0) + 1.0)
    np.testing.assert_array_equal(z, [1 + 2j, 3 + 4j])


def test_jit_casts_complex_to_real_as_the_primitive_does():
  z = np.array([1 + 2j, 3 + 4j])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # numpy's ComplexWarning would be an error
    np.testing.assert_array_equal(dfdx.jit(lambda z: z.astype(np.float64))(z), [1.0, 3.0])
