"""ADBench (Srajer, Kukelova, Fitzgibbon 2018) for dfdx and its peers: every problem module
of bench/ (gmm, lstm, ba, hand; see common.py for the interface), one table, one plot.

Each row is one tool at one problem size: the objective's time, the derivative's time (the
objective's value and its gradient or Jacobian), their ratio, the derivative against NumPy's
objective (ADBench's measure), the first call (tracing and compilation included), peak memory
and the largest error against the reference derivative. The issue-6 targets are checked at
the end.

Run (from the repository root):
  python bench/run.py                            all problems, default sizes
  python -m bench --quick                        smallest sizes, 3 samples
  python bench/run.py --problems gmm lstm --sizes gmm=2,5 gmm=10,25 lstm=2,1024
      --tools "dfdx eager" autograd --samples 5 --markdown docs/BENCHMARKS.md
      --plot docs/benchmarks.png
"""
from __future__ import annotations

import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from timing import single_threaded  # noqa: E402

single_threaded()

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402

from common import TOOLS, size_label  # noqa: E402

PROBLEMS = ("gmm", "lstm", "ba", "hand")
PEERS = ("dfdx", "numpy", "autograd", "jax", "jaxlib", "torch")
# Issue 6: (problem, tool, peer, largest allowed ratio of derivative times).
TARGETS = [("gmm", "dfdx eager", "autograd", 0.5), ("gmm", "dfdx eager", "pytorch", 1.0),
           ("lstm", "dfdx eager", "autograd", 0.25), ("lstm", "dfdx eager", "pytorch", 1.0)]
for _problem in ("ba", "hand"):
  TARGETS += [(_problem, "dfdx eager", peer, 1.0) for peer in ("autograd", "jax eager", "pytorch")]
  TARGETS.append((_problem, "dfdx jit", "jax jit", 1.0))
MARK_START, MARK_END = "<!-- bench/run.py: start -->", "<!-- bench/run.py: end -->"


# ---- problems and sizes ---------------------------------------------------------------------


def load_problems(names):
  """The problem modules whose files exist (ba.py and hand.py may not, yet)."""
  modules = {}
  for name in names:
    if not os.path.exists(os.path.join(BENCH, f"{name}.py")):
      continue
    try:
      modules[name] = importlib.import_module(name)
    except Exception as e:  # a module being written elsewhere must not stop the others
      print(f"[{name}: not run, import failed: {type(e).__name__}: {e}]")
  return modules


def parse_size(module, text):
  """The entry of module.SIZES whose label is `text`, else the module's own parse_size,
  else a tuple of ints ("2,5"), else the text itself."""
  for size in module.SIZES:
    if size_label(size) == text:
      return size
  if hasattr(module, "parse_size"):
    return module.parse_size(text)
  try:
    return tuple(int(v) for v in text.split(","))
  except ValueError:
    return text


def choose_sizes(modules, specs, quick):
  """{problem: [sizes]}: --sizes entries problem=label, else the module's defaults."""
  chosen = {}
  for spec in specs or []:
    name, _, text = spec.partition("=")
    if name not in modules:
      raise SystemExit(f"--sizes {spec}: no problem {name!r}; available: {', '.join(modules)}")
    chosen.setdefault(name, []).append(parse_size(modules[name], text))
  for name, module in modules.items():
    if name not in chosen:
      chosen[name] = list(module.DEFAULT_SIZES[:1] if quick else module.DEFAULT_SIZES)
  return chosen


def tool_name(text):
  """'dfdx-eager', 'dfdx_eager' and 'dfdx eager' all name the tool 'dfdx eager'."""
  name = text.replace("-", " ").replace("_", " ")
  if name not in TOOLS:
    raise SystemExit(f"--tools: unknown tool {text!r}; choose from {', '.join(TOOLS)}")
  return name


# ---- the machine ---------------------------------------------------------------------------


def cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_lines():
  versions = []
  for name in PEERS:
    try:
      versions.append(f"{name} {importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
      versions.append(f"{name} (not installed)")
  return [f"CPU: {cpu_model()}, {os.cpu_count()} cores; {platform.system()} "
          f"{platform.release()}",
          f"Python {platform.python_version()}; " + ", ".join(versions),
          "One thread per library (OMP/OpenBLAS/MKL threads = 1, XLA without multi-threaded "
          "Eigen, torch.set_num_threads(1)), and the process held to one core ("
          + (f"core {sorted(os.sched_getaffinity(0))}" if hasattr(os, "sched_getaffinity")
             else "no affinity call here: not held")
          + "): XLA's runtime threads run on it too.",
          "Load average when the run started: "
          + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)."]


# ---- the table ------------------------------------------------------------------------------

COLUMNS = [("problem", 7), ("size", 14), ("tool", 10), ("objective ms", 12),
           ("derivative ms", 13), ("deriv ÷ obj", 11), ("deriv ÷ NumPy obj", 17),
           ("first call s", 12), ("peak MB", 8), ("max error", 9), ("note", 0)]


def cells(row, numpy_objective):
  def num(v, fmt):
    return "-" if v is None else format(v, fmt)
  obj, der = row["objective_s"], row["derivative_s"]
  own = der / obj if der is not None and obj else None
  floor = der / numpy_objective if der is not None and numpy_objective else None
  peak = num(row["peak_mb"], ".1f")
  if row["peak_mb"] is not None and "heap only" in row["note"]:
    peak += "*"
  note = row["note"].replace("; peak MB: Python heap only", "").replace(
      "peak MB: Python heap only", "")
  return [row["problem"], row["size"], row["tool"], num(obj and obj * 1e3, ".3f"),
          num(der and der * 1e3, ".3f"), num(own, ".1f"), num(floor, ".1f"),
          num(row["first_call_s"], ".3f"), peak, num(row["error"], ".0e"), note]


def numpy_objectives(rows):
  return {(r["problem"], r["size"]): r["objective_s"] for r in rows if r["tool"] == "numpy"}


def text_line(values):
  out = []
  for (name, width), v in zip(COLUMNS, values):
    left = name in ("problem", "size", "tool", "note")
    out.append(f"{v:<{width}}" if left else f"{v:>{width}}")
  return "  ".join(out).rstrip()


def markdown_table(rows):
  floor = numpy_objectives(rows)
  lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
           "|" + "|".join("---" if n in ("problem", "size", "tool", "note") else "---:"
                          for n, _ in COLUMNS) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(cells(r, floor.get((r["problem"], r["size"])))) + " |")
  return lines


def fd_line(rows):
  """The finite-difference check of each problem's reference derivative, by size."""
  checks = {}
  for r in rows:
    checks.setdefault((r["problem"], r["size"]), r["fd_error"])
  return ("Reference derivatives against finite differences (relative error): " + "; ".join(
      f"{p} {s}: {'-' if v is None else format(v, '.0e')}" for (p, s), v in checks.items())
      + ".")


def paired_ratio_range(mine, theirs):
  """The lowest and highest ratio of two tools' derivative times taken in the same round of
  samples (the tools run in turn in each round, so noise that lasts a round hits both), or
  None with fewer than two rounds in common."""
  n = min(len(mine or ()), len(theirs or ()))
  if n < 2:
    return None
  ratios = [a / b for a, b in zip(mine[:n], theirs[:n])]
  return min(ratios), max(ratios)


