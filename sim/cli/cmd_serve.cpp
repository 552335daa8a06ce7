// `tpsim serve [SCENARIO]`: a request stream through model replicas under an inference engine's
// scheduler; prints TTFT, TPOT and end-to-end latency percentiles, throughput and goodput. Every
// flag is a `--set serving.KEY=VALUE` said shortly, so a scenario file and the flags take the
// same path through the loader and its checks.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output_paths.hpp"
#include "report/atomic_file.hpp"
#include "serve/replica_model.hpp"
#include "serve/serve_html.hpp"
#include "serve/serve_report.hpp"
#include "tpsim/serving.hpp"

namespace tpsim::cli {

namespace {
struct ServeArgs {
  ScenarioOptions scenario;
  ServingStreamOptions stream;
  std::string replicas, prefill_replicas, scheduler, max_batch, token_budget, router, preemption;
  std::string json, csv, perfetto, html;
};
}  // namespace

void register_serve(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "Serve a request stream (trace or synthetic) on model replicas: TTFT, TPOT, latency percentiles, goodput");
  add_scenario_options(*cmd, args->scenario);
  add_serving_stream_options(*cmd, args->stream);
  cmd->add_option("--replicas", args->replicas, "Model replicas of plan.tp x plan.pp GPUs each (serving.replicas)");
  cmd->add_option("--prefill-replicas", args->prefill_replicas,
                  "Prefill/decode disaggregation: this many replicas only prefill and send the KV cache to the "
                  "--replicas, which only decode (serving.prefill_replicas)");
  cmd->add_option("--scheduler", args->scheduler, "static | orca | vllm | sarathi (serving.scheduler)");
  cmd->add_option("--max-batch", args->max_batch, "Sequences per iteration at most (serving.max_batch)");
  cmd->add_option("--token-budget", args->token_budget, "Tokens per iteration at most (serving.token_budget)");
  cmd->add_option("--preemption", args->preemption, "recompute | swap (serving.preemption)");
  cmd->add_option("--router", args->router, "round_robin | least_tokens (serving.router)");
  cmd->add_option("--json", args->json, "Also write the summary as JSON to this file");
  cmd->add_option("--csv", args->csv, "Also write requests.csv and iterations.csv into this folder");
  cmd->add_option("--perfetto", args->perfetto, "Also write a Perfetto trace (one track per replica) to this file");
  cmd->add_option("--html", args->html,
                  "Also write a self-contained HTML report (request timeline, KV occupancy, latency CDFs) to this file");
  cmd->callback([args] {
    std::vector<std::string>& sets = args->scenario.sets;
    sets.insert(sets.begin(), "workload.kind=serving");
    args->stream.append_sets(sets);
    const std::pair<const char*, const std::string*> flags[] = {
        {"replicas", &args->replicas},         {"prefill_replicas", &args->prefill_replicas},
        {"scheduler", &args->scheduler},       {"max_batch", &args->max_batch},
        {"token_budget", &args->token_budget}, {"preemption", &args->preemption},
        {"router", &args->router}};
    for (const auto& [key, value] : flags)
      if (!value->empty()) sets.push_back(std::string("serving.") + key + "=" + *value);
    const Scenario scenario = load_scenario(args->scenario.request());
    const ServingSpec& spec = *scenario.serving;
    // The scenario's outputs.trace is the Perfetto trace here: --trace reads a request trace.
    const OutputFiles out =
        checked_outputs({args->json, args->csv, args->perfetto, args->html}, scenario.outputs, "--perfetto");
    const std::string &json = out.json, &csv = out.csv, &perfetto = out.trace, &html = out.html;

    const std::vector<Request> requests = make_requests(spec);
    serving::check_context(scenario, requests);
    const ReplicaCapacity capacity = serving::replica_capacity(scenario, spec);
    serving::SimulatedTimer timer(scenario);
    const int replicas = int(spec.replicas + spec.prefill_replicas);
    serving::KvTransferTimer transfer(scenario, replicas, capacity.kv_bytes_per_token);
    ServeOptions options;
    if (spec.prefill_replicas > 0)
      options.kv_transfer = [&transfer](int from, int to, int64_t tokens) { return transfer(from, to, tokens); };
    const ServeResult result = serve(spec, requests, capacity, timer, options);
    const ServeSummary summary = summarize(result, spec.slo, replicas * scenario.plan.tp * scenario.plan.pp);
    const std::string timing = timer.describe() + (spec.prefill_replicas > 0 ? "; " + transfer.describe() : "");
    std::fputs(serve_text(scenario, spec, result, summary, timing).c_str(), stdout);
    if (!json.empty()) write_file_atomically("--json", json, serve_json(scenario, spec, result, summary, timing).dump(2) + "\n");
    if (!csv.empty()) write_serve_csv(csv, result);
    if (!perfetto.empty()) write_serve_trace(perfetto, result);
    if (!html.empty()) write_file_atomically("--html", html, serve_html(scenario, spec, result, summary, timing));
  });
}

}  // namespace tpsim::cli
