#!/usr/bin/env python3
"""real_spots.py: how isotropic does IsoNet make real diffraction-limited spots? (../shared/data/real/neubias_spots.tif)

The NEUBIAS spots volume (17 x 88 x 89, z step 0.40 um, pixels 0.0941 um, so S = 4.249) holds a few
dozen sub-resolution spots: each is an image of the microscope's PSF, about 0.25 um wide laterally and
three to four times that along z. There is no isotropic ground truth, but there is an expectation: a
restoration that undoes the axial anisotropy makes each spot about as wide along z as across, without
widening it laterally. This script measures exactly that, on every method's output on the same
isotropic grid (plane k*S of the output = acquired plane k, as `isonet restore` writes it):

- spots: voxels of the acquisition that are the maximum of their 3 x 9 x 9 neighbourhood and stand
  --threshold of the data range above the median (the background), at least 10 pixels from the
  lateral borders and 2 planes from the axial ones;
- per spot, a crop of the output around it (planes z*S +- 12, pixels +- 6), its minimum subtracted;
  the full width at half maximum of the crop's profiles through its brightest voxel along x, y and z
  (linear interpolation at the two half-maximum crossings, as imaging/psf.h's psf_fwhm measures
  PSFs); a spot whose profile does not fall below half inside the crop is skipped. The C++ test
  "real data: IsoNet-2 makes the spots of neubias_spots nearly isotropic" (tests/test_app_real_data.cpp)
  measures the same way;
- per method, the median lateral FWHM ((x + y) / 2), the median axial FWHM and their ratio, and the
  undershoot: how far the output's minimum lies below its median, in percent of its maximum minus
  its median (ringing around sharpened spots; linear interpolation shows the data's own dark
  pixels, about 1%).

The training PSF is derived from the data as a user would: a Gaussian with an offset is fitted by
least squares to each spot's samples through its brightest voxel (13 pixels along x, 9 planes along
z, on the acquisition's own grid, so the fit knows the 0.4 um plane spacing), and the medians of
the fitted sigmas, in lateral pixels, give `gaussian:SXY,SZ`. The half-maximum widths of the cubic
upsampled acquisition are wider (a spot centred between samples looks wider at half maximum, the
more so along the coarse z axis); a run with the PSF from those widths shows what that choice does,
and one with half the fitted SZ what too little axial blur does.

Usage (from the repository root, after the build):
  python3 bench/real_spots.py [--isonet build/apps/isonet] [--steps 400] [--patch 48] [--batch 16]
         [--threshold 0.2] [--device cpu] [--out-md bench/results/<date>_real_spots_isotropy.md]
Needs numpy, scipy and tifffile (Debian python3-numpy, python3-scipy, python3-tifffile).
"""
import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.ndimage as ndi
import tifffile
from scipy.optimize import curve_fit

DATA_PATH = "../shared/data/real/neubias_spots.tif"
PIXEL_UM = 0.0941345  # lateral pixel size (1 / XResolution of the file)
Z_STEP_UM = 0.4       # ImageJ spacing of the file
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def fwhm(profile, i):
    """Full width at half maximum in samples of the peak at sample i; NaN if the profile does not fall
    below half of p[i] on both sides (psf_fwhm's crossing rule: the last sample >= half, then the next)."""
    p = np.asarray(profile, dtype=np.float64)
    half = p[i] / 2
    edges = []
    for step in (-1, 1):
        j = i
        while 0 <= j + step < len(p) and p[j + step] >= half:
            j += step
        if not 0 <= j + step < len(p):
            return float("nan")
        a, b = p[j], p[j + step]
        edges.append(j + step * (a - half) / (a - b))
    return edges[1] - edges[0]


def detect_spots(raw, threshold):
    background = np.median(raw)
    is_max = raw == ndi.maximum_filter(raw, size=(3, 9, 9), mode="constant", cval=-np.inf)
    peaks = np.argwhere(is_max & (raw > background + threshold * (raw.max() - background)))
    nz, ny, nx = raw.shape
    return [tuple(p) for p in peaks if 2 <= p[0] < nz - 2 and 10 <= p[1] < ny - 10 and 10 <= p[2] < nx - 10]


