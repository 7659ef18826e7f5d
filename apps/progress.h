// progress.h: the training progress report: step, loss, training PSNR, patches/s and ETA, as one
// line rewritten in place on a terminal, or as periodic plain lines when the output is a file or
// a pipe (CI logs stay readable).
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace isonet::app {

class TrainingProgress {
 public:
  // Steps first_step+1 .. last_step will be reported; `batch` patches per step. Lines go to
  // `out`; interval_s is the period of the plain lines (a terminal is refreshed every 0.25 s).
  TrainingProgress(long first_step, long last_step, int batch, std::FILE* out = stderr, double interval_s = 10.0);

  // After step `step` (1-based, absolute) with its batch-mean loss (the negative PSNR in dB).
  void update(long step, float loss);
  // Ends the report (a final line with the totals).
  void finish();
  // A line of its own between the progress lines (e.g. a validation score); on a terminal the
  // progress line being rewritten is ended first.
  void message(const std::string& line);

  // The text of a report line (for tests): "step 120/1000  loss -24.31  PSNR 24.31 dB  ...".
  static std::string format_line(long step, long last_step, double mean_loss, double patches_per_s,
                                 double eta_s);
  static std::string format_duration(double seconds);  // "1:02:03" or "2:03"

 private:
  using Clock = std::chrono::steady_clock;
  void emit(long step, bool final);

  long first_, last_;
  int batch_;
  std::FILE* out_;
  double interval_s_;
  bool tty_;
  Clock::time_point start_, last_emit_;
  double loss_sum_ = 0;  // since the last line
  long loss_count_ = 0;
  double last_mean_ = 0;
  long last_step_seen_ = 0;
  bool line_open_ = false;  // a terminal line is being rewritten
};

}  // namespace isonet::app
