// segmentation.h: the paper's "simple 3D segmentation" pipeline (IsoNet, MICCAI 2017, section 3.1)
// and its score. On a nuclei volume:
//   1. global threshold by the intermodes method (Prewitt & Mendelsohn 1966, as ImageJ's
//      "Intermodes" auto-threshold: 256-bin histogram, iterated 3-point smoothing until exactly two
//      local maxima remain, threshold = floor of their midpoint),
//   2. hole filling (background not 6-connected to the volume border becomes foreground),
//   3. separation of touching nuclei by a 3D watershed on the Euclidean distance transform:
//      markers = h-maxima of the EDT (regional maxima whose dynamic is >= h; see MarkerOptions),
//      flooded by priority (Meyer) on -EDT inside the foreground mask,
// and the ISBI Cell Tracking Challenge SEG score against ground-truth labels.
//
// Masks are std::vector<uint8_t> (0 background, nonzero foreground), label volumes are
// std::vector<int32_t> (0 background, k >= 1 object k); both are [nz, ny, nx] with x fastest, the
// indexing of Volume and of Phantom::labels (phantoms.h). Connectivity: the foreground is
// 26-connected and the background 6-connected everywhere in this file (the consistent pair in 3D:
// a 6-connected background hole cannot leak through a 26-connected wall and vice versa).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "imaging/volume.h"

