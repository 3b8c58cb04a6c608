"""Keeping freed memory for the next derivative (glibc's malloc, on Linux).

Reverse mode keeps every intermediate array of the forward pass until the backward pass has
used it, then frees them all. glibc's malloc gives freed memory at the top of its heap back
to the system once more than a little is free there (128 KiB, a threshold that grows with
the largest array freed so far), so each derivative call grows the heap again and pays a
page fault for every 4 KiB it touches: on ADBench's GMM at (d, K) = (10, 25) an eager
gradient took 5.9 ms where it takes 1.6 ms with the memory kept (PyTorch: 3.3 and 1.9 ms;
autograd: 8.1 and 2.4 ms).

So dfdx asks malloc, when it is imported, to keep 64 MiB free at the top of the heap
(`mallopt(M_TOP_PAD)`): memory the process touched already and may hold a little longer, at
most that much. `DFDX_MALLOC_TOP_PAD=<bytes>` sets another amount and `0` leaves malloc as
it is; glibc's own `MALLOC_TOP_PAD_`, if set, is left to rule. Arrays above glibc's mmap
threshold (32 MiB at most) are mapped and unmapped by the system at every call whatever
this says; `MALLOC_MMAP_THRESHOLD_` raises it (bench/timing.py keeps all memory, for every
library alike).
"""
from __future__ import annotations

import os
import sys

DEFAULT_TOP_PAD = 64 << 20
_M_TOP_PAD = -2  # glibc's malloc.h


def requested_top_pad(environ=os.environ):
  """The padding to ask for (bytes), or None to leave malloc as it is."""
  if not sys.platform.startswith("linux") or "MALLOC_TOP_PAD_" in environ:
    return None
  value = environ.get("DFDX_MALLOC_TOP_PAD", "").strip()
  if not value:
    return DEFAULT_TOP_PAD
  try:
    pad = int(value)
  except ValueError:
    import warnings
    warnings.warn(f"DFDX_MALLOC_TOP_PAD={value!r} is not a number of bytes; malloc is left "
                  "as it is. Set it to a number of bytes (0 to leave malloc alone).",
                  RuntimeWarning, stacklevel=2)
    return None
  return pad if 0 < pad < 1 << 31 else None


def keep_freed_memory(environ=os.environ):
  """Ask glibc's malloc for the padding `requested_top_pad` gives. Returns the bytes asked
  for, or None where nothing was done (another system or C library, or switched off)."""
  pad = requested_top_pad(environ)
  if pad is None:
    return None
  try:
    import ctypes
    mallopt = ctypes.CDLL(None).mallopt
  except (ImportError, OSError, AttributeError):
    return None
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  return pad if mallopt(_M_TOP_PAD, pad) == 1 else None


top_pad = keep_freed_memory()
