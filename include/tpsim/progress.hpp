// Feedback on long work: the work reports how far it got in its own units, and whoever started it
// decides whether to show it. Nothing here knows what a layout or an op is.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace tpsim {

// Called as work goes: `done` of `total` units (ops, layouts). May be empty: then nobody listens.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Hands out one callback per phase of a job ("simulating the step", "checking numerics"); empty =
// no progress wanted.
using ProgressPhases = std::function<ProgressFn(const std::string& phase, const std::string& unit)>;

// "tpsim verify: executing ops  250/1000 ops  25%  about 30 s left". The time left is the rate of
// this phase so far (elapsed_s for done - first units; `first` were done before it started, e.g.
// rows a resumed sweep took from its file) applied to what is left, shown only once the rate
// means something: at least 2% of the remaining work done over at least 2 s.
std::string progress_text(const std::string& command, const std::string& phase, const std::string& unit,
                          int64_t done, int64_t total, double elapsed_s, int64_t first = 0);

// "under 1 s", "40 s", "3 min 20 s", "2 h 05 min".
std::string duration_text(double seconds);

// One line on stderr that rewrites itself ("\r"), for a person watching a terminal. Disabled (no
// output at all) when stderr is not a terminal or the user asked for quiet; silent as well for work
// that ends within a second, so short runs print exactly what they printed before. The line is
// erased when a phase reports done >= total and when the object goes away, so the result that
// follows starts on a clean line.
class ProgressLine {
 public:
  ProgressLine(std::string command, bool enabled);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  ProgressFn phase(const std::string& phase, const std::string& unit);
  ProgressPhases phases();   // phase() as a value to pass down

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Whether a command should draw a progress line: stderr is a terminal and the log level is not -q.
bool progress_wanted();

}  // namespace tpsim