def target_lines(rows):
  """One line per issue-6 target: the measured ratio at each size (of the medians; in
  brackets the range of the ratios within one round of samples, which shows how far this
  machine's noise moves it), and whether it is met at every size."""
  times = {(r["problem"], r["size"], r["tool"]): r["derivative_s"] for r in rows}
  samples = {(r["problem"], r["size"], r["tool"]): r.get("derivative_samples") for r in rows}
  sizes = {}
  for r in rows:
    sizes.setdefault(r["problem"], [])
    if r["size"] not in sizes[r["problem"]]:
      sizes[r["problem"]].append(r["size"])
  lines = []
  for problem, tool, peer, limit in TARGETS:
    if problem not in sizes:
      continue
    measured, verdicts = [], []
    for size in sizes[problem]:
      mine, theirs = times.get((problem, size, tool)), times.get((problem, size, peer))
      if mine is None or theirs is None:
        measured.append(f"{size}: not measured")
      else:
        spread = paired_ratio_range(samples.get((problem, size, tool)),
                                    samples.get((problem, size, peer)))
        measured.append(f"{size}: {mine / theirs:.2f}" + (
            "" if spread is None else f" [{spread[0]:.2f}-{spread[1]:.2f}]"))
        verdicts.append(mine / theirs <= limit)
    verdict = ("met" if all(verdicts) else "NOT met" if not any(verdicts) else
               f"met at {sum(verdicts)} of {len(verdicts)} sizes") if verdicts else "not measured"
    line = f"{problem}: {tool} / {peer} <= {limit:g}: {verdict} ({'; '.join(measured)})"
    # The floor: where the hand-written derivative is itself above the limit, dfdx must beat
    # it to meet the target.
    floor = [(size, times.get((problem, size, "numpy")), times.get((problem, size, peer)))
             for size in sizes[problem]]
    if all(a is not None and b is not None for _, a, b in floor):
      line += (f"; the hand-written NumPy derivative / {peer}: "
               + "; ".join(f"{size}: {a / b:.2f}" for size, a, b in floor))
    lines.append(line)
  return lines


def jit_target_lines(rows):
  """The issue-3 targets on GMM: jit(value_and_grad) within 1.1x of the hand-written gradient
  at every size and faster than JAX-jit at (64, 100); the first call's tracing, passes and
  code generation (timed alone, `jitted.compile`, before the first call runs) at most a
  tenth of JAX-jit's first call (the ratio of whole first calls is shown too)."""
  by = {(r["size"], r["tool"]): r for r in rows if r["problem"] == "gmm"}
  sizes = list(dict.fromkeys(r["size"] for r in rows if r["problem"] == "gmm"))
  if not sizes:
    return []
  lines = []

  def line(label, ratios, ok):
    shown = "; ".join(f"{s}: {v}" for s, v in ratios)
    met = [ok(v) for _, v in ratios if isinstance(v, float)]
    verdict = ("met" if all(met) else "NOT met" if not any(met) else
               f"met at {sum(met)} of {len(met)} sizes") if met else "not measured"
    lines.append(f"gmm: {label}: {verdict} ({shown})".replace("'", ""))

  def ratio(size, tool, peer, key, peer_key=None):
    a, b = by.get((size, tool)), by.get((size, peer))
    peer_key = peer_key or key
    if a is None or b is None or a.get(key) is None or b.get(peer_key) is None:
      return "not measured"
    return float(f"{a[key] / b[peer_key]:.2f}")
  line("dfdx jit / numpy (hand-written gradient) <= 1.1",
       [(s, ratio(s, "dfdx jit", "numpy", "derivative_s")) for s in sizes], lambda v: v <= 1.1)
  big = [s for s in sizes if s == "64,100"]
  if big:
    line("dfdx jit / jax jit < 1 at 64,100",
         [(s, ratio(s, "dfdx jit", "jax jit", "derivative_s")) for s in big], lambda v: v < 1)
  line("dfdx jit trace, passes and codegen (timed alone) / jax jit first call <= 0.1",
       [(s, ratio(s, "dfdx jit", "jax jit", "compile_s", "first_call_s")) for s in sizes], lambda v: v <= 0.1)
  lines.append("gmm: whole first calls, dfdx jit / jax jit: " + "; ".join(
      f"{s}: {ratio(s, 'dfdx jit', 'jax jit', 'first_call_s')}" for s in sizes))
  return lines


# ---- the plot -------------------------------------------------------------------------------


