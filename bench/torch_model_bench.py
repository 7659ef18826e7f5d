#!/usr/bin/env python3
"""torch_model_bench.py: the PyTorch side of the whole-model benchmark (ours: bench/bench_model.cpp).

The networks are scripts/torch_reference.py's IsoNet1/IsoNet2 modules (same layers, names, wiring and
our seeded Glorot init), run in eager mode in float32. Dropout is torch's own F.dropout (p = 0.2, in
training mode only): the reference's hash-based masks are computed in numpy and would make PyTorch
look slower than it is.

Timed, after warm-up, with torch.cuda.synchronize() (and CUDA events) on CUDA:
  train    opt.zero_grad(set_to_none=True); loss = psnr_loss(net(x), t) (kernels/psnr_loss.h);
           loss.backward(); Adam step (lr 5e-3, betas 0.9/0.999, eps 1e-8, as our trainer);
  forward  net(x) under torch.no_grad(), no dropout.
Inputs and targets are fixed [batch,1,patch,patch] tensors already on the device.

CPU: one row, torch.set_num_threads(--threads). CUDA: one row per setting:
  fp32           TF32 off for matmul and cuDNN (plain fp32 FMA math, the parity with our kernels),
                 cudnn.benchmark off (PyTorch's default algorithm heuristics);
  fp32+bench     the same with cudnn.benchmark = True (fastest fp32 algorithm per shape);
  tf32+bench     TF32 allowed (tensor cores) and cudnn.benchmark = True.
Each row prints one JSON line (the same fields as bench_model's) and, unless --json, a human line.

  torch_model_bench.py --device cpu|cuda [--arch isonet2[,isonet1]] [--batch 16] [--patch 128]
                       [--warmup W] [--iters N] [--threads T] [--json]
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torch_reference as ref  # noqa: E402  (the model definitions; importing it runs nothing)


class TorchDropout:
    """The models' dropout hook (called as drop(x, layer)) with torch's own RNG; off when not training."""

    def __init__(self, p):
        self.p, self.training = p, True

    def __call__(self, x, layer):
        return F.dropout(x, self.p, training=True) if self.training and self.p > 0 else x


def make_net(arch, device, p):
    """The reference module in float32 with our Glorot init (seed 1) and zero biases, on `device`."""
    drop = TorchDropout(p)
    net = (ref.IsoNet1 if arch == "isonet1" else ref.IsoNet2)(drop)
    with torch.no_grad():
        for l, (name, ci, co, k) in enumerate(net.layers):
            w = ref.glorot(1, 2 * l, (co, ci, k, k), ci * k * k, co * k * k, arch == "isonet1" and name == "conv4")
            getattr(net, name).weight.copy_(torch.from_numpy(w))
            getattr(net, name).bias.zero_()
    return net.to(device=device, dtype=torch.float32), drop


def make_batch(n, patch, device):
    """Inputs uniform in [0,1), targets = inputs + uniform noise of +-0.1 (as bench_model)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(n, 1, patch, patch)).astype(np.float32)
    t = (x + 0.2 * (rng.uniform(0, 1, size=x.shape) - 0.5)).astype(np.float32)
    return torch.from_numpy(x).to(device), torch.from_numpy(t).to(device)


def time_steps(fn, device, warmup, iters):
    """Host-clock milliseconds of fn() + synchronize, and CUDA-event milliseconds on CUDA."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    host, events = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
        fn()
        if cuda:
            b.record()
        sync()
        host.append((time.perf_counter() - t0) * 1e3)
        if cuda:
            events.append(a.elapsed_time(b))
    return host, events


def block(host, events, batch):
    """The JSON fields bench_model writes per mode (gflop is left to the driver: it uses ours)."""
    q = statistics.quantiles(host, n=10, method="inclusive") if len(host) > 1 else [host[0]] * 9
    med = statistics.median(host)
    out = {"median_ms": round(med, 4), "min_ms": round(min(host), 4), "max_ms": round(max(host), 4),
           "p10_ms": round(q[0], 4), "p90_ms": round(q[8], 4), "patches_per_s": round(batch / (med * 1e-3), 3)}
    if events:
        out["event_median_ms"] = round(statistics.median(events), 4)
    out["all_ms"] = [round(v, 3) for v in host]  # every iteration, in order
    return out


def bench(arch, device, args, precision):
    net, drop = make_net(arch, device, 0.2)
    x, t = make_batch(args.batch, args.patch, device)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3, betas=(0.9, 0.999), eps=1e-8)
    last = {}

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = ref.psnr_loss(net(x), t)
        loss.backward()
        opt.step()
        last["loss"] = loss

    def forward():
        with torch.no_grad():
            last["y"] = net(x)

    net.train()
    drop.training = True
    train = time_steps(train_step, device, args.warmup, args.iters)
    final_loss = float(last["loss"].item())
    net.eval()
    drop.training = False
    fwd = time_steps(forward, device, args.warmup, args.iters)
    return {"impl": "pytorch", "torch": torch.__version__, "device": device.type, "arch": arch,
            "batch": args.batch, "patch": args.patch, "threads": torch.get_num_threads() if device.type == "cpu" else 0,
            "precision": precision, "warmup": args.warmup, "iters": args.iters, "final_loss": round(final_loss, 6),
            "train": block(*train, args.batch), "forward": block(*fwd, args.batch)}


def human(r):
    def part(name, b):
        s = "%s %.2f ms median (min %.2f, max %.2f), %.1f patches/s" % (
            name, b["median_ms"], b["min_ms"], b["max_ms"], b["patches_per_s"])
        return s + (" [events %.2f ms]" % b["event_median_ms"] if "event_median_ms" in b else "")
    thr = " threads %d" % r["threads"] if r["threads"] else ""
    return "pytorch %s %s %s %s batch %d patch %d%s: %s; %s" % (
        r["torch"], r["device"], r["precision"], r["arch"], r["batch"], r["patch"], thr,
        part("train step", r["train"]), part("forward", r["forward"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], required=True)
    ap.add_argument("--arch", default="isonet2", help="isonet2, isonet1 or a comma-separated list")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    ap.add_argument("--json", action="store_true", help="print only the JSON lines")
    args = ap.parse_args()
    archs = args.arch.split(",")
    for a in archs:
        if a not in ("isonet1", "isonet2"):
            ap.error("unknown architecture %r (isonet1, isonet2)" % a)
    if args.batch < 1 or args.patch < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("batch, patch, iters must be >= 1 and warmup >= 0")

    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("torch_model_bench: --device cuda but torch.cuda.is_available() is False")
        settings = [("fp32", False, False), ("fp32+bench", False, True), ("tf32+bench", True, True)]
    else:
        torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
        settings = [("fp32", False, False)]

    for arch in archs:
        for precision, tf32, benchmark in settings:
            if device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cudnn.benchmark = benchmark
            r = bench(arch, device, args, precision)
            print(json.dumps(r, separators=(",", ":")), flush=True)
            if not args.json:
                print(human(r), flush=True)


if __name__ == "__main__":
    main()
