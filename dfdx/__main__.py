"""`python -m dfdx`: a short demonstration of what dfdx computes, each result next to its
closed form."""
import numpy as np

import dfdx
import dfdx.numpy as dnp


def _show(title, code, result, closed_form):
  print(f"\n{title}\n  {code}")
  print("  dfdx:       ", np.array2string(np.asarray(result), precision=6, prefix=" " * 15))
  print("  closed form:", np.array2string(np.asarray(closed_form), precision=6,
                                         prefix=" " * 15))
  print(f"  max |difference| = {np.max(np.abs(np.asarray(result) - closed_form)):.1e}")


def main():
  print(f"dfdx {dfdx.__version__}: exact derivatives of NumPy code")
  x = np.array([0.5, 1.0, 2.0])

  f = lambda x: dnp.sum(dnp.sin(x) * x)
  _show("Gradient of f(x) = sum(sin(x) * x)", "dfdx.grad(f)(x)", dfdx.grad(f)(x),
        np.cos(x) * x + np.sin(x))

  g = lambda x: dnp.asarray([x[0] * x[1], dnp.sin(x[1]), dnp.exp(x[0]) * x[2]])
  closed = np.array([[x[1], x[0], 0.0], [0.0, np.cos(x[1]), 0.0],
                     [np.exp(x[0]) * x[2], 0.0, np.exp(x[0])]])
  _show("Jacobian of g(x) = [x0 x1, sin x1, exp(x0) x2]", "dfdx.jacobian(g)(x)",
        dfdx.jacobian(g)(x), closed)

  h = lambda x: dnp.sum(x ** 3) + x[0] * x[1]
  closed = np.diag(6 * x)
  closed[0, 1] = closed[1, 0] = 1.0
  _show("Hessian of h(x) = sum(x^3) + x0 x1", "dfdx.hessian(h)(x)", dfdx.hessian(h)(x), closed)

  rng = np.random.default_rng(0)
  w, xs, ys = np.array([0.5, -1.0, 2.0]), rng.standard_normal((4, 3)), rng.standard_normal(4)
  loss = lambda w, x, y: (dnp.sum(w * x) - y) ** 2
  per_example = dfdx.vmap(dfdx.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)
  _show("Per-example gradients of the squared error (w.x - y)^2 over 4 examples",
        "dfdx.vmap(dfdx.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)", per_example,
        2 * (xs @ w - ys)[:, None] * xs)

  safe_log = lambda x: dnp.sum(dnp.where(x > 0, dnp.log(x), 0.0))
  xs0 = np.array([0.0, 0.5, 2.0])
  with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, unselected
    guarded = dfdx.grad(safe_log)(xs0)
  _show("A where that guards log at 0: the unselected branch cannot make the gradient NaN",
        "dfdx.grad(lambda x: dnp.sum(dnp.where(x > 0, dnp.log(x), 0.0)))(x)",
        guarded, np.where(xs0 > 0, 1 / np.where(xs0 > 0, xs0, 1), 0.0))

  newton = dfdx.jit(lambda a: dfdx.while_loop(
      lambda r: dnp.abs(r * r - a) > 1e-12 * a, lambda r: (r + a / r) / 2, a))
  a = np.array(2.0)
  _show("Reverse mode through a compiled while loop (Newton's iteration for sqrt(a))",
        "dfdx.grad(dfdx.jit(lambda a: dfdx.while_loop(cond, newton_step, a)))(a)",
        dfdx.grad(newton)(a), 0.5 / np.sqrt(a))

  z = np.array([1 + 2j, -0.5 + 1j])
  _show("Gradient of |z|^2 for complex z (df/dx + i df/dy)",
        "dfdx.grad(lambda z: dnp.sum(dnp.abs(z) ** 2))(z)",
        dfdx.grad(lambda z: dnp.sum(dnp.abs(z) ** 2))(z), 2 * z)

  t = 0.5
  _, series = dfdx.jet(dnp.sin, (t,), ([1.0, 0.0, 0.0, 0.0],))
  _show("Taylor mode: the first four derivatives of sin at 0.5, in one pass",
        "dfdx.jet(dnp.sin, (0.5,), ([1.0, 0.0, 0.0, 0.0],))[1]", np.array(series),
        [np.cos(t), -np.sin(t), -np.cos(t), np.sin(t)])

  def bisection(f, x):  # any solver: it runs on NumPy values and is never differentiated
    lo, hi = np.zeros_like(x), np.full_like(x, 10.0)
    for _ in range(100):
      above = f((lo + hi) / 2) > 0
      lo, hi = np.where(above, lo, (lo + hi) / 2), np.where(above, (lo + hi) / 2, hi)
    return (lo + hi) / 2
  cube_root = lambda a: dfdx.custom_root(lambda r: r ** 3 - a, np.ones_like(a), bisection)
  a = np.array([2.0, 8.0, 27.0])
  _show("Implicit differentiation: d/da of the root r^3 = a that a bisection finds",
        "dfdx.vector_grad(lambda a: dfdx.custom_root(lambda r: r**3 - a, r0, bisection))(a)",
        dfdx.vector_grad(cube_root)(a), 1 / (3 * np.cbrt(a) ** 2))

  try:
    import scipy.sparse  # noqa: F401  (sparse=True returns a scipy.sparse matrix)
  except ImportError:
    print("\nSparse Jacobians (dfdx.jacobian(f, sparse=True)) need SciPy: pip install scipy")
    return
  n = 8
  bratu = lambda u: (dnp.concatenate([u[1:], [0.0]]) - 2 * u + dnp.concatenate([[0.0], u[:-1]])
                     + dnp.exp(u))
  u = np.linspace(0.1, 0.8, n)
  sparse = dfdx.jacobian(bratu, sparse=True)(u)
  closed = np.diag(np.exp(u) - 2) + np.eye(n, k=1) + np.eye(n, k=-1)
  _show(f"A sparse Jacobian: {sparse.nnz} of {n * n} entries nonzero, a pass per color of "
        "the columns that share no row (3 here, not 8), the diagonal shown", "dfdx.jacobian(bratu, sparse=True)(u).diagonal()",
        sparse.diagonal(), np.diag(closed))
  print(f"  every entry: max |difference| = {np.max(np.abs(sparse.toarray() - closed)):.1e}")


if __name__ == "__main__":
  main()
