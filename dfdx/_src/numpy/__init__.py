"""The implementation of `dfdx.numpy`, one module per area of NumPy's API."""
