"""dfdx.numpy.fft: NumPy's results and dtypes on traced values (eager, jit, vmap), derivatives
against finite differences (real-valued composites to second order; complex inputs through
df/dx + i df/dy), the adjoint identity of every transform, and NumPy's errors."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx.testing import check_grads
from tests.test_complex import wirtinger_fd

RNG = np.random.default_rng(3)
X1 = RNG.normal(size=6)
X2 = RNG.normal(size=(3, 4))
X3 = RNG.normal(size=(2, 3, 4))
Z1 = RNG.normal(size=6) + 1j * RNG.normal(size=6)
Z2 = RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))
Z3 = RNG.normal(size=(2, 3, 5)) + 1j * RNG.normal(size=(2, 3, 5))

# (name, args, kwargs): every function with n/s cropping and padding, axes (negative and
# repeated), and each norm.
CALLS = [
    ("fft", X1, {}), ("fft", X1, {"n": 4}), ("fft", X1, {"n": 9, "norm": "ortho"}),
    ("fft", Z2, {"axis": 0, "norm": "forward"}), ("fft", Z2, {"axis": -2, "n": 5}),
    ("ifft", Z1, {}), ("ifft", Z1, {"n": 3, "norm": "ortho"}), ("ifft", X2, {"norm": "forward"}),
    ("rfft", X1, {}), ("rfft", X1, {"n": 7}), ("rfft", X1, {"n": 4, "norm": "ortho"}),
    ("rfft", X2, {"axis": 0, "norm": "forward"}),
    ("irfft", Z1, {}), ("irfft", Z1, {"n": 7}), ("irfft", Z1, {"n": 15, "norm": "ortho"}),
    ("irfft", Z1, {"n": 4, "norm": "forward"}), ("irfft", Z2, {"axis": 0}),
    ("irfft", X1, {"n": 5}),
    ("hfft", Z1, {}), ("hfft", Z1, {"n": 7, "norm": "ortho"}), ("ihfft", X1, {}),
    ("ihfft", X1, {"n": 5, "norm": "forward"}),
    ("fft2", X2, {}), ("fft2", Z3, {"s": (2, 6)}), ("fft2", Z3, {"axes": (0, 2), "norm": "ortho"}),
    ("ifft2", Z2, {"s": (4, 3), "norm": "forward"}),
    ("fftn", X3, {}), ("fftn", Z3, {"axes": (-1, 0)}), ("fftn", Z3, {"s": (3, -1), "axes": (0, 2)}),
    ("fftn", X2, {"axes": (1, 1)}), ("fftn", X2, {"axes": (1, -1), "s": (3, 5)}),
    ("fftn", X2, {"axes": ()}),
    ("ifftn", Z3, {"norm": "ortho"}), ("ifftn", Z3, {"s": (4, 2, 3), "axes": (0, 1, 2)}),
    ("rfftn", X3, {}), ("rfftn", X3, {"axes": (2, 0), "s": (3, 5)}),
    ("rfftn", X3, {"axes": (1,), "norm": "ortho"}), ("rfftn", X2, {"axes": (1, 1)}),
    ("irfftn", Z3, {}), ("irfftn", Z3, {"s": (3, 4), "axes": (1, 0)}),
    ("irfftn", Z2, {"norm": "forward", "axes": (0,)}), ("irfftn", X3, {"axes": (0, 2)}),
    ("rfft2", X3, {}), ("rfft2", X2, {"s": (2, 5), "norm": "ortho"}),
    ("irfft2", Z3, {}), ("irfft2", Z2, {"s": (4, 5)}),
    ("fftshift", X3, {}), ("fftshift", X3, {"axes": 1}), ("fftshift", Z2, {"axes": (0, -1)}),
    ("ifftshift", X3, {}), ("ifftshift", X2, {"axes": (1,)}),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CALLS)]


def _call(module, name, a, kw):
  return getattr(module.fft, name)(a, **kw)


def _parts(m, z):
  """A real view of every part of a (possibly complex) result."""
  return m.real(z) - 0.5 * m.imag(z) if np.iscomplexobj(z) or getattr(z, "dtype", None) in (
      np.complex64, np.complex128) else z


@pytest.mark.parametrize("name,a,kw", CALLS, ids=IDS)
def test_traced_results_are_numpys(name, a, kw):
  want = _call(np, name, a, kw)
  f = lambda a: _call(dnp, name, a, kw)  # noqa: E731
  np.testing.assert_array_equal(f(a), want)  # not traced: NumPy itself
  for got in (dfdx.jit(f)(a), dfdx.jvp(f, (a,), (np.zeros_like(a),))[0],
              dfdx.vmap(f)(a[None])[0]):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.complex64, np.bool_])
@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fftn",
                                  "irfftn", "fftshift"])
def test_dtypes_are_numpys(name, dtype):
  a = (X2 > 0) if dtype is np.bool_ else (X2 * 3).astype(dtype)
  if np.dtype(dtype).kind == "c":
    a = a + 1j * a[::-1]
  try:
    want = _call(np, name, a, {})
  except TypeError:  # rfft of complex input
    with pytest.raises(TypeError, match="must be real"):
      dfdx.jit(lambda a: _call(dnp, name, a, {}))(a)
    return
  got = dfdx.jit(lambda a: _call(dnp, name, a, {}))(a)
  assert got.dtype == want.dtype
  np.testing.assert_allclose(got, want, rtol=1e-3 if dtype is np.float16 else 1e-5, atol=1e-3)


@pytest.mark.parametrize("name,a,kw", CALLS, ids=IDS)
def test_grads_of_real_composites(name, a, kw):
  # complex inputs enter as x + i y; complex outputs as re - im / 2: all real, so check_grads
  # compares forward and reverse mode with finite differences, to second order
  if np.iscomplexobj(a):
    f = lambda x, y: _parts(dnp, _call(dnp, name, x + 1j * y, kw))  # noqa: E731
    args = (a.real.copy(), a.imag.copy())
  else:
    f = lambda x: _parts(dnp, _call(dnp, name, x, kw))  # noqa: E731
    args = (a,)
  out = f(*args)
  assert out.dtype == np.float64
  check_grads(f, args, order=2, modes=("fwd", "rev"))


LOSSES = {
    "parseval": lambda m, z: m.sum(m.abs(m.fft.fft(z)) ** 2),
    "filter": lambda m, z: m.sum(m.real(m.fft.ifft(m.fft.fft(z) * np.arange(1.0, 7.0)))),
    "irfft": lambda m, z: m.sum(m.fft.irfft(z, 9) * np.arange(9.0) ** 0.5),
    "irfft_even": lambda m, z: m.sum(m.fft.irfft(z) ** 3),
    "fft2_crop": lambda m, z: m.sum(m.abs(m.fft.fft2(m.reshape(z, (2, 3)), s=(3, 2))) ** 3),
    "hfft": lambda m, z: m.sum(m.sin(m.fft.hfft(z, norm="ortho"))),
    "shifted": lambda m, z: m.sum(m.imag(m.fft.fftshift(m.fft.fft(z))) * np.arange(6.0)),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_at_complex_inputs(name):
  f = LOSSES[name]
  got = dfdx.grad(lambda z: f(dnp, z))(Z1)
  np.testing.assert_allclose(got, wirtinger_fd(lambda z: f(np, z), Z1), rtol=1e-6, atol=1e-7)
  # forward mode along a complex direction: Re(vdot(grad, v))
  v = RNG.normal(size=6) + 1j * RNG.normal(size=6)
  t = dfdx.jvp(lambda z: f(dnp, z), (Z1,), (v,))[1]
  np.testing.assert_allclose(t, np.real(np.vdot(got, v)), rtol=1e-9, atol=1e-10)


def test_irfft_ignores_the_imaginary_parts_of_zero_and_nyquist_bins():
  for n in (10, 11):
    z = RNG.normal(size=6) + 1j * RNG.normal(size=6)
    w = RNG.normal(size=n)
    g = dfdx.grad(lambda z: dnp.sum(dnp.fft.irfft(z, n) * w))(z)
    assert g[0].imag == 0
    assert (g[-1].imag == 0) == (n % 2 == 0)
    np.testing.assert_allclose(g, wirtinger_fd(lambda z: np.sum(np.fft.irfft(z, n) * w), z),
                               rtol=1e-7, atol=1e-8)


# (name, input, kwargs): the linear maps whose adjoints are checked
ADJOINTS = [("fft", Z1, {}), ("fft", Z1, {"n": 4, "norm": "ortho"}), ("ifft", Z1, {"n": 8}),
            ("ifft", Z1, {"norm": "forward"}), ("fftn", Z3, {"norm": "ortho"}),
            ("ifftn", Z3, {"s": (2, 4), "axes": (0, 2)}), ("rfft", X1, {}),
            ("rfft", X1, {"n": 9, "norm": "forward"}), ("irfft", Z1, {}),
            ("irfft", Z1, {"n": 7, "norm": "ortho"}), ("irfftn", Z3, {"s": (2, 3, 6)}),
            ("rfftn", X3, {"axes": (0, 2)}), ("hfft", Z1, {"n": 9}), ("ihfft", X1, {}),
            ("fftshift", Z3, {"axes": (1, 2)})]


@pytest.mark.parametrize("name,a,kw", ADJOINTS, ids=[f"{c[0]}-{i}" for i, c in enumerate(ADJOINTS)])
def test_transposes_are_adjoints(name, a, kw):
  # <ct, L x> = <L^T ct, x> for the real inner product Re(vdot(., .)), through the linearization
  def like(shape, complex_):
    x = RNG.normal(size=shape)
    return x + 1j * RNG.normal(size=shape) if complex_ else x
  x = like(a.shape, np.iscomplexobj(a))
  f = lambda x: _call(dnp, name, x, kw)  # noqa: E731
  out, vjp_fn = dfdx.vjp(f, x)
  ct = like(out.shape, np.iscomplexobj(out))
  (x_bar,) = vjp_fn(ct)
  assert x_bar.dtype == x.dtype
  np.testing.assert_allclose(np.real(np.vdot(ct, out)), np.real(np.vdot(x_bar, x)), rtol=1e-10)
  _, lin = dfdx.linearize(f, x)
  np.testing.assert_allclose(lin(x), out, rtol=1e-12, atol=1e-12)  # linear: L(x) = out


def test_vmap_matches_stacked_calls():
  batch = RNG.normal(size=(4, 3, 5))
  for f in (lambda x: dnp.fft.fft2(x, s=(4, 4)), lambda x: dnp.fft.rfftn(x, axes=(0, -1)),
            lambda x: dnp.fft.irfft(dnp.fft.rfft(x, axis=0), 3, axis=0),
            lambda x: dnp.fft.fftshift(x, axes=0)):
    want = np.stack([f(b) for b in batch])
    np.testing.assert_allclose(dfdx.vmap(f)(batch), want, rtol=1e-12, atol=1e-12)
    moved = dfdx.vmap(f, in_axes=2)(np.moveaxis(batch, 0, 2))
    np.testing.assert_allclose(moved, want, rtol=1e-12, atol=1e-12)
  # per-example gradients
  loss = lambda x: dnp.sum(dnp.abs(dnp.fft.rfft2(x)) ** 2)  # noqa: E731
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(loss))(batch),
                             np.stack([dfdx.grad(loss)(b) for b in batch]), rtol=1e-12)


def test_jit_matches_eager():
  def loss(x):
    return dnp.sum(dnp.fft.irfft(dnp.fft.rfft(x, 8) * np.array(1 + 0.5j)) ** 2)
  for fun in (loss, dfdx.grad(loss), dfdx.hessian(loss)):
    np.testing.assert_allclose(dfdx.jit(fun)(X1), fun(X1), rtol=1e-12, atol=1e-12)
  src = dfdx.export.to_source(dfdx.grad(loss), X1)
  assert "np.fft.irfftn" in src and "np.fft.rfftn" in src


def test_parseval_gradient_and_hessian():
  f = lambda x: dnp.sum(dnp.abs(dnp.fft.fft(x, norm="ortho")) ** 2)  # noqa: E731  (= |x|^2)
  np.testing.assert_allclose(dfdx.grad(f)(X1), 2 * X1, rtol=1e-12)
  np.testing.assert_allclose(dfdx.hessian(f)(X1), 2 * np.eye(6), atol=1e-12)


def test_numpy_functions_on_traced_values_dispatch_here():
  def f(m, x):  # plain numpy calls on traced values reach dfdx.numpy.fft
    return m.sum(m.abs(m.fft.rfft(x)) ** 2) + m.sum(m.fft.fftshift(x) * X1)
  np.testing.assert_allclose(dfdx.grad(lambda x: f(np, x))(X1), dfdx.grad(lambda x: f(dnp, x))(X1),
                             rtol=1e-12)
  assert dnp.fft.fftfreq is np.fft.fftfreq and dnp.fft.rfftfreq is np.fft.rfftfreq


@pytest.mark.parametrize("call", [
    lambda m, x: m.fft.fft(x, n=0), lambda m, x: m.fft.fft(x, axis=2),
    lambda m, x: m.fft.irfft(x[:1]), lambda m, x: m.fft.fft(x, norm="unitary"),
    lambda m, x: m.fft.fftn(x, s=(2, 2), axes=(0,)), lambda m, x: m.fft.rfft(x * 1j),
    lambda m, x: m.fft.fft2(x), lambda m, x: m.fft.ifftn(x, axes=(3,)),
    lambda m, x: m.fft.fft(x, n=2.5),
])
def test_errors_are_numpys(call):
  with pytest.raises(Exception) as want:
    call(np, X1)
  with pytest.raises(want.type):
    dfdx.grad(lambda x: dnp.sum(dnp.real(call(dnp, x))))(X1)


def test_out_is_refused_on_traced_values():
  with pytest.raises(TypeError, match="out= is not supported"):
    dfdx.grad(lambda x: dnp.sum(dnp.real(dnp.fft.fft(x, out=np.empty(6, complex)))))(X1)
