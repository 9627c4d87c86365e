"""`grad(outputs, inputs)`: gradients as values, without touching `.grad`."""
from .autograd import run_backward
from .errors import GraphError
from .tensor import Tensor, _as_grad


def grad(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None, allow_unused=False):
    """d(sum of outputs * grad_outputs)/d(inputs), returned as a tuple of Tensors.

    With `create_graph=True` the gradients carry a graph, so they can be differentiated
    again. `retain_graph` defaults to `create_graph`. An input the outputs do not depend
    on gives an error, or None with `allow_unused=True`.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    roots, seeds = [], []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise GraphError(f"grad(): an output of shape {out.shape} does not require grad")
        if g is None:
            if out.size != 1:
                raise GraphError(f"grad(): grad_outputs is needed for the non-scalar output of shape {out.shape}")
            g = Tensor.wrap(out.backend.xp.ones(out.shape, dtype=out.dtype), out.device)
        roots.append(out)
        seeds.append(_as_grad(g, out))
    for t in inputs:
        if not t.requires_grad:
            raise GraphError(f"grad(): an input of shape {t.shape} does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(roots, seeds, retain_graph=retain, create_graph=create_graph, inputs=inputs)
    for i, g in enumerate(found):
        if g is None and not allow_unused:
            raise GraphError(f"grad(): input {i} (shape {inputs[i].shape}) is not used by the outputs; "
                             "pass allow_unused=True to get None for it")
    return tuple(found)
