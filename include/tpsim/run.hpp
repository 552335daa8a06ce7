// Orchestration: one scenario through the whole data flow (lower, resolve every collective once,
// time on SimGrid and check numerically with the same instances, collect). It sits between the
// interpreters and the reports; reports only read the RunResult it returns.
#pragma once

#include <string>

#include "tpsim/lower.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/report.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

struct RunOptions {
  std::string numerics = "";    // "" = the scenario's choice; else off | proxy | full
  DType numerics_dtype = DType::fp32;
  std::string scope = "step";   // step (the workload: training step or inference request) | block
  std::string tp_collectives = "auto";   // step scope: auto | exact | folded (see StepMetrics)
  std::string dp_replicas = "auto";      // step scope: auto | all | one (see StepMetrics; auto = one from 512
                                         // GPUs where dp_links_private)
  bool shortcut_warnings = true;         // false: a sweep's layouts, the sweep warns once itself
  ProgressPhases progress;               // the long phases (simulating a step, checking numerics); empty = none
};
RunResult run_scenario(const Scenario& scenario, const RunOptions& options);

// Whether the DP collectives of different local GPUs, which run together in a symmetric step,
// never share a link, so one DP replica with its DP collectives timed alone is exact: every GPU
// has NICs of its own, reached without crossing CPU sockets or shared PCIe uplinks, and the
// network's uplinks carry all the NICs send (a non-blocking fat tree, an adaptive dragonfly at 1:1).
bool dp_links_private(const Topology& topology);

// The numerical check of a plan as the timing runs it: lowers `scenario` at full size and resolves
// its collectives with the one selector (as the timing does), then lowers the same scope at proxy
// scale (when `proxy`) and runs it sharded and unsharded with those very instances (the same
// algorithm, protocol, channel orders and chunk count; only the data is smaller).
// The scenario as the numerics runs it: a mixture-of-experts model's buffers sized so no token is
// dropped (see run_scenario.cpp); other scenarios unchanged.
Scenario dropless_numerics(const Scenario& scenario);
NumericsReport verify_as_timed(const Scenario& scenario, bool proxy, const LowerOptions& lowering,
                               const NumericsOptions& options);

}  // namespace tpsim
