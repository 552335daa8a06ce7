#include <fmt/core.h>

#include "cli/commands.hpp"
#include "cli/error_format.hpp"

namespace tpsim::cli {

std::string format_input_error(const InputError& e) {
  std::string where = e.file;
  if (!where.empty() && e.line > 0) where += fmt::format(":{}:{}", e.line, e.column);
  std::string out = where.empty() ? "" : where + ": ";
  if (!e.key.empty()) out += e.key + ": ";
  return out + e.problem;
}

ScenarioRequest ScenarioOptions::request() const {
  ScenarioRequest r;
  r.path = scenario;
  r.topology = topology;
  r.model = model;
  r.plan = plan;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError("", 0, 0, "--set", fmt::format("expected SECTION.KEY=VALUE, got '{}'", s));
    r.overrides.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }
  return r;
}

void add_scenario_options(CLI::App& cmd, ScenarioOptions& o, bool positional_scenario) {
  if (positional_scenario)
    cmd.add_option("scenario", o.scenario, "Scenario YAML (default: the embedded Llama-2-7B TP=8 DGX H100 scenario)");
  // An empty reference would read as "keep the scenario's", silently.
  const CLI::Validator named([](const std::string& s) { return s.empty() ? std::string("expected a preset name or a YAML path, got ''") : std::string(); }, "REF");
  cmd.add_option("-t,--topology", o.topology, "Topology preset name or YAML path, replacing the scenario's")->check(named);
  cmd.add_option("-m,--model", o.model, "Model preset name or YAML path, replacing the scenario's")->check(named);
  cmd.add_option("-p,--plan", o.plan, "Plan preset name or YAML path, replacing the scenario's")->check(named);
  cmd.add_option("--set", o.sets, "Override a field: SECTION.KEY=VALUE (e.g. plan.tp=4, topology.nodes=2)")
      ->take_all();
}

}  // namespace tpsim::cli
