"""dfdx asks glibc's malloc to keep freed memory (dfdx/_src/memory.py): the switch, and the
page faults it saves a reverse pass."""
import subprocess
import sys
import textwrap

import pytest

from dfdx._src import memory


@pytest.mark.parametrize("environ, expected", [
    ({}, memory.DEFAULT_TOP_PAD),
    ({"DFDX_MALLOC_TOP_PAD": "1048576"}, 1 << 20),
    ({"DFDX_MALLOC_TOP_PAD": " 0 "}, None),
    ({"DFDX_MALLOC_TOP_PAD": "-5"}, None),
    ({"MALLOC_TOP_PAD_": "0"}, None),  # glibc's own setting rules
])
def test_requested_padding_follows_the_environment(environ, expected, monkeypatch):
  monkeypatch.setattr(memory.sys, "platform", "linux")
  assert memory.requested_top_pad(environ) == expected


def test_a_bad_setting_warns_and_changes_nothing(monkeypatch):
  monkeypatch.setattr(memory.sys, "platform", "linux")
  with pytest.warns(RuntimeWarning, match="DFDX_MALLOC_TOP_PAD='64MB'.*number of bytes"):
    assert memory.requested_top_pad({"DFDX_MALLOC_TOP_PAD": "64MB"}) is None
  monkeypatch.setattr(memory.sys, "platform", "darwin")
  assert memory.requested_top_pad({}) is None


_CYCLES = textwrap.dedent("""
    import resource, numpy as np
    import dfdx, dfdx.numpy as dnp
    x = np.random.default_rng(0).normal(size=(40, 1000))
    grad = dfdx.grad(lambda x: dnp.sum(dnp.tanh(dnp.tanh(dnp.tanh(x) * x) * x)))
    for _ in range(5):
      grad(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(30):
      grad(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_reverse_passes_stop_faulting_pages_in():
  def faults(pad):
    env = {"DFDX_MALLOC_TOP_PAD": pad, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", _CYCLES], env=env, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1])
  if memory.top_pad is None:
    pytest.skip("this C library has no mallopt")
  kept, released = faults(str(64 << 20)), faults("0")
  # Each call holds several arrays of 320 KB (78 pages each) at once: over a hundred pages a
  # call when they are returned.
  assert released > 1500 and kept < released / 10, (kept, released)
