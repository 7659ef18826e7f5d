// progress.cpp: the training progress report (see progress.h).
#include "apps/progress.h"

#include <unistd.h>

#include <cmath>

namespace isonet::app {

TrainingProgress::TrainingProgress(long first_step, long last_step, int batch, std::FILE* out, double interval_s)
    : first_(first_step), last_(last_step), batch_(batch), out_(out), interval_s_(interval_s),
      tty_(out != nullptr && isatty(fileno(out))), start_(Clock::now()), last_emit_(start_) {}

std::string TrainingProgress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = long(std::lround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string TrainingProgress::format_line(long step, long last_step, double mean_loss, double patches_per_s,
                                          double eta_s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "step %ld/%ld  loss %.4f  PSNR %.2f dB  %.1f patches/s  ETA %s", step, last_step,
                mean_loss, -mean_loss, patches_per_s, format_duration(eta_s).c_str());
  return buf;
}

void TrainingProgress::emit(long step, bool final) {
  if (!out_) return;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const long done = step - first_;
  const double rate = elapsed > 0 ? done * double(batch_) / elapsed : 0.0;
  const double eta = done > 0 ? elapsed / done * double(last_ - step) : NAN;
  const double mean = loss_count_ > 0 ? loss_sum_ / loss_count_ : last_mean_;
  std::string line = format_line(step, last_, mean, rate, final ? 0.0 : eta);
  if (final) line += "  (" + format_duration(elapsed) + " total)";
  if (tty_) {
    std::fprintf(out_, "\r%s\033[K", line.c_str());
    if (final) std::fputc('\n', out_);
    line_open_ = !final;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
  last_mean_ = mean;
  loss_sum_ = 0;
  loss_count_ = 0;
  last_emit_ = Clock::now();
}

void TrainingProgress::update(long step, float loss) {
  loss_sum_ += loss;
  ++loss_count_;
  last_step_seen_ = step;
  const double since = std::chrono::duration<double>(Clock::now() - last_emit_).count();
  // The first step is reported at once on a terminal; plain lines wait for the interval.
  if (since >= (tty_ ? 0.25 : interval_s_) || (tty_ && step == first_ + 1)) emit(step, false);
}

void TrainingProgress::message(const std::string& line) {
  if (!out_) return;
  if (line_open_) std::fputc('\n', out_);
  line_open_ = false;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void TrainingProgress::finish() {
  if (last_step_seen_ > first_) emit(last_step_seen_, true);
  else if (line_open_ && out_) std::fputc('\n', out_);
  line_open_ = false;
}

}  // namespace isonet::app