namespace isonet {

// Dimensions of a mask or label volume ([nz, ny, nx], x fastest).
struct Shape3 {
  int nz = 0, ny = 0, nx = 0;
  size_t size() const { return size_t(nz) * size_t(ny) * size_t(nx); }
};
inline Shape3 shape_of(const Volume& v) { return Shape3{v.nz, v.ny, v.nx}; }

// ---------------------------------------------------------------------------------------------
// 1. Intermodes threshold

// Result of the intermodes threshold of a volume. Intensities are binned into `bins` (256) equal
// bins over [range_lo, range_hi]: bin(v) = floor((v - range_lo) * bins / (range_hi - range_lo)),
// clamped to [0, bins-1] (ImageJ's binning of 32-bit images; values outside the range fall into the
// end bins). Foreground = voxels whose bin is > `bin` (ImageJ's convention for bright objects on a
// dark background), i.e. intensity >= `value` up to the rounding of the bin computation;
// apply_threshold uses the bin rule, so it is exact.
struct IntermodesResult {
  int bin = -1;                // threshold bin t: foreground is bin > t
  float value = 0.f;           // lower edge of bin t+1 in intensity units: range_lo + (t+1)*width
  double range_lo = 0, range_hi = 0;  // histogram range used (the volume's min and max by default)
  int bins = 256;
  int mode_lo = -1, mode_hi = -1;     // the two maxima of the smoothed histogram (bins)
  int iterations = 0;                 // smoothing passes needed
};

// Intermodes on a histogram of any length >= 3 (counts, non-negative). As ImageJ: the histogram is
// first cropped to [first non-empty bin, last non-empty bin]; then, while it does not have exactly
// two strict local maxima among its interior bins, it is replaced by its 3-point running mean
// (zero outside the cropped range, so the end bins are (h0 + h1)/3 and (h[n-2] + h[n-1])/3);
// threshold = first non-empty bin + floor((j + k) / 2) for the maxima j, k of the cropped
// histogram. Throws isonet::Error if the histogram is empty, too short, or not bimodal after 10000
// passes (ImageJ gives up at the same count). mode_lo/mode_hi/iterations are written when given.
int intermodes_bin(const std::vector<double>& histogram, int* mode_lo = nullptr, int* mode_hi = nullptr,
                   int* iterations = nullptr);

// Intermodes threshold of a volume over the range [min, max] of its values. Throws isonet::Error on
// an empty or constant volume, non-finite values, or a histogram that is not bimodal.
IntermodesResult threshold_intermodes(const Volume& v);
// Same over an explicit range [range_lo, range_hi] (range_lo < range_hi), e.g. to threshold several
// conditions on one intensity scale.
IntermodesResult threshold_intermodes(const Volume& v, double range_lo, double range_hi);

// Mask of the voxels above the threshold (their bin > t.bin). Output [nz, ny, nx], values 0/1.
std::vector<uint8_t> apply_threshold(const Volume& v, const IntermodesResult& t);

// ---------------------------------------------------------------------------------------------
// 2. Hole filling and connected components

// Fills holes in place: every background voxel that is not 6-connected through background to a
// voxel on the volume border becomes foreground (1). mask: [nz, ny, nx].
void fill_holes_3d(std::vector<uint8_t>& mask, Shape3 shape);

// Labels the connected components of the foreground of `mask` ([nz, ny, nx]) with 1..n, numbered
// in raster order of their first voxel (deterministic). connectivity: 6, 18 or 26.
// Writes n to *count when given.
std::vector<int32_t> connected_components_3d(const std::vector<uint8_t>& mask, Shape3 shape,
                                             int connectivity = 26, int* count = nullptr);

// ---------------------------------------------------------------------------------------------
// 3. Distance transform and watershed

// Exact Euclidean distance transform: for every foreground voxel, the distance to the nearest
// background voxel of the volume, in the physical units of `spacing` (z, y, x voxel size);
// background voxels get 0. Squared distances when `squared` (exact integers for unit spacing up
// to 2^24). Voxels outside the volume are not background: a mask without any background voxel
// gives +infinity everywhere. Separable lower-envelope algorithm of Felzenszwalb & Huttenlocher
// (2012), one pass per axis, lines in parallel. mask: [nz, ny, nx]; returns [nz, ny, nx].
std::vector<float> distance_transform_edt(const std::vector<uint8_t>& mask, Shape3 shape,
                                          const VoxelSize& spacing = {}, bool squared = false);

// Watershed markers from a surface to be flooded from its maxima (e.g. the EDT). A marker is one
// voxel (the first in raster order among the highest) of every regional maximum of `f` inside the
// foreground of `mask` (26-connected; background voxels are not part of the graph) whose dynamic
// is >= h, or > 0 when h == 0. The dynamic of a maximum is the height it must descend to reach a
// higher maximum (ties broken by raster order); the highest maximum of each connected component
// has infinite dynamic, so every component gets at least one marker. With h > 0 the markers are
// those of the h-maxima transform (regional maxima of the reconstruction by dilation of f - h
// under f): maxima separated from a higher one by a saddle less than h below them are dropped.
// Returns marker labels 1..n in decreasing order of height (ties by raster order), 0 elsewhere.
std::vector<int32_t> maxima_markers(const std::vector<float>& f, const std::vector<uint8_t>& mask,
                                    Shape3 shape, double h, int* count = nullptr);

// Marker-controlled watershed by priority flooding (Meyer 1991): starting from the marker voxels
// (labels > 0), the unlabeled foreground voxel of lowest `surface` value next to a labeled one
// (26-neighbourhood) takes the label of the voxel that reached it first; equal values are flooded
// in first-in first-out order. Voxels outside the mask stay 0, and so do foreground voxels whose
// component holds no marker. No watershed lines: every reached voxel gets a label.
// surface, markers, mask: [nz, ny, nx]. Markers outside the mask are an error.
std::vector<int32_t> watershed_from_markers(const std::vector<float>& surface,
                                            const std::vector<int32_t>& markers,
                                            const std::vector<uint8_t>& mask, Shape3 shape);

// ---------------------------------------------------------------------------------------------
// The pipeline

struct SegmentOptions {
  // Histogram range of the threshold; when range_lo >= range_hi (the default) the volume's
  // [min, max] is used, as ImageJ does.
  double range_lo = 0, range_hi = 0;
  bool fill_holes = true;
  // Split touching nuclei with the watershed; when false, labels are the 26-connected components.
  bool split = true;
  // Marker dynamic, in voxels of the finest axis (h = h_voxels * min(voxel.z, voxel.y, voxel.x)
  // in the units of the distance transform). Two touching balls of radius R whose neck has
  // radius r are split when R - r >= h. 0 keeps every regional maximum of the EDT, which
  // over-segments: a discrete EDT has spurious shallow maxima (dynamics below a voxel) on the
  // medial sheets of ellipsoids and at surface bumps. Too large an h merges small touching nuclei.
  // 1 voxel was best on the nuclei phantom (make_nuclei, semi-axes ~4.5 voxels, blur sigma 1,
  // 96^3: h = 0 / 1 / 2 gave 582 / 579 / 546 objects for 579 nuclei, SEG 0.911 / 0.913 / 0.862;
  // with semi-axes of 12 voxels every h in 0.5..3 gave the same result).
  double h_voxels = 1.0;
  // Objects with fewer voxels are removed (set to 0) at the end; 0 keeps everything.
  int min_object_voxels = 0;
};

struct SegmentResult {
  std::vector<int32_t> labels;  // [nz, ny, nx]: 0 background, 1..num_labels, raster order of first voxel
  int num_labels = 0;
  IntermodesResult threshold;
  size_t foreground_voxels = 0;  // after hole filling
  int num_markers = 0;           // watershed markers (components when split is off), before size filtering
};

// Threshold (intermodes), fill holes, split by the EDT watershed (EDT in the units of v.voxel, so
// anisotropic voxels are handled), remove small objects, relabel 1..n. Throws isonet::Error from
// the steps (constant volume, non-bimodal histogram, non-finite values).
SegmentResult segment_nuclei(const Volume& v, const SegmentOptions& options = {});

// ---------------------------------------------------------------------------------------------
// Score

// SEG of the ISBI Cell Tracking Challenge: for each ground-truth object R (label > 0), the
// predicted object S with |R ∩ S| > 0.5 |R| (at most one can satisfy it) scores its Jaccard index
// |R ∩ S| / |R ∪ S|; without such S it scores 0. SEG = mean over ground-truth objects. Labels may
// be any non-negative int32 values (not necessarily consecutive); predicted label 0 is background
// and never matches.
struct SegScore {
  double seg = 0;        // in [0, 1]
  int num_gt = 0;        // ground-truth objects
  int num_matched = 0;   // those with a matching predicted object
  int num_pred = 0;      // predicted objects
};
// gt, pred: [nz, ny, nx] with the same number of elements. Throws isonet::Error on a size
// mismatch, negative labels, or a ground truth without objects (SEG is undefined there).
SegScore seg_score(const std::vector<int32_t>& gt, const std::vector<int32_t>& pred);

}  // namespace isonet
