"""Compiled programs specialized to a uniform condition (dfdx/_src/uniform.py): where every
entry of a `where`'s condition holds, or none does, jit runs a program without the branch it
does not select. Every test compares with the general program's values (jit with
specializations off) and eager evaluation or NumPy, and checks which program ran."""
import numpy as np
import pytest

import dfdx
import dfdx.numpy as dnp
from dfdx._src import tiling, uniform


@pytest.fixture
def compiled(monkeypatch):
  """The functions compile_specialized returns; those with specialized programs get the
  calls of each program counted in `.calls` and their sources in `.sources` (keys
  "general", True, False)."""
  made = []
  original = uniform.compile_specialized

  def counting(program, compile_fn, name="f"):
    calls, sources = {"general": 0, True: 0, False: 0}, {}

    def compile_counted(p, checks):
      fn = compile_fn(p, checks)
      key = "general" if checks is None else any(
          kind == "all" for _, kind in checks.values())
      sources[key] = fn.__dfdx_source__
      return _counted(fn, calls, key)
    run = original(program, compile_counted, name)
    if hasattr(run, "specialized"):
      run.calls, run.sources = calls, sources
    made.append(run)
    return run
  monkeypatch.setattr(uniform, "compile_specialized", counting)
  return made


def _counted(fn, calls, key):
  def run(*args):
    calls[key] += 1  # (a variant that raises counts too: it was tried)
    return fn(*args)
  run.__dfdx_source__ = fn.__dfdx_source__
  return run


def _rodrigues(rot, x):
  """A rotation by the angle-axis `rot`, with the small-angle form at |rot| = 0 (both
  branches computed, as in bundle adjustment)."""
  sq = dnp.sum(rot * rot)
  nonzero = sq != 0
  theta = dnp.sqrt(dnp.where(nonzero, sq, 1.0))
  w = rot / theta
  c, s = dnp.cos(theta), dnp.sin(theta)
  big = x * c + dnp.cross(w, x) * s + w * dnp.sum(w * x) * (1 - c)
  small = x + dnp.cross(rot, x)
  return dnp.where(nonzero, big, small)


def _jacobians(n, zero_at=(), seed=0):
  rng = np.random.default_rng(seed)
  rot, x = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
  rot[list(zero_at)] = 0.0
  return rot, x


def _blocks(rot, x):
  return dfdx.vmap(dfdx.jacobian(_rodrigues, (0, 1)))(rot, x)


def _general(f, *args):
  """f's results from jit without specializations (the values a specialized program must
  give: only the sign of a zero may differ, which assert_array_equal does not see)."""
  previous, uniform.enabled = uniform.enabled, False
  try:
    return dfdx.jit(f)(*args)
  finally:
    uniform.enabled = previous


def _assert_same(got, f, *args):
  want, eager = _general(f, *args), f(*args)
  for g, w, e in zip(got, want, eager):
    np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)


def _program_sizes(run):
  return {k: len(v.splitlines()) for k, v in run.sources.items() if k != "general"}


def test_a_uniform_condition_runs_the_program_without_the_other_branch(compiled):
  rot, x = _jacobians(50)
  jitted = dfdx.jit(_blocks)
  got = jitted(rot, x)
  run = compiled[-1]
  _assert_same(got, _blocks, rot, x)
  assert set(run.values) == {True, False}
  assert run.calls == {"general": 0, True: 1, False: 0}
  assert set(run.sources) == {"general", True}  # the other compiled when first needed
  general_lines = len(run.sources["general"].splitlines())
  assert all(n < general_lines for n in _program_sizes(run).values()), _program_sizes(run)


