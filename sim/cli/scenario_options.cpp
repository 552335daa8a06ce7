#include <fmt/core.h>

#include <filesystem>

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

void ServingStreamOptions::append_sets(std::vector<std::string>& sets) const {
  const std::pair<const char*, const std::string*> flags[] = {{"rate", &rate},         {"duration", &duration},
                                                              {"requests", &requests}, {"seed", &seed},
                                                              {"slo.ttft", &slo_ttft}, {"slo.tpot", &slo_tpot}};
  for (const auto& [key, value] : flags)
    if (!value->empty()) sets.push_back(std::string("serving.") + key + "=" + *value);
  if (!trace.empty()) sets.push_back("serving.trace=" + std::filesystem::absolute(trace).lexically_normal().string());
}

void add_serving_stream_options(CLI::App& cmd, ServingStreamOptions& o) {
  cmd.add_option("--rate", o.rate, "Synthetic (Poisson) arrivals per second (serving.rate)");
  cmd.add_option("--duration", o.duration, "Seconds of synthetic arrivals, e.g. 600 or 10min (serving.duration)");
  cmd.add_option("--requests", o.requests, "Exactly this many requests (serving.requests)");
  cmd.add_option("--trace", o.trace, "Request trace CSV: arrived_at, prompt_tokens, output_tokens (serving.trace)");
  cmd.add_option("--seed", o.seed, "Seed of the synthetic stream (serving.seed)");
  cmd.add_option("--slo-ttft", o.slo_ttft, "Time-to-first-token objective, e.g. 2s (serving.slo.ttft)");
  cmd.add_option("--slo-tpot", o.slo_tpot, "Time-per-output-token objective, e.g. 200ms (serving.slo.tpot)");
}

}  // namespace tpsim::cli
