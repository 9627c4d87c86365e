"""Fused CUDA kernels for the CuPy backend: softmax, log_softmax, cross_entropy, layer_norm, GELU,
and the order-fixed scatter-add of embedding and index gradients.

Each op that would take several passes over memory as array expressions (max, subtract,
exp, sum, divide: one kernel and one full read/write each) runs here as one kernel that
reads a row once into cache and writes its result once. The entry points and what they
compute are those of the same-named kernels in array_kernels.py (plain array expressions,
the readable specification); tests check the two agree on the GPU.

Storage types: float32, float64, float16 and bfloat16 (CuPy 14 with ml_dtypes). Half
types are loaded into float32 and every sum, max and mean accumulates in float32
(float64 for float64), so a float16 softmax over 50,000 logits loses nothing to its sum.
Kernels are compiled with NVRTC on first use, once per dtype (CuPy caches them on disk).
"""
from __future__ import annotations

import numpy as np

# Per storage dtype: the C type the kernel reads, the accumulator type, and load/store.
# Half types travel as raw 16-bit words and are converted with one PTX instruction,
# so no CUDA header has to be found by NVRTC.
_TYPES = {
    "float32": ("float", "float", """
__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float st(float v) { return v; }
"""),
    "float64": ("double", "double", """
__device__ __forceinline__ double ld(double v) { return v; }
__device__ __forceinline__ double st(double v) { return v; }
"""),
    "float16": ("unsigned short", "float", """
__device__ __forceinline__ float ld(unsigned short h) {
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short st(float f) {
    unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
"""),
    "bfloat16": ("unsigned short", "float", """
__device__ __forceinline__ float ld(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
__device__ __forceinline__ unsigned short st(float f) {
    unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
"""),
}

_MATH = {
    "float": "#define EXP expf\n#define LOG logf\n#define RSQRT rsqrtf\n#define TANH tanhf\n"
             "#define NEG_INF (-__int_as_float(0x7f800000))\n#define NAN_A __int_as_float(0x7fc00000)\n",
    "double": "#define EXP exp\n#define LOG log\n#define RSQRT rsqrt\n#define TANH tanh\n"
              "#define NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))\n"
              "#define NAN_A __longlong_as_double(0x7ff8000000000000LL)\n",
}

