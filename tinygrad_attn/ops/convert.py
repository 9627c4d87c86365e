"""Moving a tensor between devices and dtypes: the gradient goes back the same way."""
from ..autograd import Function
from ..backend import get_backend


class ToDevice(Function):
    def forward(self, a, device):
        target = get_backend(device)
        self.out_device, self.source = target.device, self.backend.device
        return target.asarray(a)  # a backend's asarray takes arrays of any backend

    def backward(self, g):
        return (g.to(self.source),)


class Cast(Function):
    def forward(self, a, dtype):
        return a.astype(dtype)

    def backward(self, g):
        return (g.astype(self.inputs[0].dtype),)
