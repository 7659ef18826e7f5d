// progress.cpp: progress reports of long commands (see progress.h).
#include "apps/progress.h"

#include <unistd.h>

#include <cmath>
#include <utility>

namespace isonet::app {

// --- ProgressLine --------------------------------------------------------------------------------

ProgressLine::ProgressLine(std::FILE* out, double interval_s)
    : out_(out), interval_s_(interval_s), tty_(out != nullptr && isatty(fileno(out))), start_(Clock::now()),
      last_emit_(start_) {}

std::string ProgressLine::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = long(std::lround(seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

double ProgressLine::elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

bool ProgressLine::due(bool first) const {
  if (!out_) return false;
  const double since = std::chrono::duration<double>(Clock::now() - last_emit_).count();
  // The first update is shown at once on a terminal; plain lines wait for the interval.
  return since >= (tty_ ? 0.25 : interval_s_) || (tty_ && first);
}

void ProgressLine::show(const std::string& line, bool final) {
  if (!out_) return;
  if (tty_) {
    std::fprintf(out_, "\r%s\033[K", line.c_str());
    if (final) std::fputc('\n', out_);
    line_open_ = !final;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
  last_emit_ = Clock::now();
}

void ProgressLine::message(const std::string& line) {
  if (!out_) return;
  close();
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void ProgressLine::close() {
  if (line_open_ && out_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  line_open_ = false;
}

// --- TrainingProgress ----------------------------------------------------------------------------

TrainingProgress::TrainingProgress(long first_step, long last_step, int batch, std::FILE* out, double interval_s)
    : first_(first_step), last_(last_step), batch_(batch), line_(out, interval_s) {}

std::string TrainingProgress::format_line(long step, long last_step, double mean_loss, double patches_per_s,
                                          double eta_s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "step %ld/%ld  loss %.4f  PSNR %.2f dB  %.1f patches/s  ETA %s", step, last_step,
                mean_loss, -mean_loss, patches_per_s, format_duration(eta_s).c_str());
  return buf;
}

void TrainingProgress::emit(long step, bool final) {
  const double elapsed = line_.elapsed_s();
  const long done = step - first_;
  const double rate = elapsed > 0 ? done * double(batch_) / elapsed : 0.0;
  const double eta = done > 0 ? elapsed / done * double(last_ - step) : NAN;
  const double mean = loss_count_ > 0 ? loss_sum_ / loss_count_ : last_mean_;
  std::string text = format_line(step, last_, mean, rate, final ? 0.0 : eta);
  if (final) text += "  (" + format_duration(elapsed) + " total)";
  line_.show(text, final);
  last_mean_ = mean;
  loss_sum_ = 0;
  loss_count_ = 0;
}

void TrainingProgress::update(long step, float loss) {
  loss_sum_ += loss;
  ++loss_count_;
  last_step_seen_ = step;
  if (line_.due(step == first_ + 1)) emit(step, false);
}

void TrainingProgress::finish() {
  if (last_step_seen_ > first_ && !line_.silent()) emit(last_step_seen_, true);
  line_.close();
}

// --- WorkProgress --------------------------------------------------------------------------------

WorkProgress::WorkProgress(std::string label, long total, std::string unit, std::FILE* out, double interval_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), line_(out, interval_s) {}

std::string WorkProgress::format_line(const std::string& label, long done, long total, const std::string& unit,
                                      double per_s, double eta_s) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s: %ld/%ld %s  %.1f %s/s  ETA %s", label.c_str(), done, total, unit.c_str(),
                per_s, unit.c_str(), ProgressLine::format_duration(eta_s).c_str());
  return buf;
}

void WorkProgress::emit(long done, bool final) {
  const double elapsed = line_.elapsed_s();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double eta = done > 0 ? elapsed / done * double(total_ - done) : NAN;
  std::string text = format_line(label_, done, total_, unit_, rate, final ? 0.0 : eta);
  if (final) text += "  (" + ProgressLine::format_duration(elapsed) + " total)";
  line_.show(text, final);
}

void WorkProgress::update(long done) {
  const bool first = done_ == 0;
  done_ = done;
  if (line_.due(first)) emit(done, false);
}

void WorkProgress::finish() {
  if (done_ > 0 && !line_.silent()) emit(done_, true);
  line_.close();
}

}  // namespace isonet::app
