// `tpsim run [SCENARIO]`: simulate a scenario and print where the time goes; check it numerically.
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.hpp"
#include "tpsim/report.hpp"

namespace tpsim::cli {

namespace {
struct RunArgs {
  ScenarioOptions scenario;
  std::string json;
  std::string numerics;
};
}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Simulate a scenario: step time, compute, communication, stalls, numerics");
  add_scenario_options(*cmd, args->scenario);
  cmd->add_option("--json", args->json, "Also write the result as JSON to this file");
  cmd->add_option("--numerics", args->numerics, "Numerical check: off | proxy | full (default: the scenario's)")
      ->check(CLI::IsMember({"off", "proxy", "full"}));
  cmd->callback([args] {
    const Scenario scenario = load_scenario(args->scenario.request());
    RunOptions options;
    options.numerics = args->numerics;
    const RunResult result = run_scenario(scenario, options);
    std::fputs(summary_text(result).c_str(), stdout);
    if (!args->json.empty()) {
      std::ofstream out(args->json);
      if (!out) throw InputError("", 0, 0, "--json", "cannot write '" + args->json + "'");
      out << to_json(result).dump(2) << "\n";
    }
    if (result.numerics && !result.numerics->ok) throw Exit{kVerificationFailed};
  });
}

}  // namespace tpsim::cli
