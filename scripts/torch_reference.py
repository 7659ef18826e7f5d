#!/usr/bin/python3
"""torch_reference.py: PyTorch reference fixtures for IsoNet-1 and IsoNet-2 (tests/test_torch_reference.cpp).

Builds both networks in PyTorch with the same layers, parameter names and wiring as nn/isonet1.h and
nn/isonet2.h, initializes them with the SAME seeded Glorot-uniform weights our C++ code draws
(nn/parameters.cpp: the counter-based SplitMix64 hash of kernels/rng.h, reimplemented below with
numpy), sets the biases to small random values (so that the bias paths are exercised), and runs in
float64 (so the fixture is the "exact" answer our float32 code is measured against):
  - the inference forward of the initial model,
  - 3 training steps: forward (with dropout when the case asks for it, using OUR dropout masks,
    recomputed here from the same hash, since torch's RNG differs), the paper's PSNR loss (mean over
    the batch, kernels/psnr_loss.h), backward, torch.optim.Adam (lr 5e-3, PyTorch epsilon convention,
    the float32 values of the hyperparameters our AdamParams hold);
and records the input, target, biases, output, the loss of each step, the parameter gradients of
step 1 and the weights after step 3. Large tensors are sampled (every `sample_stride`-th element)
to keep the committed fixtures small (< 1 MB in all).

Fixture format: safetensors (F32), readable by nn/safetensors.h; metadata describes the case.

Regenerate (from the repository root; needs numpy and torch, e.g. Debian's python3-torch):
    /usr/bin/python3 scripts/torch_reference.py tests/fixtures

Also a module: load_model_file(path) loads one of our model files into these PyTorch modules
(tests/test_model_file.cpp uses it to check that PyTorch reproduces our predictions).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402 (re-exported: load_model_file users)

MASK64 = (1 << 64) - 1


# ---- kernels/rng.h in numpy (uint64 arithmetic wraps, as in C++) ----
def mix64(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def counter_random_u32(seed, step, index):
    """32 random bits for element `index` (an array) of draw `step` under `seed`."""
    a = mix64(np.uint64(seed & MASK64)) ^ np.uint64(step & MASK64)
    return (mix64(mix64(a) ^ np.asarray(index, dtype=np.uint64)) >> np.uint64(32)).astype(np.uint64)


# ---- nn/parameters.cpp: Glorot-uniform from the hash ----
def glorot(seed, tensor_index, shape, fan_in, fan_out, nonnegative=False):
    count = int(np.prod(shape))
    u = (counter_random_u32(seed, tensor_index, np.arange(count, dtype=np.uint64)).astype(np.float64) + 0.5) / 4294967296.0
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    x = limit * (2.0 * u - 1.0)
    if nonnegative:
        x = np.abs(x)
    return x.astype(np.float32).reshape(shape)


# ---- kernels/dropout.h with nn/network.h's DropoutKey ----
LAYER_STRIDE = 16  # DropoutKey::kDropoutLayerStride


def dropout_mask(p, seed, step, layer, shape):
    """Our mask times our scale (float32 values, as the C++ code multiplies)."""
    p32 = np.float32(p)
    t = float(p32) * 4294967296.0
    threshold = 0 if t <= 0 else (4294967295 if t >= 4294967295.0 else int(t))
    keep = counter_random_u32(seed, step * LAYER_STRIDE + layer, np.arange(int(np.prod(shape)), dtype=np.uint64)) >= np.uint64(threshold)
    scale = np.float32(1) / (np.float32(1) - p32)
    return torch.from_numpy(np.where(keep, scale, np.float32(0)).astype(np.float64).reshape(shape))


class Dropout:
    """Applies our dropout mask for (seed, step, layer) when step is not None (training)."""

    def __init__(self, p, seed):
        self.p, self.seed, self.step = p, seed, None

    def __call__(self, x, layer):
        if self.step is None or self.p == 0:
            return x
        return x * dropout_mask(self.p, self.seed, self.step, layer, tuple(x.shape))


def conv(c_in, c_out, k):
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)


class IsoNet1(nn.Module):
    """C64,9x9 - C32,5x5 - C1,5x5 - C1,1x1, ReLU after each; dropout after conv1, conv2 (salts 0, 1)."""

    layers = [("conv1", 1, 64, 9), ("conv2", 64, 32, 5), ("conv3", 32, 1, 5), ("conv4", 1, 1, 1)]

    def __init__(self, drop):
        super().__init__()
        for name, ci, co, k in self.layers:
            setattr(self, name, conv(ci, co, k))
        self.drop = drop

    def forward(self, x):
        x = self.drop(F.relu(self.conv1(x)), 0)
        x = self.drop(F.relu(self.conv2(x)), 1)
        x = F.relu(self.conv3(x))
        return F.relu(self.conv4(x))


class IsoNet2(nn.Module):
    """U-Net with skips [upsampled, skip], dropout after every 7x7 conv (salts 0..4), residual output."""

    layers = [("enc1", 1, 16, 7), ("enc2", 16, 32, 7), ("mid", 32, 64, 7), ("dec2", 96, 32, 7), ("dec1", 48, 16, 7),
              ("out", 16, 1, 1)]

    def __init__(self, drop):
        super().__init__()
        for name, ci, co, k in self.layers:
            setattr(self, name, conv(ci, co, k))
        self.drop = drop

    def forward(self, x):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        e1 = self.drop(F.relu(self.enc1(x)), 0)
        e2 = self.drop(F.relu(self.enc2(F.max_pool2d(e1, 2))), 1)
        m = self.drop(F.relu(self.mid(F.max_pool2d(e2, 2))), 2)
        d2 = self.drop(F.relu(self.dec2(torch.cat([up(m), e2], 1))), 3)
        d1 = self.drop(F.relu(self.dec1(torch.cat([up(d2), e1], 1))), 4)
        return x + self.out(d1)


def psnr_loss(y, t):
    """kernels/psnr_loss.h: -(1/n) sum_p [20 log10 max(max t_p, 1e-10) - 10 log10(mse_p + 1e-10)]."""
    n = y.shape[0]
    mse = ((y - t) ** 2).reshape(n, -1).mean(1)
    tmax = t.reshape(n, -1).max(1).values.clamp(min=1e-10)
    return -(20 * torch.log10(tmax) - 10 * torch.log10(mse + 1e-10)).mean()


def load_model_file(path):
    """Loads an isonet model file (nn/model_file.h) into the matching PyTorch module (float64)."""
    tensors, meta = read_safetensors(path)
    torch.set_default_dtype(torch.float64)
    net = (IsoNet1 if meta["architecture"] == "isonet1" else IsoNet2)(Dropout(0.0, 0))
    state = {k: torch.from_numpy(v.astype(np.float64)) for k, v in tensors.items() if not k.startswith("optimizer.")}
    net.load_state_dict(state)  # strict: every name and shape must match
    return net, meta


def sampled(a, stride, threshold):
    """Every stride-th element of the flattened tensor, or all of it when it is small."""
    flat = np.asarray(a, dtype=np.float32).reshape(-1)
    return flat if flat.size <= threshold else flat[::stride]


def make_case(out_dir, name, arch, shape, dropout, sample_stride, init_seed=20240, dropout_seed=77, data_seed=5,
              steps=3, sample_threshold=4096):
    torch.set_default_dtype(torch.float64)
    drop = Dropout(dropout, dropout_seed)
    net = (IsoNet1 if arch == "isonet1" else IsoNet2)(drop)
    rng = np.random.default_rng(data_seed)
    fixture, meta = {}, {}
    # Weights: our seeded Glorot init (tensor index = position in the layout: weight 2l, bias 2l+1).
    with torch.no_grad():
        for l, (lname, ci, co, k) in enumerate(net.layers):
            nonneg = arch == "isonet1" and lname == "conv4"
            w = glorot(init_seed, 2 * l, (co, ci, k, k), ci * k * k, co * k * k, nonneg)
            b = rng.uniform(-0.1, 0.1, size=co).astype(np.float32)
            getattr(net, lname).weight.copy_(torch.from_numpy(w.astype(np.float64)))
            getattr(net, lname).bias.copy_(torch.from_numpy(b.astype(np.float64)))
            fixture[f"init.{lname}.bias"] = b
            fixture[f"initcheck.{lname}.weight"] = w.reshape(-1)[:16]
    x32 = rng.uniform(0, 1, size=shape).astype(np.float32)
    t32 = np.clip(x32 + rng.normal(0, 0.2, size=shape), 0, 1).astype(np.float32)
    x, t = torch.from_numpy(x32.astype(np.float64)), torch.from_numpy(t32.astype(np.float64))
    fixture["input"], fixture["target"] = x32, t32
    with torch.no_grad():
        drop.step = None
        fixture["output"] = net(x).numpy().astype(np.float32)

    f32 = lambda v: float(np.float32(v))  # our AdamParams hold floats
    opt = torch.optim.Adam(net.parameters(), lr=f32(5e-3), betas=(f32(0.9), f32(0.999)), eps=f32(1e-8))
    losses = []
    for step in range(1, steps + 1):
        drop.step = step  # the trainer keys dropout on the 1-based step it is taking
        opt.zero_grad()
        loss = psnr_loss(net(x), t)
        loss.backward()
        losses.append(loss.item())
        if step == 1:
            for pname, p in net.named_parameters():
                fixture[f"grad.{pname}"] = sampled(p.grad.numpy(), sample_stride, sample_threshold)
        opt.step()
    fixture["loss"] = np.array(losses, dtype=np.float32)
    for pname, p in net.named_parameters():
        fixture[f"final.{pname}"] = sampled(p.detach().numpy(), sample_stride, sample_threshold)
    meta.update(architecture=arch, init_seed=init_seed, dropout=repr(float(np.float32(dropout))), dropout_seed=dropout_seed,
                steps=steps, lr="0.005", sample_stride=sample_stride, sample_threshold=sample_threshold,
                reference="PyTorch %s, float64" % torch.__version__, generator="scripts/torch_reference.py")
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, fixture, meta)
    print("%s: %d bytes, losses %s" % (path, os.path.getsize(path), ", ".join("%.6f" % v for v in losses)))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(out_dir, exist_ok=True)
    make_case(out_dir, "torch_isonet1", "isonet1", (2, 1, 13, 11), dropout=0.0, sample_stride=4)
    make_case(out_dir, "torch_isonet2", "isonet2", (2, 1, 16, 12), dropout=0.0, sample_stride=8)
    make_case(out_dir, "torch_isonet2_dropout", "isonet2", (2, 1, 16, 12), dropout=0.2, sample_stride=32)


if __name__ == "__main__":
    main()
