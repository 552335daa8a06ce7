// Reports: what a run found, for people (terminal summary) and scripts (JSON). Reports read the
// Timeline and the NumericsReport; they never simulate.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tpsim/numerics.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/timeline.hpp"

namespace tpsim {

struct RunResult {
  Scenario scenario;
  std::string scope;                      // what was simulated: "block", "layer", "step"
  Timeline timeline;
  std::optional<NumericsReport> numerics; // absent when numerics is off
  std::string numerics_scale;             // "proxy" | "full"
};

// Per-run totals over ranks: the slowest rank's view is what bounds the step.
struct RunTotals {
  double step_time = 0;                   // s
  double compute = 0, communication = 0, exposed_communication = 0, bubble = 0, idle = 0;  // s, max over ranks
};
RunTotals totals(const Timeline& t);

std::string summary_text(const RunResult& r);
nlohmann::json to_json(const RunResult& r);

// Time with an adaptive unit ("812.4 us", "3.21 ms", "1.50 s"), and bytes ("64.0 MiB").
std::string format_seconds(double s);
std::string format_bytes(double b);

}  // namespace tpsim

namespace tpsim {

// The whole data flow for one scenario: lower, time on SimGrid, check numerically, collect.
struct RunOptions {
  std::string numerics = "";    // "" = the scenario's choice; else off | proxy | full
  DType numerics_dtype = DType::fp32;
};
RunResult run_scenario(const Scenario& scenario, const RunOptions& options);

}  // namespace tpsim
