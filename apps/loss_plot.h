// loss_plot.h: the training curve as a small grayscale PNG: training PSNR (= -loss, dB) per step,
// raw in light gray and a moving average in black, with the y range and the step range written
// in a tiny built-in digit font; validation scores (train --validation), when given, as hollow
// squares joined by a dotted line. Meant for a quick look, not for publication.
#pragma once
#include <string>
#include <vector>

#include "imaging/png_image.h"

namespace isonet::app {

// A validation score: PSNR in dB after step `step` (absolute, as the losses' steps).
struct ValidationPoint {
  long step;
  double psnr;
};

// losses[i] is the loss of step first_step + i. Needs at least one finite loss.
Gray8 render_loss_plot(const std::vector<float>& losses, long first_step = 1, int width = 640, int height = 360,
                       const std::vector<ValidationPoint>& validation = {});

// render_loss_plot written atomically as PNG.
void write_loss_plot(const std::string& path, const std::vector<float>& losses, long first_step = 1,
                     const std::vector<ValidationPoint>& validation = {});

}  // namespace isonet::app
