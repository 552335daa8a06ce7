// `tpsim explain [SCENARIO]`: walk one transformer layer under the plan, with what each split costs.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "tpsim/explain.hpp"

namespace tpsim::cli {

void register_explain(CLI::App& app) {
  auto args = std::make_shared<ScenarioOptions>();
  auto* cmd = app.add_subcommand(
      "explain", "Walk one transformer layer under the plan: how each weight is split, which collective each "
                 "mapping needs forward and backward and why, bytes, predicted time, per-layer total");
  add_scenario_options(*cmd, *args);
  cmd->callback([args] {
    const Scenario scenario = load_scenario(args->request());
    std::fputs(explain_text(explain_layer(scenario)).c_str(), stdout);
  });
}

}  // namespace tpsim::cli
