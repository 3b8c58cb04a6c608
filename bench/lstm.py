"""ADBench's LSTM objective: value and gradient, dfdx against a hand-written NumPy gradient and
the peers, in one run.

ADBench's LSTM (src/cpp/shared/lstm.h there) is a stack of l layers over a sequence of c
characters, each a one-hot vector of b = 14 entries. Its weights are elementwise (diagonal),
so every quantity is a vector of b entries. Per time step the input x = sequence[t] * w_in
passes through each layer, whose state is (hidden, cell) and whose parameters are a weight
and a bias of shape (4, b), one row per gate:
  forget  = sigmoid(x * w[0] + bias[0])        ingate = sigmoid(hidden * w[1] + bias[1])
  outgate = sigmoid(x * w[2] + bias[2])        change = tanh(hidden * w[3] + bias[3])
  cell = cell * forget + ingate * change;      hidden = outgate * tanh(cell)
and the layer's hidden becomes the next layer's x. The prediction y = x * w_out + b_out is
scored against the next character with log(sum(exp(y)) + 2) as normalizer (ADBench adds 2:
kept, so that the values match ADBench's), and the loss is the negated total log-likelihood
over the c - 1 predictions, divided by (c - 1) * b.

Inputs (ADBench's layout): main_params (2 l, 4, b), the weight and bias of each layer;
extra_params (3, b): w_in, w_out, b_out; state (2 l, b), each layer's initial hidden and cell;
sequence (c, b). The derivative is the gradient with respect to main_params and
extra_params. Data: seeded uniform(-1, 1) parameters and state, random one-hot characters.

The objective is written once (`make_lstm_objective(xp, sigmoid)`) for dfdx.numpy, autograd
and jax.numpy, each with its library's sigmoid (expit), and transcribed to PyTorch; the
Python loop over time steps runs op by op in every eager tool and unrolls under dfdx.jit
(first_call_s says what that costs). JAX's jit row uses lax.scan over the same step
function, as a JAX user would write it. The floor is a hand-written NumPy reverse pass.

Run: python bench/run.py --problems lstm [--sizes lstm=2,1024 lstm=4,1024]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402

import dfdx  # noqa: E402
import dfdx.numpy as dnp  # noqa: E402
import dfdx.scipy.special as dsp  # noqa: E402
from common import (Tool, fd_error, import_jax, import_torch, measure_tools,  # noqa: E402
                    torch_backward_tool)

NAME = "lstm"
CHAR_BITS = 14
SIZES = [(2, 1024), (2, 4096), (4, 1024), (4, 4096)]  # (layers l, characters c)
DEFAULT_SIZES = [(2, 1024), (4, 1024)]


def lstm_data(layers, chars, b=CHAR_BITS, seed=1):
  """main_params, extra_params, state, sequence with ADBench's shapes."""
  rng = np.random.RandomState(seed)
  main_params = rng.uniform(-1, 1, (2 * layers, 4, b))
  extra_params = rng.uniform(-1, 1, (3, b))
  state = rng.uniform(-1, 1, (2 * layers, b))
  sequence = np.eye(b)[rng.randint(0, b, chars)]
  return main_params, extra_params, state, sequence


# ---- the objective, written once --------------------------------------------------------


def make_lstm_step(xp, sigmoid):
  """One time step: new layer states and the step's log-likelihood of the next character.
  `weights` and `biases` are per layer lists of the four gate rows."""
  def step(weights, biases, extra, hiddens, cells, x, y_next):
    w_in, w_out, b_out = extra
    x = x * w_in
    hiddens, cells = list(hiddens), list(cells)
    for i, ((wf, wi, wo, wc), (bf, bi, bo, bc)) in enumerate(zip(weights, biases)):
      forget = sigmoid(x * wf + bf)
      ingate = sigmoid(hiddens[i] * wi + bi)
      outgate = sigmoid(x * wo + bo)
      change = xp.tanh(hiddens[i] * wc + bc)
      cells[i] = cells[i] * forget + ingate * change
      hiddens[i] = outgate * xp.tanh(cells[i])
      x = hiddens[i]
    y = x * w_out + b_out
    return hiddens, cells, xp.sum(y_next * (y - xp.log(xp.sum(xp.exp(y)) + 2)))
  return step


def unpack(main_params, extra_params, state):
  """Per-layer gate rows and initial states, as lists (indexing once, not per step)."""
  layers = main_params.shape[0] // 2
  weights = [[main_params[2 * i, j] for j in range(4)] for i in range(layers)]
  biases = [[main_params[2 * i + 1, j] for j in range(4)] for i in range(layers)]
  extra = [extra_params[j] for j in range(3)]
  return (weights, biases, extra, [state[2 * i] for i in range(layers)],
          [state[2 * i + 1] for i in range(layers)])