def measure(vol, spots, s):
    """Median lateral and axial FWHM (output pixels) of the spots in vol (isotropic grid, plane k*s =
    acquired plane k), and how many spots were measured."""
    widths = []
    for z, y, x in spots:
        zc = int(round(z * s))
        crop = vol[max(0, zc - 12):zc + 13, y - 6:y + 7, x - 6:x + 7].astype(np.float64)
        crop = crop - crop.min()
        cz, cy, cx = np.unravel_index(int(crop.argmax()), crop.shape)
        widths.append((fwhm(crop[cz, cy, :], cx), fwhm(crop[cz, :, cx], cy), fwhm(crop[:, cy, cx], cz)))
    w = np.array(widths)
    ok = ~np.isnan(w).any(axis=1)
    return float(np.median((w[ok, 0] + w[ok, 1]) / 2)), float(np.median(w[ok, 2])), int(ok.sum())


def fitted_sigma(profile, centre):
    """Sigma (in samples) of a Gaussian with offset fitted to profile, starting at sample `centre`."""
    t = np.arange(len(profile), dtype=np.float64)
    model = lambda t, base, height, t0, sigma: base + height * np.exp(-(t - t0) ** 2 / (2 * sigma * sigma))
    p, _ = curve_fit(model, t, profile, p0=[profile.min(), profile.max() - profile.min(), centre, 1.0])
    return abs(p[3])


def psf_from_spots(raw, spots):
    """Median fitted sigmas (lateral pixels) of the spots: along x (13 pixels) and z (9 planes)."""
    sxy, sz = [], []
    for z, y, x in spots:
        z0 = max(0, z - 4)
        sxy.append(fitted_sigma(raw[z, y, x - 6:x + 7], 6))
        sz.append(fitted_sigma(raw[z0:z + 5, y, x], z - z0) * Z_STEP_UM / PIXEL_UM)
    return float(np.median(sxy)), float(np.median(sz))


def undershoot_percent(vol):
    med = float(np.median(vol))
    return 100.0 * max(0.0, med - float(vol.min())) / (float(vol.max()) - med)


def upsample_z(raw, s, nz_out, order):
    z = np.arange(nz_out, dtype=np.float64) / s
    zz, yy, xx = np.meshgrid(z, np.arange(raw.shape[1]), np.arange(raw.shape[2]), indexing="ij")
    return ndi.map_coordinates(raw, [zz, yy, xx], order=order, mode="nearest")


