"""dfdx asks glibc's malloc to keep freed memory (dfdx/_src/memory.py): the switch, and the
page faults it saves a reverse pass."""
import subprocess
import sys
import textwrap

import pytest

from dfdx._src import memory


@pytest.mark.parametrize("environ, expected", [
    ({"DFDX_MALLOC_KEEP": "1048576"}, 1 << 20),
    ({"DFDX_MALLOC_KEEP": " 0 "}, None),
    ({"DFDX_MALLOC_KEEP": "-5"}, None),
    ({"MALLOC_TOP_PAD_": "0"}, None),  # glibc's own settings rule
    ({"MALLOC_TRIM_THRESHOLD_": "0"}, None),
    ({"MALLOC_MMAP_THRESHOLD_": "0", "DFDX_MALLOC_KEEP": "1048576"}, None),
])
def test_requested_amount_follows_the_environment(environ, expected, monkeypatch):
  monkeypatch.setattr(memory.sys, "platform", "linux")
  assert memory.requested_keep(environ) == expected


def test_the_default_is_a_gibibyte_or_an_eighth_of_the_machine(monkeypatch):
  monkeypatch.setattr(memory.sys, "platform", "linux")
  pages = {"SC_PAGE_SIZE": 4096}
  monkeypatch.setattr(memory.os, "sysconf", lambda name: pages[name])
  pages["SC_PHYS_PAGES"] = (64 << 30) // 4096
  assert memory.requested_keep({}) == memory.DEFAULT_KEEP == 1 << 30
  pages["SC_PHYS_PAGES"] = (4 << 30) // 4096
  assert memory.requested_keep({}) == 512 << 20


def test_a_bad_setting_warns_and_changes_nothing(monkeypatch):
  monkeypatch.setattr(memory.sys, "platform", "linux")
  with pytest.warns(RuntimeWarning, match="DFDX_MALLOC_KEEP='64MB'.*number of bytes"):
    assert memory.requested_keep({"DFDX_MALLOC_KEEP": "64MB"}) is None
  monkeypatch.setattr(memory.sys, "platform", "darwin")
  assert memory.requested_keep({}) is None


_CYCLES = textwrap.dedent("""
    import resource, sys, numpy as np
    import dfdx, dfdx.numpy as dnp
    x = np.random.default_rng(0).normal(size=(40, int(sys.argv[1])))
    f = lambda x: dnp.sum(dnp.tanh(dnp.tanh(dnp.tanh(x) * x) * x))
    # (vjp's pullback, which may be called again, writes into no residual: every array of
    # its reverse pass is a fresh allocation, as for a tape that others hold)
    grad = lambda x: dfdx.vjp(f, x)[1](1.0)
    for _ in range(5):
      grad(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(int(sys.argv[2])):
      grad(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("columns, calls", [
    (1000, 30),  # several arrays of 320 KB (78 pages each) at once
    (50_000, 3),  # arrays of 16 MB, 150 MB held at once (where the old 64 MiB pad fell short)
])
def test_reverse_passes_stop_faulting_pages_in(columns, calls):
  def faults(keep):
    env = {"DFDX_MALLOC_KEEP": keep, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", _CYCLES, str(columns), str(calls)], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])
  if memory.kept is None:
    pytest.skip("this C library has no mallopt, or malloc is set from the environment")
  kept, released = faults(str(1 << 30)), faults("0")
  # Returned to the system, hundreds of pages are faulted in again (how many varies with
  # malloc's adaptive thresholds); kept, next to none.
  assert released > 500 and kept < released / 10, (kept, released)


def test_the_collector_is_paused_while_a_tape_is_recorded_and_run_backward():
  # (a tape holds no reference cycles: full collections would only traverse its nodes)
  import gc

  import numpy as np

  import dfdx
  import dfdx.numpy as dnp
  seen = []

  def f(x):
    seen.append(gc.isenabled())
    return dnp.sum(dnp.sin(x))

  def failing(x):
    raise RuntimeError("inside the function")
  x = np.linspace(0.0, 1.0, 5)
  assert gc.isenabled()
  np.testing.assert_allclose(dfdx.grad(f)(x), np.cos(x), rtol=1e-15)
  assert seen == [False] and gc.isenabled()
  with pytest.raises(RuntimeError, match="inside the function"):
    dfdx.grad(failing)(x)
  assert gc.isenabled()
  gc.disable()
  try:
    dfdx.grad(f)(x)
    assert not gc.isenabled()  # left as the caller set it
  finally:
    gc.enable()


def test_no_collection_runs_between_recording_a_tape_and_running_it_backward():
  # The tape is alive between the two: a collection there traverses all of its nodes.
  import gc
  import os
  import sys

  import numpy as np

  import dfdx
  import dfdx.numpy as dnp
  inside = os.path.dirname(dfdx.__file__)
  collections = []

  def count(phase, info):  # a collection started while dfdx's code runs
    frame = sys._getframe(1)
    while frame is not None and not frame.f_code.co_filename.startswith(inside):
      frame = frame.f_back
    if phase == "start" and frame is not None:
      collections.append(frame.f_code.co_name)

  def f(x):
    for _ in range(200):
      x = dnp.sin(x) * 0.5
    return dnp.sum(x)

  value_and_grad = dfdx.value_and_grad(f)
  x = np.linspace(0.0, 1.0, 3)
  threshold = gc.get_threshold()
  gc.set_threshold(10)  # a collection every 10 container allocations, if it were running
  gc.callbacks.append(count)
  try:
    value, derivative = value_and_grad(x)
  finally:
    gc.callbacks.remove(count)
    gc.set_threshold(*threshold)
  assert collections == [] and gc.isenabled(), collections
  expected = np.ones(3)
  for _ in range(200):
    expected = expected * np.cos(x) * 0.5
    x = np.sin(x) * 0.5
  np.testing.assert_allclose(derivative, expected, rtol=1e-12)


def test_forward_mode_frees_each_tangent_after_its_last_use(monkeypatch):
  # An eager jacfwd (a linearization pushed forward one step at a time) of a 150-step loop
  # over 100 entries: the 100 x 100 tangent of each step goes once the next step has read
  # it (all 150 were kept to the end: 49 MB here), as linearize's jvp_fn over a long chain.
  # (Interpreted: the compiled pass that repeated calls get has its own memory plan.)
  import tracemalloc

  import numpy as np

  import dfdx
  import dfdx.numpy as dnp
  from dfdx._src import reverse_cache
  monkeypatch.setattr(reverse_cache, "enabled", False)
  rng = np.random.default_rng(0)
  a = rng.normal(size=(100, 100)) / 20

  def f(x):
    for _ in range(150):
      x = dnp.tanh(a @ x) + 0.1 * x
    return x
  x = rng.normal(size=100)
  jac = dfdx.jacfwd(f)
  want = jac(x)
  tracemalloc.start()
  try:
    got = jac(x)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  np.testing.assert_allclose(got, want, rtol=1e-13)
  result = want.nbytes
  assert peak < 40 * result, peak / result
  _, jvp_fn = dfdx.linearize(f, x)
  tracemalloc.start()
  try:
    jvp_fn(np.ones(100))
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 40 * x.nbytes * 8, peak / x.nbytes