def plot(rows, path):
  """ADBench's picture: derivative time against the number of parameters, log-log, one line
  per tool, one panel per problem (against the size labels where the parameter count is the
  same at every size, as for hand tracking's 26 pose parameters)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  problems = list(dict.fromkeys(r["problem"] for r in rows))
  fig, axes = plt.subplots(1, len(problems), figsize=(4.4 * len(problems), 4.0), squeeze=False)
  colors = dict(zip(TOOLS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
  for ax, problem in zip(axes[0], problems):
    mine = [r for r in rows if r["problem"] == problem]
    sizes = list(dict.fromkeys(r["size"] for r in mine))
    by_params = len({r["n_params"] for r in mine}) == len(sizes)
    for tool in TOOLS:
      points = sorted((r["n_params"] if by_params else sizes.index(r["size"]), r["derivative_s"])
                      for r in mine if r["tool"] == tool and r["derivative_s"] is not None)
      if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, "o-", color=colors[tool], label=tool, lw=1.5, ms=4)
    if by_params:
      ax.set_xscale("log")
      ax.set_xlabel("parameters (differentiated inputs)")
    else:
      ax.set_xticks(range(len(sizes)), sizes)
      ax.set_xlabel(f"size ({mine[0]['n_params']} parameters at each)")
    ax.set_yscale("log")
    ax.set_title(problem.upper())
    ax.grid(True, which="both", alpha=0.3)
  axes[0][0].set_ylabel("derivative time, s")
  handles = {}
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      handles.setdefault(label, handle)
  labels = [t for t in TOOLS if t in handles]
  fig.legend([handles[t] for t in labels],
             [t + " (by hand)" if t == "numpy" else t for t in labels],
             loc="lower center", ncol=len(labels), frameon=False)
  fig.tight_layout(rect=(0, 0.07, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ---- markdown -------------------------------------------------------------------------------


def write_markdown(path, rows, machine, settings, rerun, plot_path, missing):
  """Write the generated section (between MARK_START and MARK_END) into `path`, keeping what
  the file holds around it; a file without the markers is replaced."""
  section = [MARK_START, "", "### Machine and settings", ""]
  section += [f"- {line}" for line in machine + settings]
  section += ["", "### Results", ""] + markdown_table(rows)
  section += ["", "Columns: times are medians; `deriv ÷ obj` is the derivative's time over the "
              "tool's own objective, `deriv ÷ NumPy obj` over plain NumPy's objective "
              "(ADBench's measure); `first call s` includes tracing and compilation; "
              "`peak MB` is what tracemalloc sees during one derivative call (`*`: PyTorch and "
              "JAX allocate outside its view, so only their Python-heap share shows); "
              "`-` where a traced call ran too long (see the note); "
              "`max error` is ADBench's |a - b| / max(1, |a| + |b|) against the problem's "
              "reference derivative (see its module's docstring)."]
  section += ["", fd_line(rows)]
  if missing:
    section += ["", f"Not run (module missing): {', '.join(missing)}."]
  section += ["", "### Issue-6 targets (ratios of derivative times, at each size)", "",
              "The ratio of the medians; in brackets the lowest and highest ratio of the two "
              "tools' times within one round of samples.", ""]
  section += [f"- {line}" for line in target_lines(rows)]
  jit_lines = jit_target_lines(rows)
  if any("not measured" not in line for line in jit_lines):
    section += ["", "### Issue-3 targets (GMM, jit)", ""] + [f"- {line}" for line in jit_lines]
  if plot_path:
    rel = os.path.relpath(plot_path, os.path.dirname(os.path.abspath(path)))
    section += ["", f"![derivative time against parameters]({rel})"]
  section += ["", "Rerun:", "", "```bash", rerun, "```", "", MARK_END]
  text = "\n".join(section) + "\n"
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
    if MARK_START in old and MARK_END in old:
      text = old[:old.index(MARK_START)] + text.rstrip("\n") + old[old.index(MARK_END)
                                                                  + len(MARK_END):]
  else:
    text = "# Benchmarks\n\n" + text
  with open(path, "w") as f:
    f.write(text)


# ---- main -----------------------------------------------------------------------------------


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python bench/run.py", description="ADBench problems: dfdx against its peers")
  parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
  parser.add_argument("--sizes", nargs="+", metavar="PROBLEM=SIZE",
                      help="e.g. gmm=2,5 gmm=10,25 lstm=2,1024 (repeat a problem for more)")
  parser.add_argument("--tools", nargs="+", metavar="TOOL",
                      help=f"some of: {', '.join(TOOLS)} (NumPy always runs: it is the floor)")
  parser.add_argument("--samples", type=int, default=None, help="interleaved samples (5)")
  parser.add_argument("--quick", action="store_true", help="smallest sizes, 3 samples")
  parser.add_argument("--markdown", metavar="FILE")
  parser.add_argument("--plot", metavar="FILE.png")
  args = parser.parse_args(argv)
  samples = args.samples or (3 if args.quick else 5)
  tools = None if args.tools is None else ["numpy"] + [tool_name(t) for t in args.tools]
  modules = load_problems(args.problems)
  missing = [p for p in args.problems if p not in modules]
  sizes = choose_sizes(modules, args.sizes, args.quick)

  rerun = ["python", "bench/run.py", "--problems", *modules, "--sizes",
           *(f"{p}={size_label(s)}" for p in modules for s in sizes[p]), "--samples",
           str(samples)]
  if args.tools:
    rerun += ["--tools", *(tool_name(t) for t in args.tools)]
  rerun += [*(["--markdown", args.markdown] if args.markdown else []),
            *(["--plot", args.plot] if args.plot else [])]
  rerun = shlex.join(rerun)
  machine = machine_lines()
  settings = [f"Medians of {samples} interleaved samples (each tool's objective and derivative "
              "within each sample); a tool whose calls would take more than 30 s in all gets "
              "fewer samples (its note says how many). Every derivative is checked against "
              "the reference first; one that disagrees (error >= 1e-8) is not timed. A "
              "derivative whose first call takes under 0.5 s is run for 0.5 s before it is "
              "timed: the steady state of a loop, in which eager dfdx runs a compiled reverse "
              "pass where the tape repeats (a note says so; DFDX_COMPILED_REVERSE=0 turns "
              "that off).",
              "glibc's malloc keeps freed memory for reuse (bench/timing.py steady_allocator), "
              "so that page faults on large arrays are not timed; the peers' modules are "
              "frozen out of the garbage collector (gc.freeze) before timing."]
  for line in machine + settings:
    print(line)
  if missing:
    print(f"Not run (module missing): {', '.join(missing)}")
  print(text_line([name for name, _ in COLUMNS]))
  rows = []
  start = time.perf_counter()
  for name, module in modules.items():
    for size in sizes[name]:
      new = module.measure(size, tools, samples)
      rows += new
      floor = numpy_objectives(new)
      for r in new:
        print(text_line(cells(r, floor.get((r["problem"], r["size"])))), flush=True)
  print(f"(* peak MB: Python heap only.) Total {time.perf_counter() - start:.0f} s.")
  print(fd_line(rows))
  print("\nIssue-6 targets (ratios of derivative times, at each size; in brackets the lowest "
        "and highest ratio within one round of samples):")
  for line in target_lines(rows):
    print("  " + line)
  jit_lines = jit_target_lines(rows)
  if any("not measured" not in line for line in jit_lines):
    print("\nIssue-3 targets (GMM, jit):")
    for line in jit_lines:
      print("  " + line)
  if args.plot:
    plot(rows, args.plot)
    print(f"Plot: {args.plot}")
  if args.markdown:
    write_markdown(args.markdown, rows, machine, settings, rerun, args.plot, missing)
    print(f"Markdown: {args.markdown}")
  print(f"\nRerun: {rerun}")
  return rows


if __name__ == "__main__":
  main()
