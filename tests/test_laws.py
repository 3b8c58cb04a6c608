"""Algebraic laws of the transformations, checked with hypothesis on random inputs and a
family of test functions: jacfwd == jacrev, grad == jacrev for scalar functions, Hessians are
symmetric, jvp is linear in the tangent, vmap(grad(f)) equals stacked gradients, and forward
and reverse mode agree through vjp/jvp duality."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import dfdx
import dfdx.numpy as dnp

settings.register_profile("dfdx", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("dfdx")

floats = st.floats(-1.5, 1.5, allow_nan=False, allow_infinity=False, width=64)
vectors = st.integers(1, 5).flatmap(lambda n: arrays(np.float64, (n,), elements=floats))

VECTOR_FUNCTIONS = {
    "poly": lambda x: x ** 3 - 2 * x * dnp.sum(x),
    "trig": lambda x: dnp.sin(x) * dnp.cos(x) + dnp.tanh(x) ** 2,
    "exp_mix": lambda x: dnp.exp(x / 3) * dnp.cumsum(x) - dnp.prod(1 + x / 4),
    "softplus": lambda x: dnp.logaddexp(0.0, x) * dnp.max(x),
}
SCALAR_FUNCTIONS = {
    "quartic": lambda x: dnp.sum(x ** 4) - dnp.sum(x) ** 2,
    "logsumexp": lambda x: dnp.log(dnp.sum(dnp.exp(x))),
    "norm_like": lambda x: dnp.sqrt(1.0 + dnp.sum(x * x)) * dnp.mean(dnp.sin(x)),
}


@pytest.mark.parametrize("name", sorted(VECTOR_FUNCTIONS))
@given(x=vectors)
def test_jacfwd_equals_jacrev(name, x):
  f = VECTOR_FUNCTIONS[name]
  np.testing.assert_allclose(dfdx.jacfwd(f)(x), dfdx.jacrev(f)(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
@given(x=vectors)
def test_grad_equals_jacrev_for_scalar_functions(name, x):
  f = SCALAR_FUNCTIONS[name]
  np.testing.assert_allclose(dfdx.grad(f)(x), dfdx.jacrev(f)(x), rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(dfdx.grad(f)(x), dfdx.jacfwd(f)(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
@given(x=vectors)
def test_hessian_is_symmetric_and_matches_jacobian_of_gradient(name, x):
  f = SCALAR_FUNCTIONS[name]
  h = dfdx.hessian(f)(x)
  np.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(h, dfdx.jacrev(dfdx.grad(f))(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(VECTOR_FUNCTIONS))
@given(x=vectors, a=floats, b=floats)
def test_jvp_is_linear_in_the_tangent(name, x, a, b):
  f = VECTOR_FUNCTIONS[name]
  u, v = np.cos(np.arange(x.size)), np.sin(np.arange(x.size) + 1.0)
  _, tu = dfdx.jvp(f, (x,), (u,))
  _, tv = dfdx.jvp(f, (x,), (v,))
  _, tw = dfdx.jvp(f, (x,), (a * u + b * v,))
  np.testing.assert_allclose(tw, a * tu + b * tv, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(VECTOR_FUNCTIONS))
@given(x=vectors)
def test_vjp_is_the_transpose_of_jvp(name, x):
  f = VECTOR_FUNCTIONS[name]
  u = np.cos(np.arange(x.size) * 0.7)
  out, tangent = dfdx.jvp(f, (x,), (u,))
  w = np.sin(np.arange(np.size(out)) + 0.3).reshape(np.shape(out))
  (ct,) = dfdx.vjp(f, x)[1](w)
  np.testing.assert_allclose(np.vdot(w, tangent), np.vdot(ct, u), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SCALAR_FUNCTIONS))
@given(xs=st.integers(1, 4).flatmap(lambda n: arrays(np.float64, (3, n), elements=floats)))
def test_vmap_of_grad_equals_stacked_grads(name, xs):
  f = SCALAR_FUNCTIONS[name]
  stacked = np.stack([dfdx.grad(f)(x) for x in xs])
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f))(xs), stacked, rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(dfdx.vmap(dfdx.grad(f), in_axes=1)(xs.T), stacked, rtol=1e-12,
                             atol=1e-14)
