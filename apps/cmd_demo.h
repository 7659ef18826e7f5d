// cmd_demo.h: `isonet demo`: the whole method on a synthetic volume, with no input: simulate a
// nuclei phantom (the paper's setting: Gaussian PSF sigma_xy/sigma_z = 2/8 px, subsampling 8),
// train IsoNet-2 with the split PSF, restore, run Richardson-Lucy on the cubic-upsampled input,
// and print PSNR/SSIM of each against the isotropic ground truth (after the affine fit). Writes
// every volume, the model, the loss curve and a preview into --out-dir.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace isonet::app {

struct DemoOptions {
  int size = 0;          // 0: 96 (default) or 512 (--full, the paper's size)
  long steps = 0;        // 0: 400 (default) or 4000 (--full)
  int batch = 0;         // 0: 8 (default) or 32 (--full)
  int patch = 0;         // 0: 48 (default) or 64 (--full)
  int rl_iterations = 0; // 0: 20
  double lr = 5e-4;      // below the paper's 5e-3: with the demo's small batches 5e-3 can collapse
                         // IsoNet-2 to a constant residual (the output then equals the input)
  double radius = 0;     // nuclei semi-axis (0: size-dependent, see cmd_demo.cpp)
  std::string noise;     // simulate --noise ("" = none)
  std::string device = "auto";
  std::string out_dir = "isonet_demo";
  std::string preview;   // "" = <out_dir>/preview.png
  bool full = false;     // the paper's scale (needs a GPU to finish in reasonable time)
  uint64_t seed = 1;
  bool quiet = false;
};

struct DemoRow {
  std::string method;
  double psnr = 0, ssim = 0;
};

struct DemoResult {
  std::vector<DemoRow> rows;  // upsampled (cubic), Richardson-Lucy, IsoNet-2
  double seconds = 0;
};

DemoResult run_demo(const DemoOptions& opt);

}  // namespace isonet::app
