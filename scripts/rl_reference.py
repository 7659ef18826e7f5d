#!/usr/bin/env python3
"""rl_reference.py: scikit-image's Richardson-Lucy on given data, for tests/test_deconvolve.cpp.

  rl_reference.py IMAGE.raw NZ NY NX PSF.raw KZ KY KX ITERATIONS OUT.raw

IMAGE, PSF: float32 little-endian ZYX (the PSF already normalized to sum 1). Runs
skimage.restoration.richardson_lucy in float64 without clipping and writes the result as float32.
scikit-image starts from 0.5 everywhere and pads with zeros ('same' convolutions); ours starts from
the data's mean and corrects the edges, so the two agree where the data are zero within the PSF's
reach of every border (see the test).

Exit status 3 when numpy or scikit-image is missing (the test then skips).
"""
import sys

try:
    import numpy as np
    from skimage.restoration import richardson_lucy
except ImportError as e:  # pragma: no cover
    print(f"rl_reference: {e}")
    sys.exit(3)


def main(argv):
    if len(argv) != 11:
        sys.exit(__doc__)
    image = np.fromfile(argv[1], dtype="<f4").reshape([int(v) for v in argv[2:5]]).astype(np.float64)
    psf = np.fromfile(argv[5], dtype="<f4").reshape([int(v) for v in argv[6:9]]).astype(np.float64)
    out = richardson_lucy(image, psf, num_iter=int(argv[9]), clip=False)
    out.astype("<f4").tofile(argv[10])


if __name__ == "__main__":
    main(sys.argv)
