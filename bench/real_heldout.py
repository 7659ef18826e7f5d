#!/usr/bin/env python3
"""real_heldout.py: IsoNet on real data with held-out planes (../shared/data/real/neubias_golgi_bfa.tif).

The Golgi volume (25 x 137 x 147, z step 0.388 um, pixels 0.351 um) is sampled nearly isotropically,
so it can play its own ground truth: keep every f-th plane (0, f, 2f, ...), restore the planes in
between with the `isonet` program, and score them against the planes that were taken away. Baselines:
linear and cubic (B-spline, scipy) interpolation along z of the same kept planes.

Grid: the kept planes are declared f lateral pixels apart (written with z spacing f * 0.351 um, and
--subsample f), so the restored volume lies on the ground truth's own plane grid (plane k*f = kept
plane k). The ground truth's planes are 0.388 um apart, not 0.351, so "isotropic" here means the
ground truth's grid, 10% coarser along z than laterally; that mismatch is the same for every method.

Scores (the project's conventions, imaging/metrics.h): PSNR after the least-squares affine fit of the
prediction to the ground truth, data range of the ground truth; over the held-out planes only (the
kept planes are copies for every method), and SSIM of the whole volume through `isonet eval`.

Usage (from the repository root, after the build):
  python3 bench/real_heldout.py [--isonet build/apps/isonet] [--factors 2,3,4] [--steps 600]
         [--psf gaussian:1,2] [--out-md bench/results/<date>_real_golgi_heldout.md]
Needs numpy, scipy and tifffile (Debian python3-numpy, python3-scipy, python3-tifffile).
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.ndimage as ndi
import tifffile

GT_PATH = "../shared/data/real/neubias_golgi_bfa.tif"
PIXEL_UM = 0.351  # lateral pixel size of the Golgi volume (data README)


def write_volume(path, vol, z_um):
    tifffile.imwrite(path, vol.astype(np.float32), imagej=True, resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
                     metadata={"spacing": z_um, "unit": "um", "axes": "ZYX"})


def psnr_affine(pred, gt):
    """PSNR after the least-squares affine fit of pred to gt, data range of gt (imaging/metrics.h)."""
    p = pred.astype(np.float64).ravel()
    g = gt.astype(np.float64).ravel()
    var = p.var()
    a = np.mean((p - p.mean()) * (g - g.mean())) / var if var > 0 else 0.0
    b = g.mean() - a * p.mean()
    mse = np.mean((a * p + b - g) ** 2)
    return 10 * np.log10((g.max() - g.min()) ** 2 / mse)


def interpolate_z(kept, f, nz, order):
    """Planes 0..nz-1 from kept planes at 0, f, 2f, ... (spline of `order` along z, edges clamped)."""
    z = np.arange(nz, dtype=np.float64) / f
    zz, yy, xx = np.meshgrid(z, np.arange(kept.shape[1]), np.arange(kept.shape[2]), indexing="ij")
    return ndi.map_coordinates(kept.astype(np.float64), [zz, yy, xx], order=order, mode="nearest")


def run(cmd, log):
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write("$ " + " ".join(cmd) + "\n" + r.stdout + "\n")
    if r.returncode != 0:
        sys.exit(f"real_heldout: {' '.join(cmd[:2])} failed:\n{r.stdout[-2000:]}")
    return r.stdout, time.time() - t0


def ssim_of(isonet, pred, gt_path, work, log):
    path = os.path.join(work, "score.tif")
    write_volume(path, pred, PIXEL_UM)
    out, _ = run([isonet, "eval", "--pred", path, "--gt", gt_path], log)
    m = re.search(r"SSIM\D*([0-9.]+)", out)
    return float(m.group(1)) if m else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isonet", default="build/apps/isonet")
    ap.add_argument("--factors", default="2,3,4")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--psf", default="gaussian:1,2", help="training PSF (isonet train --psf), lateral pixels")
    ap.add_argument("--model", default="isonet2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--validation", type=float, default=0.0,
                    help="hold out this fraction of the training pairs (train --validation) and restore with the "
                         "best-scoring weights (train --best) instead of the last")
    ap.add_argument("--out-md", default="")
    args = ap.parse_args()

    gt = tifffile.imread(GT_PATH).astype(np.float32)
    nz = gt.shape[0]
    rows = []
    log_path = os.path.join(tempfile.gettempdir(), "real_heldout.log")
    with tempfile.TemporaryDirectory() as work, open(log_path, "w") as log:
        gt_path = os.path.join(work, "gt.tif")
        write_volume(gt_path, gt, PIXEL_UM)
        for f in [int(v) for v in args.factors.split(",")]:
            kept = gt[::f]
            held = np.array([z for z in range(nz) if z % f != 0])
            aniso = os.path.join(work, f"aniso_{f}.tif")
            write_volume(aniso, kept, f * PIXEL_UM)
            model = os.path.join(work, f"model_{f}.isonet")
            best = os.path.join(work, f"best_{f}.isonet")
            restored = os.path.join(work, f"restored_{f}.tif")
            train = [args.isonet, "train", "--input", aniso, "--psf", args.psf, "--subsample", str(f), "--model",
                     args.model, "--steps", str(args.steps), "--batch", str(args.batch), "--patch", str(args.patch),
                     "--device", args.device, "--out", model]
            if args.validation > 0:
                train += ["--validation", str(args.validation), "--best", best]
            train_log, t_train = run(train, log)
            if args.validation > 0:
                print(f"f={f}: " + train_log.strip().splitlines()[-1], flush=True)  # the best and last scores
            _, t_restore = run([args.isonet, "restore", "--model", best if args.validation > 0 else model, "--input",
                                aniso, "--output", restored, "--device", args.device], log)
            pred = tifffile.imread(restored).astype(np.float64)[:nz]
            methods = {"linear": interpolate_z(kept, f, nz, 1), "cubic B-spline": interpolate_z(kept, f, nz, 3),
                       args.model: pred}
            for name, vol in methods.items():
                rows.append((f, len(kept), name, psnr_affine(vol[held], gt[held]),
                             ssim_of(args.isonet, vol, gt_path, work, log),
                             f"{t_train:.0f} + {t_restore:.0f}" if name == args.model else "-"))
            print(f"f={f}: " + ", ".join(f"{r[2]} {r[3]:.2f} dB" for r in rows[-3:]), flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    lines = [
        f"# Real data, held-out planes: {os.path.basename(GT_PATH)}",
        "",
        f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}; device {args.device}",
        f"- command: `python3 bench/real_heldout.py --factors {args.factors} --steps {args.steps} --batch {args.batch}"
        f" --patch {args.patch} --psf {args.psf} --model {args.model} --device {args.device}"
        f"{f' --validation {args.validation}' if args.validation > 0 else ''}`",
        f"- ground truth {gt.shape[0]}x{gt.shape[1]}x{gt.shape[2]} (z step 0.388 um, pixels 0.351 um); every f-th plane"
        " kept, the others held out; see the script's header for the grid and the scores",
        "",
        "| f | kept planes | method | PSNR held-out planes (dB) | SSIM whole volume | train + restore s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.4f} | {r[5]} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        with open(args.out_md, "w") as fh:
            fh.write(text)
    print(f"log: {log_path}")


if __name__ == "__main__":
    main()
