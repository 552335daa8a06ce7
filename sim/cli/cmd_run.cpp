// `tpsim run [SCENARIO]`: simulate a scenario and print where the time goes; check it numerically.
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output_paths.hpp"
#include "report/atomic_file.hpp"
#include "tpsim/attribution.hpp"
#include "tpsim/collective_calls.hpp"
#include "tpsim/html.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"
#include "tpsim/trace.hpp"

namespace tpsim::cli {

namespace {
struct RunArgs {
  ScenarioOptions scenario;
  std::string json, trace, html, csv;
  std::string numerics;
  std::string tp_collectives = "auto", dp_replicas = "auto";
  int64_t partial = 0;
};
}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "Simulate a scenario: step time, compute, communication, stalls, numerics");
  add_scenario_options(*cmd, args->scenario);
  cmd->add_option("--json", args->json, "Also write the result as JSON to this file");
  cmd->add_option("--trace", args->trace, "Also write a Chrome/Perfetto trace (JSON) to this file");
  cmd->add_option("--html", args->html, "Also write a self-contained HTML report (SVG timeline) to this file");
  cmd->add_option("--csv", args->csv, "Also write CSV files (gpus, stall sites, links, spans) into this folder");
  cmd->add_option("--numerics", args->numerics, "Numerical check: off | proxy | full (default: the scenario's)")
      ->check(CLI::IsMember({"off", "proxy", "full"}));
  cmd->add_option("--tp-collectives", args->tp_collectives,
                  "TP collectives as real ops (exact) or folded into compute at their uncontended time (folded); "
                  "auto folds only steps too large to simulate op by op")
      ->check(CLI::IsMember({"auto", "exact", "folded"}));
  cmd->add_option("--dp-replicas", args->dp_replicas,
                  "Simulate every data-parallel replica (all) or one, with DP collectives timed on the full "
                  "topology (one); auto = one from 512 GPUs where the DP groups of different GPUs share no link")
      ->check(CLI::IsMember({"auto", "all", "one"}));
  cmd->add_option("--partial-micro-batches", args->partial,
                  "Simulate only the first N micro-batches of the training step (every output then says PARTIAL); "
                  "same as --set workload.partial_micro_batches=N")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] {
    if (args->partial > 0) args->scenario.sets.push_back("workload.partial_micro_batches=" + std::to_string(args->partial));
    const Scenario scenario = load_scenario(args->scenario.request());
    const OutputFiles out = checked_outputs({args->json, args->csv, args->trace, args->html}, scenario.outputs, "--trace");
    const std::string &json = out.json, &trace = out.trace, &html = out.html, &csv = out.csv;
    RunOptions options;
    options.numerics = args->numerics;
    options.tp_collectives = args->tp_collectives;
    options.dp_replicas = args->dp_replicas;
    RunResult result;
    {
      ProgressLine progress("tpsim run", progress_wanted());   // erased before the summary prints
      options.progress = progress.phases();
      result = run_scenario(scenario, options);
    }
    std::fputs(summary_text(result).c_str(), stdout);
    const Attribution attribution = attribute(result.timeline, {.gpus_per_node = scenario.topology.gpus_per_node});
    // Where the GPUs waited and which links were saturated meanwhile (move into summary_text if it grows them).
    const std::vector<CollectiveCalls> calls = collective_calls(result.timeline);
    const std::string collectives = collective_calls_text(calls);
    if (!collectives.empty()) std::printf("\n%s", collectives.c_str());
    const std::string stalls = stall_sites_text(attribution), links = bottleneck_links_text(attribution);
    if (!stalls.empty() || !links.empty()) std::printf("\n%s%s%s", stalls.c_str(), stalls.empty() ? "" : "\n", links.c_str());
    if (!json.empty()) {
      nlohmann::json j = to_json(result);
      j["attribution"] = to_json(attribution);
      j["collectives"] = nlohmann::json::array();
      for (const CollectiveCalls& c : calls)
        j["collectives"].push_back({{"operation", to_string(c.op)}, {"tp_mapping", c.mapping}, {"pass", to_string(c.pass)},
                                    {"bytes", c.bytes}, {"instance", c.instance}, {"calls", c.calls},
                                    {"fastest_s", c.fastest}, {"mean_s", c.mean}});
      write_file_atomically("--json", json, j.dump(2) + "\n");
    }
    if (!trace.empty()) write_trace(trace, result.timeline, {.gpus_per_node = scenario.topology.gpus_per_node});
    if (!html.empty()) write_html(html, result, attribution, {.memory = memory_bars(result)});
    if (!csv.empty()) write_csv(csv, result.timeline, attribution);
    if (result.numerics && !result.numerics->ok) throw Exit{kVerificationFailed};
  });
}

}  // namespace tpsim::cli
