// loss_plot.cpp: rasterized training curve (see loss_plot.h).
#include "apps/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kernels/error.h"

namespace isonet::app {
namespace {

// 5x7 glyphs of "0123456789.-", one row per byte, bit 4 = leftmost column.
constexpr unsigned char kGlyphs[12][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
};

struct Canvas {
  Gray8& img;
  void set(int x, int y, uint8_t v) {
    if (x >= 0 && y >= 0 && x < img.width && y < img.height) img.pixels[size_t(y) * img.width + x] = v;
  }
  // Bresenham line.
  void line(int x0, int y0, int x1, int y1, uint8_t v) {
    int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      set(x0, y0, v);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }
  // Text of digits, '.' and '-' with its top-left corner at (x, y); other characters are skipped.
  void text(int x, int y, const std::string& s, uint8_t v) {
    for (char c : s) {
      int g = c >= '0' && c <= '9' ? c - '0' : c == '.' ? 10 : c == '-' ? 11 : -1;
      if (g >= 0)
        for (int r = 0; r < 7; ++r)
          for (int col = 0; col < 5; ++col)
            if (kGlyphs[g][r] & (0x10 >> col)) set(x + col, y + r, v);
      x += 6;
    }
  }
};

std::string number(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

Gray8 render_loss_plot(const std::vector<float>& losses, long first_step, int width, int height,
                       const std::vector<ValidationPoint>& validation) {
  ISONET_CHECK(width >= 120 && height >= 60, "loss plot: size ", width, "x", height, " too small");
  std::vector<double> psnr;  // -loss, non-finite values skipped in the range
  double lo = INFINITY, hi = -INFINITY;
  for (float l : losses) {
    psnr.push_back(-double(l));
    if (std::isfinite(l)) {
      lo = std::min(lo, -double(l));
      hi = std::max(hi, -double(l));
    }
  }
  ISONET_CHECK(std::isfinite(lo), "loss plot: no finite loss to plot");
  for (const ValidationPoint& v : validation)
    if (std::isfinite(v.psnr)) {
      lo = std::min(lo, v.psnr);
      hi = std::max(hi, v.psnr);
    }
  if (hi - lo < 1e-6) {
    lo -= 0.5;
    hi += 0.5;
  }
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;

  Gray8 img;
  img.width = width;
  img.height = height;
  img.pixels.assign(size_t(width) * height, 255);
  Canvas c{img};
  // Plot area inside margins for the labels.
  const int left = 48, right = width - 10, top = 10, bottom = height - 20;
  c.line(left, top, left, bottom, 0);
  c.line(left, bottom, right, bottom, 0);
  const size_t n = psnr.size();
  auto px = [&](size_t i) { return n > 1 ? left + int(std::lround(double(i) / double(n - 1) * (right - left))) : left; };
  auto py = [&](double v) { return bottom - int(std::lround((v - lo) / (hi - lo) * (bottom - top))); };
  // Light gray grid lines at quarters.
  for (int q = 1; q < 4; ++q) {
    const int y = top + (bottom - top) * q / 4;
    for (int x = left + 1; x < right; x += 4) c.set(x, y, 200);
  }
  // Raw curve, then the moving average on top.
  auto draw = [&](const std::vector<double>& ys, uint8_t value) {
    bool have = false;
    int x0 = 0, y0 = 0;
    for (size_t i = 0; i < ys.size(); ++i) {
      if (!std::isfinite(ys[i])) { have = false; continue; }
      const int x1 = px(i), y1 = py(ys[i]);
      if (have) c.line(x0, y0, x1, y1, value);
      else c.set(x1, y1, value);
      x0 = x1;
      y0 = y1;
      have = true;
    }
  };
  draw(psnr, 170);
  const size_t window = std::max<size_t>(1, n / 50);
  std::vector<double> smooth(n, NAN);
  double sum = 0;
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(psnr[i])) { sum += psnr[i]; ++count; }
    if (i >= window && std::isfinite(psnr[i - window])) { sum -= psnr[i - window]; --count; }
    if (count > 0) smooth[i] = sum / double(count);
  }
  draw(smooth, 0);
  // Validation scores: a dotted line through hollow 5x5 squares, at their steps' x positions.
  int vx0 = -1, vy0 = 0;
  for (const ValidationPoint& v : validation) {
    const long i = v.step - first_step;
    if (!std::isfinite(v.psnr) || i < 0 || i >= long(n)) continue;
    const int x = px(size_t(i)), y = py(v.psnr);
    if (vx0 >= 0)
      for (int k = 0, steps = std::max(std::abs(x - vx0), std::abs(y - vy0)); k <= steps; k += 3)
        c.set(vx0 + (x - vx0) * k / std::max(steps, 1), vy0 + (y - vy0) * k / std::max(steps, 1), 0);
    for (int d = -2; d <= 2; ++d) {
      c.set(x + d, y - 2, 0);
      c.set(x + d, y + 2, 0);
      c.set(x - 2, y + d, 0);
      c.set(x + 2, y + d, 0);
    }
    vx0 = x;
    vy0 = y;
  }
  // Labels: PSNR range on the left, step range below.
  const int decimals = hi - lo < 1 ? 2 : 1;
  c.text(2, top, number(hi, decimals), 0);
  c.text(2, bottom - 7, number(lo, decimals), 0);
  c.text(left, bottom + 6, std::to_string(first_step), 0);
  const std::string last = std::to_string(first_step + long(n) - 1);
  c.text(right - 6 * int(last.size()), bottom + 6, last, 0);
  return img;
}

void write_loss_plot(const std::string& path, const std::vector<float>& losses, long first_step,
                     const std::vector<ValidationPoint>& validation) {
  write_png(path, render_loss_plot(losses, first_step, 640, 360, validation));
}

}  // namespace isonet::app
