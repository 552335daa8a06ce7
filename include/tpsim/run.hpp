// Orchestration: one scenario through the whole data flow (lower, resolve every collective once,
// time on SimGrid and check numerically with the same instances, collect). It sits between the
// interpreters and the reports; reports only read the RunResult it returns.
#pragma once

#include <string>

#include "tpsim/report.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

struct RunOptions {
  std::string numerics = "";    // "" = the scenario's choice; else off | proxy | full
  DType numerics_dtype = DType::fp32;
  std::string scope = "step";   // step (the workload: training step or inference request) | block
  std::string tp_collectives = "auto";   // step scope: auto | exact | folded (see StepMetrics)
  std::string dp_replicas = "auto";      // step scope: auto | all | one (see StepMetrics; auto = one from 512 GPUs)
};
RunResult run_scenario(const Scenario& scenario, const RunOptions& options);

}  // namespace tpsim
