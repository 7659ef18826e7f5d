// progress.h: progress reports of long commands, as one line rewritten in place on a terminal, or
// as periodic plain lines when the output is a file or a pipe (CI logs stay readable):
//  - TrainingProgress (train): step, loss, training PSNR, patches/s and ETA;
//  - WorkProgress (restore): items done of a total, items/s and ETA.
// Both print through ProgressLine, which owns the terminal/plain-line logic.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace isonet::app {

// One progress line on `out` (nullptr: silent): rewritten in place on a terminal (at most every
// 0.25 s), a plain line every `interval_s` otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(std::FILE* out, double interval_s = 10.0);
  // Whether an update should be shown now (`first`: the first update, shown at once on a terminal).
  bool due(bool first) const;
  // Shows `line`; `final` ends it (a newline on a terminal).
  void show(const std::string& line, bool final);
  // A line of its own between the progress lines (e.g. a validation score).
  void message(const std::string& line);
  // Ends a line being rewritten on a terminal, so that other output starts on a fresh line.
  void close();
  double elapsed_s() const;
  bool silent() const { return out_ == nullptr; }

  static std::string format_duration(double seconds);  // "1:02:03" or "2:03"; "?" when unknown

 private:
  using Clock = std::chrono::steady_clock;
  std::FILE* out_;
  double interval_s_;
  bool tty_;
  Clock::time_point start_, last_emit_;
  bool line_open_ = false;  // a terminal line is being rewritten
};

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
  void message(const std::string& line) { line_.message(line); }

  // The text of a report line (for tests): "step 120/1000  loss -24.31  PSNR 24.31 dB  ...".
  static std::string format_line(long step, long last_step, double mean_loss, double patches_per_s,
                                 double eta_s);
  static std::string format_duration(double seconds) { return ProgressLine::format_duration(seconds); }

 private:
  void emit(long step, bool final);

  long first_, last_;
  int batch_;
  ProgressLine line_;
  double loss_sum_ = 0;  // since the last line
  long loss_count_ = 0;
  double last_mean_ = 0;
  long last_step_seen_ = 0;
};

// "LABEL: done/total UNIT  rate UNIT/s  ETA m:ss" for work counted in items (restore: slices).
class WorkProgress {
 public:
  WorkProgress(std::string label, long total, std::string unit, std::FILE* out = stderr, double interval_s = 10.0);
  void update(long done);
  void finish();
  // Ends a line being rewritten, so that a log line can follow (see ProgressLine::close).
  void close() { line_.close(); }

  static std::string format_line(const std::string& label, long done, long total, const std::string& unit,
                                 double per_s, double eta_s);

 private:
  void emit(long done, bool final);

  std::string label_, unit_;
  long total_;
  long done_ = 0;
  ProgressLine line_;
};

}  // namespace isonet::app
