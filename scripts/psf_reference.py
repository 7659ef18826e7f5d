#!/usr/bin/env python3
"""psf_reference.py: widefield PSF fixtures from psfmodels (tests/test_psf.cpp).

psfmodels (PyPI, Talley Lambert; its scalar_psf is F. Aguet's C++ implementation of the Gibson-Lanni
model) is an implementation nobody here wrote. This script evaluates it for two cases of our
widefield model (imaging/psf.h: WidefieldParams) on the grid the test uses and stores the volumes,
each normalized to its maximum, in tests/fixtures/psfmodels_widefield.safetensors:

  born_wolf     NA 1.2, lambda 0.52 um, water immersion n = 1.33, sample n = 1.33 (no aberration)
  gibson_lanni  the same with sample index 1.45 and the emitter 5 um deep (spherical aberration and
                the focal shift it causes)

Grid: 21 planes 0.15 um apart, 17 x 17 pixels of 0.06 um, centred on the emitter's nominal focus.
psfmodels interpolates a radial profile linearly; it is evaluated at 5x finer pixels and every 5th
kept, so that interpolation stays below 1e-3 of the peak. Coverslip and immersion are matched
(tg = tg0, ng = ng0, ni = ni0), which leaves exactly the phase of our model.

Axial coordinate: psfmodels' zv is the focal plane's position above the coverslip, and its phase
is k0 [ (zp (2 - ni/ns) - zv) sqrt(ni^2 - s^2) + zp (sqrt(ns^2 - s^2) - sqrt(ni^2 - s^2)) ] with
s = NA rho, zp the emitter depth (from its scalarPSF.cpp with the coverslip terms cancelled). Ours is
k0 [ z sqrt(n^2 - s^2) + depth (sqrt(ns^2 - s^2) - sqrt(n^2 - s^2)) ], so our plane z is their
zv = zp (2 - ni/ns) - z.

Regenerate (from the repository root; psfmodels from PyPI, e.g. in a virtual environment):
    python3 -m venv --system-site-packages /tmp/psf && /tmp/psf/bin/pip install psfmodels
    /tmp/psf/bin/python scripts/psf_reference.py tests/fixtures
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

NZ, NXY, DZ, DXY, FINE = 21, 17, 0.15, 0.06, 5
NA, WAVELENGTH, N_IMMERSION = 1.2, 0.52, 1.33
CASES = {"born_wolf": (1.33, 0.0), "gibson_lanni": (1.45, 5.0)}  # sample index, depth (um)


def reference(n_sample, depth):
    import psfmodels

    params = dict(NA=NA, ni=N_IMMERSION, ni0=N_IMMERSION, ns=n_sample, ng=1.515, ng0=1.515, tg=170.0,
                  tg0=170.0, ti0=150.0, sf=1)
    z = (np.arange(NZ) - NZ // 2) * DZ
    zv = depth * (2.0 - N_IMMERSION / n_sample) - z
    fine = psfmodels.scalar_psf(zv, nx=NXY * FINE - (FINE - 1), dxy=DXY / FINE, pz=depth, wvl=WAVELENGTH,
                                params=params, normalize=False)
    psf = fine[:, ::FINE, ::FINE]
    assert psf.shape == (NZ, NXY, NXY), psf.shape
    return psf / psf.max()


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    import psfmodels

    tensors = {name: reference(*case) for name, case in CASES.items()}
    meta = {"generator": "scripts/psf_reference.py", "psfmodels": psfmodels.__version__,
            "grid": f"nz {NZ} dz {DZ} um, ny = nx {NXY} dxy {DXY} um, centred",
            "na": NA, "wavelength_um": WAVELENGTH, "n_immersion": N_IMMERSION,
            "cases": "; ".join(f"{k}: n_sample {v[0]}, depth {v[1]} um" for k, v in CASES.items()),
            "normalization": "each volume divided by its maximum"}
    write_safetensors(os.path.join(argv[1], "psfmodels_widefield.safetensors"), tensors, meta)


if __name__ == "__main__":
    main(sys.argv)