def run(cmd, log):
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write("$ " + " ".join(cmd) + "\n" + r.stdout + "\n")
    if r.returncode != 0:
        sys.exit(f"real_spots: {' '.join(cmd[:2])} failed:\n{r.stdout[-2000:]}")
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isonet", default="build/apps/isonet")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--threshold", type=float, default=0.2, help="spots: fraction of the data range above the median")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out-md", default="")
    args = ap.parse_args()

    raw = tifffile.imread(DATA_PATH).astype(np.float64)
    s = Z_STEP_UM / PIXEL_UM
    nz_out = int(np.ceil(raw.shape[0] * s))  # isonet restore's output depth
    spots = detect_spots(raw, args.threshold)
    cubic = upsample_z(raw, s, nz_out, 3)
    lat0, ax0, _ = measure(cubic, spots, s)
    sxy, sz = psf_from_spots(raw, spots)
    hxy, hz = lat0 / FWHM_PER_SIGMA, ax0 / FWHM_PER_SIGMA
    print(f"{len(spots)} spots; Gaussian fits: sigma {sxy:.2f} px laterally, {sz:.2f} px axially (FWHM "
          f"{sxy * FWHM_PER_SIGMA * PIXEL_UM:.3f} / {sz * FWHM_PER_SIGMA * PIXEL_UM:.3f} um); half-maximum widths"
          f" after cubic upsampling {lat0 * PIXEL_UM:.3f} / {ax0 * PIXEL_UM:.3f} um", flush=True)

    fitted = f"gaussian:{sxy:.2f},{sz:.2f}"
    # (label, PSF spec, --psf-mode, steps)
    configs = [(f"IsoNet-2, fitted PSF, split, {args.steps} steps", fitted, "split", args.steps),
               ("IsoNet-2, fitted PSF, split, 100 steps", fitted, "split", 100),
               (f"IsoNet-2, fitted PSF, full, {args.steps} steps", fitted, "full", args.steps),
               (f"IsoNet-2, PSF from half-maximum widths, split, {args.steps} steps", f"gaussian:{hxy:.2f},{hz:.2f}",
                "split", args.steps),
               (f"IsoNet-2, fitted PSF with SZ x 0.5, split, {args.steps} steps", f"gaussian:{sxy:.2f},{0.5 * sz:.2f}",
                "split", args.steps)]
    rows = [("linear interpolation", "-", upsample_z(raw, s, nz_out, 1), "-"), ("cubic B-spline", "-", cubic, "-")]
    log_path = os.path.join(tempfile.gettempdir(), "real_spots.log")
    with tempfile.TemporaryDirectory() as work, open(log_path, "w") as log:
        for i, (label, psf, mode, steps) in enumerate(configs):
            model = os.path.join(work, f"model_{i}.isonet")
            restored = os.path.join(work, f"restored_{i}.tif")
            t_train = run([args.isonet, "train", "--input", DATA_PATH, "--psf", psf, "--psf-mode", mode, "--model",
                           "isonet2", "--steps", str(steps), "--batch", str(args.batch), "--patch", str(args.patch),
                           "--seed", str(args.seed), "--device", args.device, "--out", model], log)
            t_restore = run([args.isonet, "restore", "--model", model, "--input", DATA_PATH, "--output", restored,
                             "--device", args.device], log)
            vol = tifffile.imread(restored).astype(np.float64)
            if vol.shape[0] != nz_out:
                sys.exit(f"real_spots: restore wrote {vol.shape[0]} planes, expected {nz_out}")
            rows.append((label, psf, vol, f"{t_train:.0f} + {t_restore:.0f}"))
            lat, ax, _ = measure(vol, spots, s)
            print(f"{label}: lateral {lat * PIXEL_UM:.3f} um, axial {ax * PIXEL_UM:.3f} um", flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    lines = [
        f"# Real data, spot isotropy: {os.path.basename(DATA_PATH)}",
        "",
        f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; commit {commit or 'unknown'}; device {args.device}",
        f"- command: `python3 bench/real_spots.py --steps {args.steps} --batch {args.batch} --patch {args.patch}"
        f" --threshold {args.threshold} --seed {args.seed} --device {args.device}`",
        f"- {raw.shape[0]}x{raw.shape[1]}x{raw.shape[2]} voxels, z step {Z_STEP_UM} um, pixels {PIXEL_UM} um"
        f" (S = {s:.3f}); {len(spots)} spots; every output {nz_out} planes on the lateral grid; the"
        " measurements are described in the script's header",
        f"- the spots' Gaussian fits: sigma {sxy:.2f} px laterally, {sz:.2f} px axially (FWHM"
        f" {sxy * FWHM_PER_SIGMA * PIXEL_UM:.3f} / {sz * FWHM_PER_SIGMA * PIXEL_UM:.3f} um); half-maximum widths"
        f" after cubic upsampling {lat0 * PIXEL_UM:.3f} / {ax0 * PIXEL_UM:.3f} um",
        "",
        "| method | training PSF | spots measured | lateral FWHM (um) | axial FWHM (um) | axial / lateral"
        " | undershoot (%) | train + restore s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, psf, vol, seconds in rows:
        lat, ax, n = measure(vol, spots, s)
        lines.append(f"| {label} | {psf} | {n} | {lat * PIXEL_UM:.3f} | {ax * PIXEL_UM:.3f} | {ax / lat:.2f}"
                     f" | {undershoot_percent(vol):.1f} | {seconds} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        with open(args.out_md, "w") as fh:
            fh.write(text)
    print(f"log: {log_path}")


if __name__ == "__main__":
    main()
