// phantoms.h: seeded, deterministic synthetic volumes for training and scoring, as in the IsoNet
// paper's simulations: textured nuclei (about 1500 in 512^3), membranes of tightly packed
// epithelial cells (sheets on the boundaries of a Voronoi tessellation), and cells with both.
// Every phantom comes with an integer label volume (ground truth for segmentation). Values are
// intensities in [0, ~1] on a `background` level, isotropic voxels (voxel size 1, unit "px"),
// no noise (see noise.h) and no blur (the PSF code blurs). The same parameters and seed give
// bit-identical volumes on any machine and thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "imaging/volume.h"

namespace isonet {

// Density plus labels: labels[i] = 0 for background, k >= 1 for object k (nucleus or cell).
struct Phantom {
  Volume density;                // [nz, ny, nx]
  std::vector<int32_t> labels;   // [nz, ny, nx], same indexing as density
  int num_labels = 0;            // labels take values 0..num_labels
};

// Smooth band-limited 3D gradient noise (Perlin's improved noise with hashed gradients), summed
// over octaves (each half the feature size, half the amplitude) and scaled to about [-1, 1].
// feature_size: the lattice period of the first octave in voxels (> 0).
Volume perlin_noise(int nz, int ny, int nx, double feature_size, int octaves, uint64_t seed);

// Nuclei: ellipsoids with random semi-axes and orientation, placed without overlap of their
// bounding spheres (random sequential placement; if the volume is too full the count achieved is
// smaller and Phantom::num_labels says so), smooth edges, per-nucleus brightness and a Perlin
// texture. Zero/negative fields mean "choose from the volume size":
//   radius = max(4.5, 0.0342 * cbrt(nz*ny*nx))  (17.5 voxels at 512^3),
//   count  = the number of spheres of that radius filling 25% of the volume (1492 at 512^3,
//            about 1370 at 128^3 where the radius floor of 4.5 applies).
struct NucleiParams {
  int count = 0;                  // 0: auto
  double radius = 0;              // mean semi-axis in voxels; 0: auto
  double radius_spread = 0.25;    // semi-axes uniform in radius * [1 - spread, 1 + spread]
  double edge_width = 1.0;        // voxels over which the edge falls from ~88% to ~12%
  double brightness_min = 0.5;    // per-nucleus brightness uniform in [min, 1]
  double texture_strength = 0.4;  // multiplicative texture: 1 + strength * noise, clamped >= 0
  double texture_size = 0;        // texture feature size in voxels; 0: radius / 2
  double background = 0.0;
  uint64_t seed = 1;
};
Phantom make_nuclei(int nz, int ny, int nx, const NucleiParams& params = {});

// Membranes: thin sheets on the boundaries between cells of a Voronoi tessellation of jittered
// grid centres (tightly packed epithelium). The sheet profile is Gaussian in the distance to the
// nearest cell boundary, its strength modulated by a Perlin texture. Labels: cell index (every
// voxel belongs to a cell; the membranes themselves carry the label of the nearer cell).
//   cell_size = max(12, 0.08 * cbrt(nz*ny*nx)) voxels (centre spacing) when 0 (41 at 512^3).
struct MembraneParams {
  double cell_size = 0;           // mean distance between neighbouring cell centres; 0: auto
  double jitter = 0.35;           // centre jitter as a fraction of cell_size
  double thickness = 0.8;         // Gaussian sigma of the sheet profile in voxels
  double texture_strength = 0.5;
  double texture_size = 0;        // 0: cell_size / 2
  double background = 0.0;
  uint64_t seed = 2;
};
Phantom make_membranes(int nz, int ny, int nx, const MembraneParams& params = {});

// Cells with both: the membrane phantom plus one textured nucleus near the centre of every cell
// (semi-axes about nucleus_fraction of the distance to the nearest boundary), nuclei scaled by
// nucleus_brightness. Labels are the cell labels of make_membranes (nucleus k lies in cell k).
struct CellsParams {
  MembraneParams membranes;
  double nucleus_fraction = 0.6;
  double nucleus_brightness = 0.8;
  double nucleus_texture_strength = 0.4;
};
Phantom make_cells(int nz, int ny, int nx, const CellsParams& params = {});

}  // namespace isonet