def test_the_other_uniform_value_and_a_mixed_condition(compiled):
  jitted = dfdx.jit(_blocks)
  rot, x = _jacobians(40)
  jitted(rot, x)
  run = compiled[-1]
  zero_rot = np.zeros_like(rot)
  _assert_same(jitted(zero_rot, x), _blocks, zero_rot, x)  # none holds
  assert run.calls == {"general": 0, True: 2, False: 1}
  mixed, _ = _jacobians(40, zero_at=(3, 17))
  _assert_same(jitted(mixed, x), _blocks, mixed, x)
  assert run.calls == {"general": 1, True: 2, False: 2}
  # The last variant that fitted is tried first: the all-false one here, then the all-true
  # one that the condition names.
  jitted(rot, x)
  assert run.calls == {"general": 1, True: 3, False: 3}


def test_a_function_tries_less_and_less_often_while_calls_do_not_fit(compiled, monkeypatch,
                                                                      caplog):
  monkeypatch.setattr(uniform, "RETRY_AFTER", 2)
  caplog.set_level("INFO", logger="dfdx.jit")
  jitted = dfdx.jit(_blocks)
  mixed, x = _jacobians(30, zero_at=(0,))
  for _ in range(uniform.MAX_MISSES + 2):
    _assert_same(jitted(mixed, x), _blocks, mixed, x)
  run = compiled[0]
  assert run.calls["general"] == uniform.MAX_MISSES + 2
  assert run.calls[True] == uniform.MAX_MISSES  # then 2 calls without trying
  assert "did not fit a program specialized" in caplog.text and "_blocks" in caplog.text
  jitted(mixed, x)  # tried again: a miss, then 4 calls without trying
  assert run.calls[True] == uniform.MAX_MISSES + 1
  for _ in range(4):
    jitted(mixed, x)
  assert run.calls[True] == uniform.MAX_MISSES + 1
  rot, _ = _jacobians(30)
  _assert_same(jitted(rot, x), _blocks, rot, x)  # uniform again: specialized again
  assert run.calls[True] == uniform.MAX_MISSES + 2
  assert run.calls["general"] == uniform.MAX_MISSES + 2 + 1 + 4
  jitted(rot, x)
  assert run.calls[True] == uniform.MAX_MISSES + 3


def test_an_infinite_factor_of_the_dropped_branch_runs_the_general_program(compiled):
  """0 * inf is NaN: where the branch not selected has an infinite derivative factor, the
  general program runs, and its NaN leads to the zero-absorbing chain rule, as eagerly."""
  def f(x):
    return dnp.sum(dnp.where(x >= 0, x ** 2, dnp.sqrt(x)))
  x = np.array([0.0, 1.5, 2.0])
  g = dfdx.jit(dfdx.grad(f))
  np.testing.assert_array_equal(g(x), dfdx.grad(f)(x))
  np.testing.assert_array_equal(g(x), [0.0, 3.0, 4.0])
  general_runs = [run.calls["general"] for run in compiled if hasattr(run, "calls")]
  assert sum(general_runs) >= 1, general_runs
  x = np.array([0.5, 1.5, 2.0])  # finite everywhere: the specialized program
  before = [dict(run.calls) for run in compiled if hasattr(run, "calls")]
  np.testing.assert_array_equal(g(x), dfdx.grad(f)(x))
  after = [run.calls for run in compiled if hasattr(run, "calls")]
  assert any(a[True] > b[True] and a["general"] == b["general"] for a, b in zip(after, before))


def test_a_zero_times_an_infinity_in_the_users_own_code_stays_nan(compiled):
  """Zeros the user selects are followed too, and their products checked: NumPy's NaN."""
  def f(c, x, xp=dnp):
    return xp.where(c > 0, 0.0, xp.sin(c) * xp.cos(c) * xp.exp(c)) * x + xp.tanh(c)
  c = np.array([1.0, 2.0, 3.0])
  jitted = dfdx.jit(f)
  with np.errstate(invalid="ignore"):
    want = f(c, np.array([np.inf, 1.0, 2.0]), np)
    got = jitted(c, np.array([np.inf, 1.0, 2.0]))
  np.testing.assert_array_equal(got, want)
  assert np.isnan(got[0])
  run = compiled[-1]
  assert True in run.values and run.calls["general"] == 1
  np.testing.assert_array_equal(jitted(c, np.ones(3)), f(c, np.ones(3)))
  assert run.calls[True] == 2 and run.calls["general"] == 1