def make_lstm_objective(xp, sigmoid):
  """ADBench's loss with a Python loop over the characters (op by op in eager mode)."""
  step = make_lstm_step(xp, sigmoid)

  def lstm_objective(main_params, extra_params, state, sequence):
    weights, biases, extra, hiddens, cells = unpack(main_params, extra_params, state)
    chars, b = sequence.shape
    total = 0.0
    for t in range(chars - 1):
      hiddens, cells, loglik = step(weights, biases, extra, hiddens, cells, sequence[t],
                                    sequence[t + 1])
      total = total + loglik
    return -total / ((chars - 1) * b)
  return lstm_objective


lstm_objective = make_lstm_objective(dnp, dsp.expit)


def numpy_sigmoid(x):
  return 1 / (1 + np.exp(-x))


# ---- the hand-written NumPy value and gradient (the floor) -------------------------------


def lstm_value_and_grad_numpy(main_params, extra_params, state, sequence):
  """Value and gradient by hand: a forward pass that keeps each step's gates, a backward pass
  over the steps in reverse, and the prediction and loss vectorized over all steps."""
  layers = main_params.shape[0] // 2
  chars, b = sequence.shape
  steps = chars - 1
  w, bias = main_params[0::2], main_params[1::2]                  # (l, 4, b) each
  w_in, w_out, b_out = extra_params
  xs = sequence[:-1] * w_in                                       # (steps, b)
  inputs = np.empty((steps, layers, 4, b))                        # [x, h_prev, x, h_prev]
  gates = np.empty((steps, layers, 4, b))                         # forget, in, out, change
  cells = np.empty((steps + 1, layers, b))
  tanh_cells = np.empty((steps, layers, b))
  hidden, cells[0] = state[0::2].copy(), state[1::2]
  for t in range(steps):
    x = xs[t]
    for i in range(layers):
      xh = inputs[t, i]
      xh[0] = xh[2] = x
      xh[1] = xh[3] = hidden[i]
      z = xh * w[i] + bias[i]
      gate = gates[t, i]
      gate[:3] = numpy_sigmoid(z[:3])
      gate[3] = np.tanh(z[3])
      cells[t + 1, i] = cells[t, i] * gate[0] + gate[1] * gate[3]
      tanh_cells[t, i] = np.tanh(cells[t + 1, i])
      x = hidden[i] = gate[2] * tanh_cells[t, i]
  top = gates[:, -1, 2] * tanh_cells[:, -1]                       # (steps, b)
  y = top * w_out + b_out
  sum_exp = np.exp(y).sum(axis=1, keepdims=True) + 2
  targets = sequence[1:]
  count = steps * b
  value = -np.sum(targets * (y - np.log(sum_exp))) / count
  y_bar = -(targets - targets.sum(axis=1, keepdims=True) * np.exp(y) / sum_exp) / count
  top_bar = y_bar * w_out
  z_bar = np.empty((steps, layers, 4, b))
  hidden_bar = np.zeros((layers, b))                              # from step t + 1
  cell_bar = np.zeros((layers, b))
  x_bar = np.empty((steps, b))
  for t in range(steps - 1, -1, -1):
    from_above = top_bar[t]
    for i in range(layers - 1, -1, -1):
      gate, tc = gates[t, i], tanh_cells[t, i]
      h_bar = hidden_bar[i] + from_above
      c_bar = cell_bar[i] + h_bar * gate[2] * (1 - tc * tc)
      zb = z_bar[t, i]
      zb[0] = c_bar * cells[t, i]                                 # d forget
      zb[1] = c_bar * gate[3]                                     # d ingate
      zb[2] = h_bar * tc                                          # d outgate
      zb[3] = c_bar * gate[1]                                     # d change
      zb[:3] *= gate[:3] * (1 - gate[:3])
      zb[3] *= 1 - gate[3] * gate[3]
      cell_bar[i] = c_bar * gate[0]
      xh_bar = zb * w[i]
      hidden_bar[i] = xh_bar[1] + xh_bar[3]
      from_above = xh_bar[0] + xh_bar[2]
    x_bar[t] = from_above
  main_bar = np.empty_like(main_params)
  main_bar[0::2] = np.sum(z_bar * inputs, axis=0)
  main_bar[1::2] = np.sum(z_bar, axis=0)
  extra_bar = np.stack([np.sum(x_bar * sequence[:-1], axis=0), np.sum(y_bar * top, axis=0),
                        np.sum(y_bar, axis=0)])
  return value, (main_bar, extra_bar)


# ---- the tools ------------------------------------------------------------------------------


