// cmd_info.h: `isonet info FILE...`: what a TIFF volume or an isonet model file holds, for deciding
// what to pass to train/restore and for checking a model. A TIFF: shape, sample type, container
// (ImageJ, OME, BigTIFF, compression), channels and time points (and the --channel/--frame they
// need), the voxel size and the subsampling factor train would take from it. A model: architecture,
// parameters, steps, whether it can be resumed, PSF, factor, normalization, the training settings,
// the final training PSNR and the validation scores.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace isonet::app {

struct InfoOptions {
  std::vector<std::string> files;
};

// The report of one file (several lines, each ending in a newline). Throws isonet::Error naming
// the file when it is neither a readable TIFF nor an isonet model file.
std::string describe_file(const std::string& path);

// describe_file of every file to `out`, in order; the first unreadable file stops with its error.
void run_info(const InfoOptions& opt, std::ostream& out);

}  // namespace isonet::app