def test_each_chunk_of_a_tiled_program_picks_its_own(compiled, monkeypatch):
  monkeypatch.setattr(tiling, "enabled", True)
  monkeypatch.setattr(tiling, "TARGET_BYTES", 1 << 16)
  monkeypatch.setattr(tiling, "MIN_CHUNK", 256)
  rot, x = _jacobians(6000, zero_at=(10, 11))  # a zero angle in the first chunk only
  jitted = dfdx.jit(_blocks)
  got = jitted(rot, x)
  run = compiled[-1]
  _assert_same(got, _blocks, rot, x)
  entry = next(iter(jitted.__closure__[_cell(jitted, "fast_cache")].cell_contents.values()))
  assert entry.run.tiles[2] > 2
  assert run.calls["general"] == 1 and run.calls[True] == entry.run.tiles[2]


def _cell(fn, name):
  return fn.__code__.co_freevars.index(name)


_BIG = lambda x: dnp.sin(x) * dnp.cos(x) * dnp.exp(x) * x  # noqa: E731


@pytest.mark.parametrize("f, control", [
    (lambda c, x: dnp.where(c > 0, 0.0, _BIG(x)),
     lambda c, x: dnp.where(c > 0, 0.0, _BIG(x)) + dnp.sin(x)),
    (lambda c, x: dnp.where(c > 0, x, _BIG(c)),
     lambda c, x: dnp.where(c > 0, x, _BIG(c)) * 2.0)],
    ids=["the output would be the zero", "the output would be the argument x"])
def test_outputs_that_would_be_zeros_or_arguments_are_not_specialized(f, control):
  from dfdx._src.passes import optimize
  c, x = np.array([1.0, -2.0]), np.array([3.0, 4.0])
  for g, specialized in ((f, False), (control, True)):
    program = optimize(dfdx.make_expr(g)(c, x).program, evaluate_only=True)
    assert (True in uniform.specializations(program)) == specialized
    np.testing.assert_array_equal(dfdx.jit(g)(c, x), g(c, x))
    np.testing.assert_array_equal(dfdx.jit(g)(np.abs(c), x), g(np.abs(c), x))


def test_the_generated_checks(compiled):
  rot, x = _jacobians(20)
  jitted = dfdx.jit(_blocks)
  jitted(rot, x)
  run = compiled[-1]
  jitted(np.zeros_like(rot), x)
  true_source = run.sources[True]
  assert "raise _Unspecialized(" in true_source and "np.isfinite(" in true_source
  assert "if not np.all(" in true_source
  assert "if np.any(" in run.sources[False]
  assert "_Unspecialized" not in run.sources["general"]


def test_eager_passes_under_vmap_run_specialized_too(compiled, compiling, monkeypatch):
  """The compiled reverse pass of vmap(jacobian) (reverse_cache.py) is kept only if it gives
  the interpreted pass's bits, zeros' signs included: the specialized one does here."""
  from dfdx._src import reverse_cache
  rot, x = _jacobians(300)
  monkeypatch.setattr(reverse_cache, "enabled", False)
  want = _blocks(rot, x)
  monkeypatch.setattr(reverse_cache, "enabled", True)
  for _ in range(4):
    got = _blocks(rot, x)
    for g, w in zip(got, want):
      np.testing.assert_array_equal(g, w)
      np.testing.assert_array_equal(np.signbit(g), np.signbit(w))
  runs = [run for run in compiled if hasattr(run, "calls")]
  assert runs, compiled
  assert runs[-1].calls[True] >= 2 and runs[-1].calls["general"] == 0