def torch_objective(torch):
  """The objective transcribed to PyTorch's API (same steps, torch.sigmoid)."""
  def objective(main_params, extra_params, state, sequence):
    layers = main_params.shape[0] // 2
    weights = [main_params[2 * i].unbind(0) for i in range(layers)]
    biases = [main_params[2 * i + 1].unbind(0) for i in range(layers)]
    w_in, w_out, b_out = extra_params.unbind(0)
    hiddens = [state[2 * i] for i in range(layers)]
    cells = [state[2 * i + 1] for i in range(layers)]
    chars, b = sequence.shape
    total = 0.0
    for t in range(chars - 1):
      x = sequence[t] * w_in
      for i, ((wf, wi, wo, wc), (bf, bi, bo, bc)) in enumerate(zip(weights, biases)):
        forget = torch.sigmoid(x * wf + bf)
        ingate = torch.sigmoid(hiddens[i] * wi + bi)
        outgate = torch.sigmoid(x * wo + bo)
        change = torch.tanh(hiddens[i] * wc + bc)
        cells[i] = cells[i] * forget + ingate * change
        hiddens[i] = outgate * torch.tanh(cells[i])
        x = hiddens[i]
      y = x * w_out + b_out
      total = total + torch.sum(sequence[t + 1] * (y - torch.log(torch.sum(torch.exp(y)) + 2)))
    return -total / ((chars - 1) * b)
  return objective


def make_scan_objective(xp, sigmoid, scan):
  """The same step function under a scan (`dfdx.scan`, `jax.lax.scan`): what a user writes
  for jit, where the loop is then compiled once instead of unrolled."""
  step = make_lstm_step(xp, sigmoid)

  def objective(main_params, extra_params, state, sequence):
    weights, biases, extra, hiddens, cells = unpack(main_params, extra_params, state)

    def body(carry, xy):
      hiddens, cells, loglik = step(weights, biases, extra, *carry, *xy)
      return (hiddens, cells), loglik
    _, logliks = scan(body, (hiddens, cells), (sequence[:-1], sequence[1:]))
    return -xp.sum(logliks) / sequence[1:].size
  return objective


def tool_makers(data):
  """{tool name: () -> Tool} for the LSTM with the inputs `data` bound. Every derivative is
  value_and_grad with respect to (main_params, extra_params)."""
  numpy_objective = make_lstm_objective(np, numpy_sigmoid)

  def numpy_tool():
    return Tool(lambda: numpy_objective(*data), lambda: lstm_value_and_grad_numpy(*data),
                "gradient by hand")

  def dfdx_eager():
    vg = dfdx.value_and_grad(lstm_objective, (0, 1))
    return Tool(lambda: lstm_objective(*data), lambda: vg(*data))

  def dfdx_jit():
    scanned = make_scan_objective(dnp, dsp.expit, dfdx.scan)
    objective = dfdx.jit(scanned)
    vg = dfdx.jit(dfdx.value_and_grad(scanned, (0, 1)))
    return Tool(lambda: objective(*data), lambda: vg(*data), "dfdx.scan")

  def autograd_tool():
    import autograd
    import autograd.numpy as anp
    import autograd.scipy.special as asp
    objective = make_lstm_objective(anp, asp.expit)
    vg = autograd.value_and_grad(objective, (0, 1))
    return Tool(lambda: objective(*data), lambda: vg(*data))

  def jax_tool(jit):
    jax, jnp = import_jax()
    if jit:
      objective = jax.jit(make_scan_objective(jnp, jax.nn.sigmoid, jax.lax.scan))
    else:
      objective = make_lstm_objective(jnp, jax.nn.sigmoid)
    vg = jax.value_and_grad(objective, argnums=(0, 1))
    if jit:
      vg = jax.jit(vg)

    def derivative():
      value, grads = vg(*data)
      return float(value), tuple(np.asarray(g) for g in grads)
    return Tool(lambda: float(objective(*data)), derivative, "lax.scan" if jit else "")

  def torch_tool():
    torch = import_torch()
    return torch_backward_tool(torch, torch_objective(torch), data[:2],
                               [torch.as_tensor(v) for v in data[2:]])

  return {"numpy": numpy_tool, "dfdx eager": dfdx_eager, "dfdx jit": dfdx_jit,
          "autograd": autograd_tool, "jax eager": lambda: jax_tool(False),
          "jax jit": lambda: jax_tool(True), "pytorch": torch_tool}


def measure(size, tools=None, samples=5):
  """Rows (see common.py) for the LSTM at size (layers, characters), b = 14."""
  layers, chars = size
  data = lstm_data(layers, chars)
  reference = lstm_value_and_grad_numpy(*data)
  fd = fd_error(make_lstm_objective(np, numpy_sigmoid), data, (0, 1), reference[1])
  n_params = data[0].size + data[1].size
  skip = {}
  if tools is None and layers * chars > 2048:  # asked for by name, it runs
    skip["jax eager"] = ("skipped by default at this size: about 15 s a call at l=2, "
                         "c=1024, and it scales with l * c; ask for it with --tools jax-eager")
  return measure_tools(NAME, size, n_params, reference, tool_makers(data), tools, samples, fd,
                       skip)
