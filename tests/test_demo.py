"""`python -m dfdx` runs and every result matches its closed form."""
import re

from dfdx.__main__ import main


def test_demo_results_match_closed_forms(capsys):
  main()
  out = capsys.readouterr().out
  differences = [float(d) for d in re.findall(r"max \|difference\| = (\S+)", out)]
  assert len(differences) == 11  # (the sparse Jacobian's two: SciPy is a test requirement)
  assert max(differences) < 1e-12
  for title in ("Gradient", "Jacobian", "Hessian", "Per-example gradients", "guards log",
                "compiled while loop", "complex z", "Taylor mode", "Implicit differentiation",
                "sparse Jacobian"):
    assert title in out