def test_a_gathered_factor_is_checked_as_the_array_it_is_gathered_from(compiled):
  rng = np.random.default_rng(1)
  table, x = rng.standard_normal((4, 3)), rng.standard_normal((40, 3))
  idx = rng.integers(0, 3, 40)  # row 3 is never gathered
  f = lambda table, idx, x: _blocks(table[idx], x)  # noqa: E731
  jitted = dfdx.jit(f)
  got = jitted(table, idx, x)
  run = compiled[-1]
  _assert_same(got, f, table, idx, x)
  source = run.sources[True]
  checked = [line.split("np.isfinite(")[1].split(")")[0] for line in source.splitlines()
             if "np.isfinite(" in line]
  header = source[source.index("def "):].split("(")[1].split(")")[0].split(", ")
  assert header[0] in checked, (checked, header)  # the table itself, 4 rows
  assert run.calls == {"general": 0, True: 1, False: 0}
  table[3] = np.inf  # not gathered, but the stronger check fails: the general program runs
  _assert_same(jitted(table, idx, x), f, table, idx, x)
  assert run.calls == {"general": 1, True: 2, False: 0}


def test_a_pass_under_vmap_whose_bits_differ_is_compiled_again_without_specializing(
    compiling, monkeypatch):
  """The sign of a zero may differ where a specialized program adds no zero: the compiled
  pass is then compiled once more without its specializations (and kept if that agrees)."""
  from dfdx._src import reverse_cache
  identical, seen = reverse_cache._identical, []

  def no_specialized_bits(got, expected):  # as if every specialized pass changed a sign
    source = seen[-1].__dfdx_source__
    return uniform.SPECIALIZED not in source and identical(got, expected)
  compile_pass = reverse_cache._compile

  def remember(*args, **kwargs):
    fn = compile_pass(*args, **kwargs)
    seen.append(fn)
    return fn
  monkeypatch.setattr(reverse_cache, "_identical", no_specialized_bits)
  monkeypatch.setattr(reverse_cache, "_compile", remember)
  rot, x = _jacobians(300)
  for _ in range(4):
    _blocks(rot, x)
  assert len(seen) >= 2 and uniform.SPECIALIZED in seen[0].__dfdx_source__
  assert uniform.SPECIALIZED not in seen[-1].__dfdx_source__
  entries = [e for bucket in reverse_cache._entries.values() for e in bucket]
  assert any(e.fn is seen[-1] for e in entries)  # kept, compiled


def test_the_environment_switch_compiles_general_programs_only():
  import os
  import subprocess
  import sys
  code = ("import dfdx._src.uniform as u, dfdx._src.tiling as t; "
          "print(u.enabled, t.enabled)")
  for value, expected in (("0", "False True"), ("1", "True True")):
    env = dict(os.environ, DFDX_JIT_SPECIALIZE=value, DFDX_JIT_TILING="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == expected


def test_a_program_with_a_condition_per_step_considers_only_a_few(monkeypatch):
  """Each condition considered costs passes over the program: an unrolled loop with a
  `where` per step considers the MAX_CONDITIONS with the most selects, not all 60."""
  from dfdx._src.passes import optimize
  made = []
  real = uniform._Specializer

  def counted(program, producer, root, value):
    made.append(root)
    return real(program, producer, root, value)
  monkeypatch.setattr(uniform, "_Specializer", counted)

  def f(x):
    for i in range(60):
      x = dnp.where(x > i * 0.01, dnp.sin(x) * 1.01, dnp.cos(x) + 0.5)
    return dnp.sum(dnp.where(x > 0.5, x * x, dnp.exp(x)) + dnp.where(x > 0.5, x, 2 * x))
  x = np.linspace(0, 1, 7)
  program = optimize(dfdx.make_expr(dfdx.grad(f))(x).program, evaluate_only=True)
  uniform.specializations(program)
  assert len({id(r) for r in made}) == uniform.MAX_CONDITIONS
  assert len(made) == 2 * uniform.MAX_CONDITIONS
  np.testing.assert_allclose(dfdx.jit(dfdx.grad(f))(x), dfdx.grad(f)(x), rtol=1e-13)
