// cmd_preview.h: `isonet preview` (and --preview of restore and demo): a PNG with one row per
// volume (input, restored, ground truth, ...) and three columns: the xy plane, the xz plane and
// the yz plane through the centre. Axial views are shown at physical aspect: each volume's z is
// resampled for display (linear) so one display row is one lateral pixel of z, with acquired
// plane k at z = k * voxel.z; volumes with different z sampling therefore line up. The xy plane
// is taken at the same physical depth in every volume (the nearest plane). Each volume gets its
// own intensity range (0.5 and 99.8 percentiles).
#pragma once
#include <string>
#include <vector>

#include "imaging/png_image.h"
#include "imaging/tiff.h"
#include "imaging/volume.h"

namespace isonet::app {

struct PreviewOptions {
  std::string input, restored, gt;  // input required; the others optional
  TiffSelection select;             // --channel / --frame of a hyperstack input
  std::string out;
  bool quiet = false;
};

// Rows in the order given; all volumes must have the same lateral size (Y, X).
Gray8 render_preview(const std::vector<const Volume*>& volumes);
void write_preview(const std::string& path, const std::vector<const Volume*>& volumes);

void run_preview(const PreviewOptions& opt);

}  // namespace isonet::app
