#!/usr/bin/python3
"""lr_study.py: does IsoNet-2 collapse at Adam lr 5e-3 in PyTorch too? (nn/README.md, "Learning rate")

Trains scripts/torch_reference.py's IsoNet2 module (float32, torch's own dropout 0.2) on training
pairs dumped from our pipeline, with the paper's PSNR loss and a hand-written Adam so that both
epsilon conventions can be compared, and prints per step: loss, the PSNR of the batch's input
(the identity's score), the fraction of dec1 activations > 0 (dropout off, same batch), the number
of dec1 channels alive anywhere in the batch, and the mean |residual| (out(d1); 0 = collapse).

Pairs file (raw little-endian): int32 n, int32 P, then float32 inputs [n,1,P,P], float32 targets
[n,1,P,P] - imaging/training_pairs.h's TrainingPairs.inputs/targets as `isonet train` builds them
(a few lines calling make_training_pairs; not part of the product).

    /usr/bin/python3 scripts/lr_study.py pairs.bin --lr 5e-3 [--steps 150] [--batch 8]
        [--eps-keras] [--loss-sum] [--seed 0] [--every 10]

Weights start from our seeded Glorot init (same values as Model::create(isonet2, seed)), biases 0.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402


def load_pairs(path):
    raw = np.fromfile(path, dtype="<i4", count=2)
    n, p = int(raw[0]), int(raw[1])
    data = np.fromfile(path, dtype="<f4", offset=8)
    assert data.size == 2 * n * p * p, "pairs file size does not match its header"
    return data[: n * p * p].reshape(n, 1, p, p), data[n * p * p:].reshape(n, 1, p, p)


def batch_psnr(y, t):
    """Mean over the batch of the per-patch PSNR of kernels/psnr_loss.h (the negative loss)."""
    return -ref.psnr_loss(y, t)


def dec1_stats(net, x):
    """Fraction of dec1 activations > 0, channels alive anywhere, mean |residual| (no dropout)."""
    with torch.no_grad():
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        e1 = F.relu(net.enc1(x))
        e2 = F.relu(net.enc2(F.max_pool2d(e1, 2)))
        m = F.relu(net.mid(F.max_pool2d(e2, 2)))
        d2 = F.relu(net.dec2(torch.cat([up(m), e2], 1)))
        d1 = F.relu(net.dec1(torch.cat([up(d2), e1], 1)))
        alive = int((d1 > 0).flatten(2).any(2).any(0).sum())
        return float((d1 > 0).double().mean()), alive, float(net.out(d1).abs().mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--eps-keras", action="store_true", help="epsilon added to sqrt(v) before bias correction")
    ap.add_argument("--loss-sum", action="store_true", help="loss summed over the batch (default: mean)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=10, help="print every N steps (and steps 1-5)")
    a = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    inputs, targets = load_pairs(a.pairs)
    n = inputs.shape[0]
    net = ref.IsoNet2(lambda x, layer: F.dropout(x, a.dropout, training=True) if a.dropout > 0 else x).float()
    with torch.no_grad():
        for l, (name, ci, co, k) in enumerate(net.layers):
            w = ref.glorot(a.seed, 2 * l, (co, ci, k, k), ci * k * k, co * k * k)
            getattr(net, name).weight.copy_(torch.from_numpy(w))
            getattr(net, name).bias.zero_()
    params = list(net.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    rng = np.random.default_rng(a.seed)
    order, pos = rng.permutation(n), 0
    probe = torch.from_numpy(inputs[:32].copy()), torch.from_numpy(targets[:32].copy())
    print("# lr %g batch %d eps %s loss %s" % (a.lr, a.batch, "keras" if a.eps_keras else "torch",
                                                "sum" if a.loss_sum else "mean"))
    print("step     loss  inputPSNR  dec1>0  alive/16  |residual|")
    for step in range(1, a.steps + 1):
        if pos + a.batch > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos:pos + a.batch]
        pos += a.batch
        x, t = torch.from_numpy(inputs[idx]), torch.from_numpy(targets[idx])
        for p in params:
            p.grad = None
        loss = ref.psnr_loss(net(x), t) * (a.batch if a.loss_sum else 1)
        loss.backward()
        with torch.no_grad():
            c1, c2 = 1 - b1 ** step, 1 - b2 ** step
            for p, mi, vi in zip(params, m, v):
                mi.mul_(b1).add_(p.grad, alpha=1 - b1)
                vi.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                if a.eps_keras:  # Keras: lr_t = lr sqrt(c2)/c1; p -= lr_t m / (sqrt(v) + eps)
                    p.sub_(a.lr * c2 ** 0.5 / c1 * mi / (vi.sqrt() + eps))
                else:  # PyTorch: p -= lr/c1 * m / (sqrt(v)/sqrt(c2) + eps)
                    p.sub_(a.lr / c1 * mi / (vi.sqrt() / c2 ** 0.5 + eps))
        if step <= 5 or step % a.every == 0 or step == a.steps:
            frac, alive, res = dec1_stats(net, probe[0])
            print("%4d %8.3f %10.3f %7.3f %9d %11.5f" % (step, loss.item() / (a.batch if a.loss_sum else 1),
                                                       float(batch_psnr(x, t)), frac, alive, res))
    with torch.no_grad():
        px, pt = probe
        print("# probe (first 32 pairs): input PSNR %.3f dB, network PSNR %.3f dB" %
              (float(batch_psnr(px, pt)), float(batch_psnr(net_eval(net, px), pt))))


def net_eval(net, x):
    """The network without dropout (inference)."""
    drop, net.drop = net.drop, (lambda y, layer: y)
    try:
        return net(x)
    finally:
        net.drop = drop


if __name__ == "__main__":
    main()