# One thread block per row for the row kernels: the block reduces the row (warp
# shuffles, then one shared slot per warp), so every thread ends up with the row's sum.
_KERNELS = r"""
// max that propagates NaN, as NumPy's max does: `b > a ? b : a` and fmax would both drop it
__device__ __forceinline__ A nan_max(A a, A b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ A warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ A warp_max(A v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// blockDim.x is a multiple of 32; `buf` holds one value per warp
__device__ A block_sum(A v, A* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // the previous reduction may still be reading buf
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    return warp_sum(lane < nwarps ? buf[lane] : (A)0);
}
__device__ A block_max(A v, A* buf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    return warp_max(lane < nwarps ? buf[lane] : NEG_INF);
}

// y = softmax(x) over each row; mask (optional, 1 = keep) has mask_rows rows, row r uses r % mask_rows.
// A row with nothing kept is all zeros; a NaN among the kept scores makes the whole row NaN.
extern "C" __global__ void softmax_fwd(const T* __restrict__ x, const unsigned char* __restrict__ mask,
                                       T* __restrict__ y, const int C, const int has_mask,
                                       const long long mask_rows) {
    __shared__ A buf[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * C;
    T* yr = y + row * C;
    const unsigned char* mr = mask + (has_mask ? (row % mask_rows) * C : 0);
    A m = NEG_INF;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        if (!has_mask || mr[j]) { const A v = ld(xr[j]); m = nan_max(m, v); }
    m = block_max(m, buf);
    if (m == NEG_INF) m = 0;  // nothing kept: every term below is 0
    A s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        if (!has_mask || mr[j]) s += EXP(ld(xr[j]) - m);
    s = block_sum(s, buf);
    const A inv = s == (A)0 ? (A)0 : (A)1 / s;  // a NaN sum stays NaN (a NaN score makes its row NaN)
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        yr[j] = st((!has_mask || mr[j]) ? EXP(ld(xr[j]) - m) * inv : (A)0);
}

// dx = y * (g - sum(g * y)) per row
extern "C" __global__ void softmax_bwd(const T* __restrict__ y, const T* __restrict__ g,
                                       T* __restrict__ dx, const int C) {
    __shared__ A buf[32];
    const long long off = (long long)blockIdx.x * C;
    A d = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) d += ld(y[off + j]) * ld(g[off + j]);
    d = block_sum(d, buf);
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dx[off + j] = st(ld(y[off + j]) * (ld(g[off + j]) - d));
}

// y = (x - max) - log(sum(exp(x - max))) per row: exact near the max even for |x| of 1e4
extern "C" __global__ void log_softmax_fwd(const T* __restrict__ x, T* __restrict__ y, const int C) {
    __shared__ A buf[32];
    const long long off = (long long)blockIdx.x * C;
    A m = NEG_INF;
    for (int j = threadIdx.x; j < C; j += blockDim.x) { const A v = ld(x[off + j]); m = nan_max(m, v); }
    m = block_max(m, buf);
    A s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += EXP(ld(x[off + j]) - m);
    const A log_s = LOG(block_sum(s, buf));
    for (int j = threadIdx.x; j < C; j += blockDim.x) y[off + j] = st((ld(x[off + j]) - m) - log_s);
}

// dx = g - exp(y) * sum(g) per row
extern "C" __global__ void log_softmax_bwd(const T* __restrict__ y, const T* __restrict__ g,
                                           T* __restrict__ dx, const int C) {
    __shared__ A buf[32];
    const long long off = (long long)blockIdx.x * C;
    A s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += ld(g[off + j]);
    s = block_sum(s, buf);
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dx[off + j] = st(ld(g[off + j]) - EXP(ld(y[off + j])) * s);
}

// Per row, with m = max(x) and ls = log(sum(exp(x - m))): loss = ls - (x[t] - m), or with label
// smoothing eps (1 - eps) that + eps (ls - mean(x - m)); rows whose target is ignore_index get 0.
// Works on x - m (exact near the max) rather than on logsumexp, which rounds at the scale of |x|.
// stats[row] = (m, ls) is all backward needs to recompute the probabilities.
extern "C" __global__ void cross_entropy_fwd(const T* __restrict__ x, const long long* __restrict__ targets,
                                             A* __restrict__ loss, A* __restrict__ stats, const int C,
                                             const long long ignore_index, const A eps) {
    __shared__ A buf[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * C;
    A m = NEG_INF;
    for (int j = threadIdx.x; j < C; j += blockDim.x) { const A v = ld(xr[j]); m = nan_max(m, v); }
    m = block_max(m, buf);
    A s = 0, shifted_sum = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        const A d = ld(xr[j]) - m;
        s += EXP(d);
        shifted_sum += d;
    }
    const A ls = LOG(block_sum(s, buf));
    if (eps != (A)0) shifted_sum = block_sum(shifted_sum, buf);
    if (threadIdx.x == 0) {
        const long long t = targets[row];
        A l = 0;
        if (t != ignore_index && (t < 0 || t >= C)) {
            l = NAN_A;  // an id out of range (unchecked on the GPU, see debug_checks.py): NaN, no stray read
        } else if (t != ignore_index) {
            l = ls - (ld(xr[t]) - m);
            if (eps != (A)0) l = ((A)1 - eps) * l + eps * (ls - shifted_sum / C);
        }
        loss[row] = l;
        stats[2 * row] = m;
        stats[2 * row + 1] = ls;
    }
}

// dx = scale_row * (softmax(x) - target distribution), softmax recomputed from stats = (m, ls);
// scale_row = gscale[row * gstride] (0 for ignored rows).
extern "C" __global__ void cross_entropy_bwd(const T* __restrict__ x, const long long* __restrict__ targets,
                                             const A* __restrict__ stats, const A* __restrict__ gscale,
                                             const long long gstride, T* __restrict__ dx, const int C,
                                             const long long ignore_index, const A eps) {
    const long long row = blockIdx.x;
    const long long t = targets[row];
    const A scale = t == ignore_index ? (A)0 : gscale[row * gstride];
    const A m = stats[2 * row], ls = stats[2 * row + 1];
    const A off_value = eps / C, on_value = (A)1 - eps + eps / C;
    const T* xr = x + row * C;
    T* dr = dx + row * C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dr[j] = st(scale * (EXP((ld(xr[j]) - m) - ls) - (j == t ? on_value : off_value)));
}

// y = (x - mean) * rstd * w + b per row; saves mean and rstd (accumulator type)
extern "C" __global__ void layer_norm_fwd(const T* __restrict__ x, const T* __restrict__ w,
                                          const T* __restrict__ b, T* __restrict__ y,
                                          A* __restrict__ mean_out, A* __restrict__ rstd_out,
                                          const int C, const A eps) {
    __shared__ A buf[32];
    const long long off = (long long)blockIdx.x * C;
    A s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += ld(x[off + j]);
    const A mean = block_sum(s, buf) / C;
    A v = 0;  // two passes (mean first): no cancellation in E[x^2] - E[x]^2
    for (int j = threadIdx.x; j < C; j += blockDim.x) { const A d = ld(x[off + j]) - mean; v += d * d; }
    const A rstd = RSQRT(block_sum(v, buf) / C + eps);
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        y[off + j] = st((ld(x[off + j]) - mean) * rstd * ld(w[j]) + ld(b[j]));
    if (threadIdx.x == 0) { mean_out[blockIdx.x] = mean; rstd_out[blockIdx.x] = rstd; }
}

// dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat)), gh = g * w, xhat recomputed
extern "C" __global__ void layer_norm_bwd_dx(const T* __restrict__ x, const T* __restrict__ w,
                                             const T* __restrict__ g, const A* __restrict__ mean,
                                             const A* __restrict__ rstd, T* __restrict__ dx, const int C) {
    __shared__ A buf[32];
    const long long off = (long long)blockIdx.x * C;
    const A mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    A s1 = 0, s2 = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        const A gh = ld(g[off + j]) * ld(w[j]);
        s1 += gh;
        s2 += gh * (ld(x[off + j]) - mu) * r;
    }
    s1 = block_sum(s1, buf) / C;
    s2 = block_sum(s2, buf) / C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        const A gh = ld(g[off + j]) * ld(w[j]);
        dx[off + j] = st(r * (gh - s1 - (ld(x[off + j]) - mu) * r * s2));
    }
}

// Partial column sums of g * xhat (dweight) and g (dbias) over a chunk of rows:
// block (column tile, chunk); the host sums the chunks.
extern "C" __global__ void layer_norm_bwd_dwdb(const T* __restrict__ x, const T* __restrict__ g,
                                               const A* __restrict__ mean, const A* __restrict__ rstd,
                                               A* __restrict__ dw_part, A* __restrict__ db_part,
                                               const long long N, const int C, const int rows_per_chunk) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C) return;
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
    A sw = 0, sb = 0;
    for (long long r = r0; r < r1; ++r) {
        const A gv = ld(g[r * C + j]);
        sw += gv * (ld(x[r * C + j]) - mean[r]) * rstd[r];
        sb += gv;
    }
    dw_part[(long long)blockIdx.y * C + j] = sw;
    db_part[(long long)blockIdx.y * C + j] = sb;
}

// Order-fixed scatter-add of rows (embedding and index gradients): sorted ids, their rows'
// original positions `order`, `heads` (1 where a run of equal ids starts; array_kernels.sorted_runs).
// Block i sums run i's rows first to last and adds the sum to its target row: each target
// element is written by one thread, so there are no atomics and the bits never vary.
extern "C" __global__ void segment_sum_rows(const long long* __restrict__ sorted_ids,
                                            const long long* __restrict__ order,
                                            const bool* __restrict__ heads, const T* __restrict__ values,
                                            T* __restrict__ target, const long long n, const int D,
                                            const long long rows) {
    const long long i = blockIdx.x;
    if (!heads[i]) return;
    const long long id = sorted_ids[i];  // negative ids were wrapped before the sort
    if (id < 0 || id >= rows) return;  // out of range (unchecked on the GPU): no stray write
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        A acc = 0;
        for (long long r = i; r < n && (r == i || !heads[r]); ++r) acc += ld(values[order[r] * D + j]);
        target[id * D + j] = st(ld(target[id * D + j]) + acc);
    }
}

#define GELU_K0 ((A)0.7978845608028654)  /* sqrt(2 / pi) */
#define GELU_K1 ((A)0.044715)

extern "C" __global__ void gelu_fwd(const T* __restrict__ x, T* __restrict__ y, const long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const A v = ld(x[i]);
        const A t = TANH(GELU_K0 * (v + GELU_K1 * v * v * v));
        y[i] = st((A)0.5 * v * ((A)1 + t));
    }
}

extern "C" __global__ void gelu_bwd(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dx,
                                    const long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const A v = ld(x[i]);
        const A t = TANH(GELU_K0 * (v + GELU_K1 * v * v * v));
        const A dt = GELU_K0 * ((A)1 + (A)3 * GELU_K1 * v * v);
        dx[i] = st(ld(g[i]) * ((A)0.5 * ((A)1 + t) + (A)0.5 * v * ((A)1 - t * t) * dt));
    }
}
"""


def dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def _row_threads(C: int) -> int:
    """Threads per row block: a multiple of 32, about one element per thread, at most 512."""
    return min(512, max(32, -(-C // 32) * 32))


class CupyFused:
    """The CUDA kernels that CupyBackend runs for its named kernels (array_kernels.py gives the formulas)."""

    def __init__(self, cupy):
        self.xp = cupy
        self._modules = {}
        self._functions = {}
        self._no_mask = None

    # ---- plumbing ---------------------------------------------------------
    def supports(self, *arrays) -> bool:
        """True when every array has the same dtype and a kernel exists for it."""
        dtype = arrays[0].dtype
        return all(a.dtype == dtype for a in arrays) and dtype_name(dtype) in _TYPES

    def _kernel(self, dtype, name):
        """The compiled kernel `name` for storage `dtype` (the module is built once per dtype)."""
        key = (dtype_name(dtype), name)
        kernel = self._functions.get(key)
        if kernel is None:
            module = self._modules.get(key[0])
            if module is None:
                storage, acc, convert = _TYPES[key[0]]
                source = f"typedef {storage} T;\ntypedef {acc} A;\n" + _MATH[acc] + convert + _KERNELS
                module = self._modules[key[0]] = self.xp.RawModule(code=source)
            kernel = self._functions[key] = module.get_function(name)
        return kernel

    @staticmethod
    def acc_dtype(dtype):
        """float64 accumulates in float64, every other float in float32."""
        return np.float64 if np.dtype(dtype) == np.float64 else np.float32

    def _contiguous(self, x):
        # ascontiguousarray turns a 0-d array into shape (1,): keep the shape
        return self.xp.ascontiguousarray(x).reshape(x.shape)

    def _rows(self, x):
        x = self._contiguous(x)
        C = x.shape[-1] if x.ndim else 1
        return x, x.size // max(C, 1), C

    def _mask(self, mask, shape):
        """The mask as contiguous rows of length C, and how many distinct rows it has.

        A mask that only lacks leading dims (a causal (T, T) mask for (B, H, T, T) scores)
        is used as is, row r reading mask row r % rows; any other broadcast is expanded.
        """
        xp, C = self.xp, shape[-1]
        m = mask
        while m.ndim > 0 and m.shape[0] == 1 and m.ndim > 1:
            m = m[0]
        if m.ndim <= len(shape) and m.shape == tuple(shape[len(shape) - m.ndim:]):
            m = xp.ascontiguousarray(m)
        else:
            m = xp.ascontiguousarray(xp.broadcast_to(mask, shape))
        return m, max(m.size // max(C, 1), 1)

    # ---- softmax / log_softmax -------------------------------------------
    def softmax(self, x, mask=None):
        """softmax over the last axis; boolean `mask` (True = keep, broadcasting) zeroes the rest."""
        xp = self.xp
        if mask is not None:
            shape = np.broadcast_shapes(mask.shape, x.shape)
            if shape != x.shape:
                x = xp.broadcast_to(x, shape)
        x, N, C = self._rows(x)
        y = xp.empty_like(x)
        if x.size == 0:
            return y
        if mask is None:
            if self._no_mask is None:
                self._no_mask = xp.zeros(1, dtype=xp.bool_)
            m, rows, has = self._no_mask, 1, 0
        else:
            (m, rows), has = self._mask(mask, x.shape), 1
        self._kernel(x.dtype, "softmax_fwd")((N,), (_row_threads(C),), (x, m, y, np.int32(C), np.int32(has), np.int64(rows)))
        return y

    def softmax_backward(self, y, g):
        return self._row_backward("softmax_bwd", y, g)

    def log_softmax(self, x):
        x, N, C = self._rows(x)
        y = self.xp.empty_like(x)
        if x.size:
            self._kernel(x.dtype, "log_softmax_fwd")((N,), (_row_threads(C),), (x, y, np.int32(C)))
        return y

    def log_softmax_backward(self, y, g):
        return self._row_backward("log_softmax_bwd", y, g)

    def _row_backward(self, name, y, g):
        y, N, C = self._rows(y)
        g = self._contiguous(self.xp.broadcast_to(g, y.shape).astype(y.dtype, copy=False))
        dx = self.xp.empty_like(y)
        if y.size:
            self._kernel(y.dtype, name)((N,), (_row_threads(C),), (y, g, dx, np.int32(C)))
        return dx

    # ---- cross entropy ----------------------------------------------------
    def cross_entropy(self, logits, targets, ignore_index, label_smoothing=0.0):
        """Per-position loss (shape of targets) and the row statistics backward needs
        (targets.shape + (2,): max and log-sum-exp of the shifted row), accumulator dtype."""
        xp = self.xp
        x, N, C = self._rows(logits)
        acc = self.acc_dtype(x.dtype)
        t = xp.ascontiguousarray(targets.reshape(-1).astype(xp.int64, copy=False))
        loss = xp.empty(N, dtype=acc)
        stats = xp.empty((N, 2), dtype=acc)
        if N:
            self._kernel(x.dtype, "cross_entropy_fwd")(
                (N,), (_row_threads(C),),
                (x, t, loss, stats, np.int32(C), np.int64(ignore_index), acc(label_smoothing)))
        return loss.reshape(targets.shape), stats.reshape(targets.shape + (2,))

    def cross_entropy_backward(self, logits, targets, stats, grad_scale, ignore_index, label_smoothing=0.0):
        """d loss / d logits for loss rows weighted by `grad_scale` (a scalar or one value per row)."""
        xp = self.xp
        x, N, C = self._rows(logits)
        acc = self.acc_dtype(x.dtype)
        t = xp.ascontiguousarray(targets.reshape(-1).astype(xp.int64, copy=False))
        scale = xp.ascontiguousarray(xp.asarray(grad_scale).astype(acc, copy=False).reshape(-1))
        dx = xp.empty_like(x)
        if N:
            self._kernel(x.dtype, "cross_entropy_bwd")(
                (N,), (_row_threads(C),),
                (x, t, xp.ascontiguousarray(stats.reshape(-1, 2)), scale, np.int64(0 if scale.size == 1 else 1), dx,
                 np.int32(C), np.int64(ignore_index), acc(label_smoothing)))
        return dx

    # ---- layer norm -------------------------------------------------------
    def layer_norm(self, x, weight, bias, eps):
        """Normalized, scaled and shifted rows, and the per-row mean and 1/std (accumulator dtype)."""
        xp = self.xp
        x, N, C = self._rows(x)
        acc = self.acc_dtype(x.dtype)
        y = xp.empty_like(x)
        mean = xp.empty(x.shape[:-1], dtype=acc)
        rstd = xp.empty(x.shape[:-1], dtype=acc)
        if x.size:
            self._kernel(x.dtype, "layer_norm_fwd")(
                (N,), (_row_threads(C),),
                (x, xp.ascontiguousarray(weight), xp.ascontiguousarray(bias), y, mean, rstd, np.int32(C), acc(eps)))
        return y, mean, rstd

    def layer_norm_backward(self, x, weight, g, mean, rstd, need_dx=True, need_dweight=True, need_dbias=True):
        """(dx, dweight, dbias), each None where not needed."""
        xp = self.xp
        x, N, C = self._rows(x)
        acc = self.acc_dtype(x.dtype)
        g = self._contiguous(g.astype(x.dtype, copy=False))
        mean, rstd = xp.ascontiguousarray(mean), xp.ascontiguousarray(rstd)
        dx = dw = db = None
        if need_dx:
            dx = xp.empty_like(x)
            if x.size:
                self._kernel(x.dtype, "layer_norm_bwd_dx")(
                    (N,), (_row_threads(C),), (x, xp.ascontiguousarray(weight), g, mean, rstd, dx, np.int32(C)))
        if need_dweight or need_dbias:
            rows_per_chunk = max(32, -(-N // 512))
            chunks = max(1, -(-N // rows_per_chunk))
            dw_part = xp.zeros((chunks, C), dtype=acc)
            db_part = xp.zeros((chunks, C), dtype=acc)
            if x.size:
                self._kernel(x.dtype, "layer_norm_bwd_dwdb")(
                    (-(-C // 256), chunks), (256,),
                    (x, g, mean, rstd, dw_part, db_part, np.int64(N), np.int32(C), np.int32(rows_per_chunk)))
            if need_dweight:
                dw = dw_part.sum(axis=0).astype(weight.dtype, copy=False)
            if need_dbias:
                db = db_part.sum(axis=0).astype(weight.dtype, copy=False)
        return dx, dw, db

    # ---- order-fixed scatter-add -------------------------------------------
    def scatter_add_rows(self, target, ids, values) -> None:
        """target[ids] += values for a contiguous target (rows, ...) and integer ids: the rows
        of one id summed first to last (deterministic, no atomics)."""
        from .array_kernels import sorted_runs
        xp = self.xp
        flat = ids.reshape(-1).astype(xp.int64, copy=False)
        n = flat.size
        if n == 0 or target.size == 0:
            return
        rows, D = target.shape[0], target.size // target.shape[0]
        flat = xp.where(flat < 0, flat + rows, flat)  # -1 and rows-1 are one row: one run, one writer
        values = self._contiguous(xp.broadcast_to(values, ids.shape + target.shape[1:]).astype(target.dtype, copy=False))
        order, sorted_ids, heads = sorted_runs(xp, flat)
        self._kernel(target.dtype, "segment_sum_rows")(
            (n,), (_row_threads(D),),
            (sorted_ids, order, heads, values.reshape(n, D), target.reshape(rows, D), np.int64(n), np.int32(D),
             np.int64(rows)))

    # ---- GELU (tanh approximation) ---------------------------------------
    def gelu(self, x):
        xp = self.xp
        x = self._contiguous(x)
        y = xp.empty_like(x)
        if x.size:
            self._kernel(x.dtype, "gelu_fwd")(*self._grid(x.size), (x, y, np.int64(x.size)))
        return y

    def gelu_backward(self, x, g):
        xp = self.xp
        x = self._contiguous(x)
        g = self._contiguous(xp.broadcast_to(g, x.shape).astype(x.dtype, copy=False))
        dx = xp.empty_like(x)
        if x.size:
            self._kernel(x.dtype, "gelu_bwd")(*self._grid(x.size), (x, g, dx, np.int64(x.size)))
        return dx

    @staticmethod
    def _grid(n):
        return (min(-(-n // 256), 65535),), (256,)

