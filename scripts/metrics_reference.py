#!/usr/bin/env python3
"""metrics_reference.py: reference PSNR/SSIM for tests/test_metrics.cpp, in numpy + scipy.

  metrics_reference.py PRED.raw REF.raw NZ NY NX OUT.json

PRED/REF: float32 little-endian ZYX. Writes the affine fit (CSBDeep normalize_minmse), PSNR and
SSIM with and without the fit, following the conventions of imaging/metrics.h: data range =
max(ref) - min(ref); SSIM with a Gaussian window sigma 1.5 truncated at 3.5 sigma (radius 5),
scipy 'reflect' borders, population covariance, K1 = 0.01, K2 = 0.03, crop 5 along axes longer
than 10. When scikit-image is installed, its structural_similarity with the equivalent options is
written too (key "skimage_ssim_*"; only defined when every axis is longer than 10).

Exit status 3 when numpy or scipy is missing (the test then skips).
"""
import json
import sys

try:
    import numpy as np
    from scipy.ndimage import gaussian_filter
except ImportError as e:  # pragma: no cover
    print(f"metrics_reference: {e}")
    sys.exit(3)


def affine(pred, ref):
    mp, mr = pred.mean(), ref.mean()
    vp = ((pred - mp) ** 2).sum()
    a = ((pred - mp) * (ref - mr)).sum() / vp if vp > 0 else 0.0
    return a, mr - a * mp


def psnr(x, ref, rng):
    mse = ((x - ref) ** 2).mean()
    return None if mse == 0 else float(10 * np.log10(rng * rng / mse))  # JSON has no inf


def ssim(x, ref, rng):
    f = lambda a: gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")
    mx, my = f(x), f(ref)
    vx = f(x * x) - mx * mx
    vy = f(ref * ref) - my * my
    cxy = f(x * ref) - mx * my
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    sl = tuple(slice(5, n - 5) if n > 10 else slice(None) for n in s.shape)
    return float(s[sl].mean())


def main(argv):
    if len(argv) != 7:
        print(__doc__)
        return 2
    shape = tuple(int(v) for v in argv[3:6])
    pred = np.fromfile(argv[1], dtype="<f4").astype(np.float64).reshape(shape)
    ref = np.fromfile(argv[2], dtype="<f4").astype(np.float64).reshape(shape)
    rng = ref.max() - ref.min()
    a, b = affine(pred, ref)
    fitted = a * pred + b
    out = {"scale": a, "offset": b, "range": rng,
           "psnr_fit": psnr(fitted, ref, rng), "psnr_raw": psnr(pred, ref, rng),
           "ssim_fit": ssim(fitted, ref, rng), "ssim_raw": ssim(pred, ref, rng)}
    try:
        from skimage.metrics import structural_similarity
        if min(shape) > 10:
            kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=rng)
            out["skimage_ssim_fit"] = float(structural_similarity(ref, fitted, **kw))
            out["skimage_ssim_raw"] = float(structural_similarity(ref, pred, **kw))
    except ImportError:
        pass
    with open(argv[6], "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
