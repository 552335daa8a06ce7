// The progress line on stderr (see tpsim/progress.hpp).
#include "tpsim/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tpsim {

namespace {

using Clock = std::chrono::steady_clock;

constexpr double kQuietFor = 1.0;          // s: work shorter than this never draws
constexpr double kRedrawEvery = 0.1;       // s between redraws
constexpr double kRateAfterSeconds = 2.0;  // an ETA needs this much of the phase observed ...
constexpr double kRateAfterShare = 0.02;   // ... and this share of it done

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

std::string duration_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s < 1) return "under 1 s";
  if (s < 90) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, (s % 3600) / 60);
}

std::string progress_text(const std::string& command, const std::string& phase, const std::string& unit,
                          int64_t done, int64_t total, double elapsed_s, int64_t first) {
  const double share = total > 0 ? double(done) / double(total) : 1.0;
  const double fresh_share = total > first ? double(done - first) / double(total - first) : 1.0;
  std::string eta = "estimating the time left";
  if (done >= total)
    eta = "done";
  else if (elapsed_s >= kRateAfterSeconds && fresh_share >= kRateAfterShare)
    eta = "about " + duration_text(elapsed_s / fresh_share * (1.0 - fresh_share)) + " left";
  return fmt::format("{}: {}  {}/{} {}  {}%  {}", command, phase, done, total, unit,
                     static_cast<int>(std::floor(100.0 * share)), eta);
}

struct ProgressLine::State {
  std::string command;
  bool enabled = false;
  Clock::time_point created = Clock::now();
  Clock::time_point last_draw{};
  size_t drawn_width = 0;   // characters on the line now; 0 = nothing drawn

  void draw(const std::string& text) {
    std::fprintf(stderr, "\r%s%s", text.c_str(),
                 std::string(drawn_width > text.size() ? drawn_width - text.size() : 0, ' ').c_str());
    std::fflush(stderr);
    drawn_width = text.size();
    last_draw = Clock::now();
  }
  void erase() {
    if (drawn_width == 0) return;
    std::fprintf(stderr, "\r%s\r", std::string(drawn_width, ' ').c_str());
    std::fflush(stderr);
    drawn_width = 0;
  }
};

ProgressLine::ProgressLine(std::string command, bool enabled) : state_(std::make_shared<State>()) {
  state_->command = std::move(command);
  state_->enabled = enabled;
}

ProgressLine::~ProgressLine() { state_->erase(); }

ProgressFn ProgressLine::phase(const std::string& phase, const std::string& unit) {
  if (!state_->enabled) return {};
  // The phase's clock starts at its first report; `first` is what was already done then (a resumed
  // sweep), which the rate must not count.
  struct Phase {
    Clock::time_point start{};
    int64_t first = -1;
  };
  auto p = std::make_shared<Phase>();
  return [state = state_, p, phase, unit](int64_t done, int64_t total) {
    if (p->first < 0) {
      p->first = done;
      p->start = Clock::now();
    }
    if (done >= total) return state->erase();   // the phase's result starts on a clean line
    if (seconds_since(state->created) < kQuietFor) return;
    if (seconds_since(state->last_draw) < kRedrawEvery) return;
    state->draw(progress_text(state->command, phase, unit, done, total, seconds_since(p->start), p->first));
  };
}

ProgressPhases ProgressLine::phases() {
  return [this](const std::string& phase, const std::string& unit) { return this->phase(phase, unit); };
}

bool progress_wanted() { return ::isatty(STDERR_FILENO) != 0 && spdlog::get_level() < spdlog::level::err; }

}  // namespace tpsim
