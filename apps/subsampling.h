// subsampling.h: the axial subsampling factor S of an acquisition, from --subsample, --voxel or
// the TIFF's voxel size, with the one line that states it exactly (never rounded or changed).
#pragma once
#include <string>
#include <vector>

#include "imaging/tiff.h"

namespace isonet::app {

struct SubsamplingFactor {
  double factor = 0;
  std::string source;   // "--subsample", "--voxel" or "TIFF voxel size"
  std::string message;  // e.g. "subsampling factor S = 0.4000/0.1000 = 4.000000 (from TIFF voxel size)"
  std::string warning;  // non-empty when --subsample disagrees with the TIFF's voxel size
};

// given > 0: the --subsample value; voxel_override: --voxel Z,Y,X (empty if not given).
// Errors: no factor available (no --subsample, no z spacing in the file), factor < 1, not finite.
SubsamplingFactor determine_subsampling(const TiffInfo& info, double given, const std::vector<double>& voxel_override,
                                        const std::string& path);

// Checks 1 <= S < inf; `where` names the source in the message.
void check_subsampling(double factor, const std::string& where);

}  // namespace isonet::app
