"""Keeping freed memory for the next derivative (glibc's malloc, on Linux).

Reverse mode keeps every intermediate array of the forward pass until the backward pass has
used it, then frees them all. glibc's malloc gives freed memory at the top of its heap back
to the system once more than a little is free there (128 KiB, a threshold that grows with
the largest array freed so far), so each derivative call grows the heap again and pays a
page fault for every 4 KiB it touches: on ADBench's GMM at (d, K) = (10, 25) an eager
gradient took 5.9 ms where it takes 1.6 ms with the memory kept (PyTorch: 3.3 and 1.9 ms;
autograd: 8.1 and 2.4 ms), and 20 steps of a stencil on 200,000 points (a 600 MB tape)
362 ms where it takes 77 ms.

So dfdx asks malloc, when it is imported, to keep freed memory at the top of its heap up to
`KEEP` bytes (`mallopt(M_TRIM_THRESHOLD)`: 1 GiB, or an eighth of the machine's memory if
that is less), to take arrays up to 32 MiB from its heap rather than mapping each from the
system (`M_MMAP_THRESHOLD`, the most glibc allows), and to grow the heap 64 MiB at a time
(`M_TOP_PAD`). The process then holds, after a derivative, up to `KEEP` bytes it touched
already; more than that free at once goes back to the system as before.
`DFDX_MALLOC_KEEP=<bytes>` sets another amount and `0` leaves malloc as it is; glibc's own
`MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_` or `MALLOC_MMAP_THRESHOLD_`, if set, are left to
rule. Arrays above 32 MiB are mapped and unmapped by the system at every call whatever this
says (bench/timing.py keeps all memory, for every library alike).
"""
from __future__ import annotations

import os
import sys

DEFAULT_KEEP = 1 << 30
TOP_PAD = 64 << 20
MMAP_THRESHOLD = 32 << 20  # glibc refuses more (half its largest heap)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
_GLIBC_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_")


def _default_keep():
  try:
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (AttributeError, ValueError, OSError):
    return DEFAULT_KEEP
  return min(DEFAULT_KEEP, physical // 8) if physical > 0 else DEFAULT_KEEP


def requested_keep(environ=os.environ):
  """The bytes of freed memory to keep (an int), or None to leave malloc as it is."""
  if not sys.platform.startswith("linux") or any(name in environ for name in _GLIBC_SETTINGS):
    return None
  value = environ.get("DFDX_MALLOC_KEEP", "").strip()
  if not value:
    return _default_keep()
  try:
    keep = int(value)
  except ValueError:
    import warnings
    warnings.warn(f"DFDX_MALLOC_KEEP={value!r} is not a number of bytes; malloc is left as it "
                  "is. Set it to a number of bytes (0 to leave malloc alone).",
                  RuntimeWarning, stacklevel=2)
    return None
  return keep if 0 < keep < 1 << 31 else None


def keep_freed_memory(environ=os.environ):
  """Ask glibc's malloc to keep the freed memory `requested_keep` gives. Returns the bytes
  asked for, or None where nothing was done (another system or C library, or switched off)."""
  keep = requested_keep(environ)
  if keep is None:
    return None
  try:
    import ctypes
    mallopt = ctypes.CDLL(None).mallopt
  except (ImportError, OSError, AttributeError):
    return None
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  if mallopt(_M_TRIM_THRESHOLD, keep) != 1:
    return None
  mallopt(_M_TOP_PAD, min(TOP_PAD, keep))
  mallopt(_M_MMAP_THRESHOLD, min(MMAP_THRESHOLD, keep))
  return keep


kept = keep_freed_memory()
