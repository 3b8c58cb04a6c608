"""dfdx: exact derivatives of ordinary NumPy code.

Composable transformations (grad, jvp, vjp, jacobians, hessians, vmap) of functions written
with `dfdx.numpy`, NumPy's API made differentiable.

>>> import dfdx, dfdx.numpy as dnp
>>> float(dfdx.grad(dnp.sin)(0.0))
1.0
"""
from dfdx._src import memory as _memory  # noqa: F401  (malloc keeps freed memory: see there)
from dfdx._src import ops as _ops  # noqa: F401  (registers the primitives)
from dfdx._src.api import (  # noqa: F401
    grad as grad,
    hessian as hessian,
    hvp as hvp,
    jacfwd as jacfwd,
    jacobian as jacobian,
    jacrev as jacrev,
    jet as jet,
    jvp as jvp,
    stop_gradient as stop_gradient,
    linearize as linearize,
    value_and_grad as value_and_grad,
    vector_grad as vector_grad,
    vjp as vjp,
    vmap as vmap,
)
from dfdx._src.jit import jit as jit, make_expr as make_expr  # noqa: F401
from dfdx._src.ops.control_flow import fori_loop as fori_loop, scan as scan  # noqa: F401
from dfdx._src.ops.branches import (  # noqa: F401
    cond as cond, switch as switch, while_loop as while_loop)
from dfdx._src.custom import (  # noqa: F401
    checkpoint as checkpoint,
    custom_jvp as custom_jvp,
    custom_vjp as custom_vjp,
)
from dfdx._src.implicit import (  # noqa: F401
    custom_linear_solve as custom_linear_solve, custom_root as custom_root)
from dfdx._src.callback import (  # noqa: F401
    ShapeDtypeStruct as ShapeDtypeStruct, eval_shape as eval_shape, pure_callback as pure_callback)
from dfdx._src.state import Module as Module, TrainVar as TrainVar, Variable as Variable  # noqa: F401
from dfdx._src.errors import (  # noqa: F401
    ArgnumsError as ArgnumsError,
    AxisSizeError as AxisSizeError,
    ConcretizationError as ConcretizationError,
    DfdxError as DfdxError,
    EscapedTracerError as EscapedTracerError,
    MissingRuleError as MissingRuleError,
    NaNError as NaNError,
    NonDifferentiableInputError as NonDifferentiableInputError,
    NonScalarOutputError as NonScalarOutputError,
    PytreeError as PytreeError,
    TracerArrayConversionError as TracerArrayConversionError,
)
from dfdx import tree as tree  # noqa: F401
from dfdx import testing as testing  # noqa: F401
from dfdx import export as export  # noqa: F401
import dfdx.numpy  # noqa: F401,E402  (installs array behaviour on traced values)
from dfdx._src.debug import debug_nans as debug_nans  # noqa: F401,E402  (last: see its env var)

__version__ = "0.1.0"
