"""tinygrad_attn: a small reverse-mode autograd engine for studying and training attention models.

    import tinygrad_attn as tga
    from tinygrad_attn import functional as F
"""
import numpy as np

from .autograd import enable_grad, is_grad_enabled, no_grad
from .backend import (cuda_is_available, get_backend, keep_freed_host_memory, manual_seed, set_debug_checks,
                      set_num_threads)
from .errors import (CheckpointError, ConfigError, DataError, DeviceError, DTypeError, GraphError, NonFiniteError,
                     RunInUseError, ShapeError, TinygradAttnError, TokenizerError)
from .tensor import Tensor
from . import functional
from . import functional as F
from .factories import (arange, eye, full, full_like, linspace, meshgrid, ones, ones_like, rand, randint, randn, tensor,
                        zeros, zeros_like)
from .gradients import grad
from . import nn, optim, checkpoint

float32, float64, float16, int64, int32, bool_ = np.float32, np.float64, np.float16, np.int64, np.int32, np.bool_

__version__ = "0.1.0"
