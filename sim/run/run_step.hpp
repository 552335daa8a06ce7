// Scope "step" of run_scenario: a whole training step or inference request, timed on SimGrid, with
// the metrics capacity planners ask for (step time, tokens/s, TFLOP/s per GPU, MFU, memory).
#pragma once

#include "tpsim/run.hpp"

namespace tpsim {

// Fills result.timeline, result.step and result.scope for the scenario's workload.
void run_step(const Scenario& scenario, const RunOptions& options, RunResult& result);

}  // namespace tpsim
