// One scenario through the whole data flow: spec -> program -> (numerics | timing) -> result.
#include <spdlog/spdlog.h>

#include "tpsim/engine.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/report.hpp"
#include "report/run_step.hpp"

namespace tpsim {

RunResult run_scenario(const Scenario& scenario, const RunOptions& options) {
  RunResult result;
  result.scenario = scenario;
  result.scope = "block";

  LowerOptions lower_options;
  lower_options.scope = LowerScope::block;
  if (options.scope == "step") {
    // The workload as a whole: a training step (pipeline, DP, optimizer) or an inference request.
    run_step(scenario, options, result);
  } else {
    spdlog::info("lowering {} for tp {} pp {} dp {}", result.scope, scenario.plan.tp, scenario.plan.pp,
                 scenario.plan.dp);
    const ProgramSet programs = lower(scenario, lower_options);
    result.timeline = simulate(scenario.topology, programs, EngineOptions{});
  }

  const std::string mode = options.numerics.empty() ? scenario.numerics : options.numerics;
  if (mode != "off") {
    // The numerical check runs the same lowering on real tensors; `proxy` shrinks the model so a
    // plan for a 70B model is checked in seconds with every division by the mesh still exact.
    const Scenario checked = mode == "full" ? scenario : proxy_scale(scenario);
    const ProgramSet sharded = lower(checked, lower_options);
    const ProgramSet reference = lower(unsharded(checked), lower_options);
    NumericsOptions numerics_options;
    numerics_options.dtype = options.numerics_dtype;
    result.numerics = verify(sharded, reference, numerics_options);
    result.numerics_scale = mode;
  }
  return result;
}

}  // namespace tpsim
