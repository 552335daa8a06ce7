// `tpsim plan [SCENARIO]`: sweep the layouts of a model on a cluster, rank them, say why the best wins.
// The scenario (or -m/-t) gives the model and the topology; its plan and workload are not used: the
// sweep makes its own from the target flags below.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output_paths.hpp"
#include "serve/capacity.hpp"
#include "spec/limits.hpp"
#include "tpsim/plan_html.hpp"
#include "tpsim/planner.hpp"
#include "tpsim/run.hpp"

namespace tpsim::cli {

namespace {

struct PlanArgs {
  ScenarioOptions scenario;
  std::string nodes, workload = "training", rank_by = "throughput";
  int64_t global_batch = 1024, seq = 0, batch = 1, prompt = 512, generate = 128;
  std::string tokens, deadline, latency_bound;
  std::vector<int64_t> micro_batches = {1, 2, 4};
  std::vector<int> virtual_stages = {1, 2};
  std::string distributed_optimizer = "off";
  std::vector<int> cp = {1};
  std::vector<int> ep;   // empty: every power of two dividing a MoE model's experts
  std::string csv, json, shard, html;
  int jobs = 0, top = 15;
  // Serving (--workload serving): the stream, the SLO and the engine settings to try.
  ServingStreamOptions stream;
  std::vector<std::string> schedulers = {"vllm", "sarathi"};
  std::vector<int64_t> max_batches = {64, 256}, token_budgets = {512, 2048};
};

// The serving capacity search: the scenario's model and topology, the stream and SLO from the
// flags (each a --set serving.KEY, checked by the loader), TP x scheduler x max batch x token
// budget swept, the fewest replicas for each found by bisection.
void plan_serving(const PlanArgs& a) {
  ScenarioOptions scenario = a.scenario;
  for (const char* key : {"plan.tp=1", "plan.pp=1", "plan.dp=1", "plan.cp=1", "plan.sp=false", "workload.kind=serving"})
    scenario.sets.push_back(key);
  a.stream.append_sets(scenario.sets);
  const ScenarioRequest request = scenario.request();
  const Scenario base = load_scenario(request);
  serving::CapacitySpec spec;
  for (const std::string& s : a.schedulers)
    if (s != "static" && s != "orca" && s != "vllm" && s != "sarathi")
      throw InputError("", 0, 0, "--schedulers", "expected static, orca, vllm or sarathi, got '" + s + "'");
  for (int64_t v : a.max_batches)
    if (v < 1 || v > (1 << 20)) throw InputError("", 0, 0, "--max-batches", fmt::format("expected 1 to {}, got {}", 1 << 20, v));
  for (int64_t v : a.token_budgets)
    if (v < 1 || v > (1 << 24)) throw InputError("", 0, 0, "--token-budgets", fmt::format("expected 1 to {}, got {}", 1 << 24, v));
  spec.schedulers = a.schedulers;
  spec.max_batches = a.max_batches;
  spec.token_budgets = a.token_budgets;
  const std::vector<serving::CapacityRow> rows = serving::capacity_search(base, spec);
  std::fputs(serving::capacity_table(base, rows, a.top).c_str(), stdout);
}

// "2T", "300B", "1.5e12", "500M": a count of tokens.
double parse_count(const std::string& text, const char* flag) {
  const LeadingNumber n = leading_number(text);
  const double v = n.value;
  const std::string& suffix = n.rest;
  const double scale = suffix.empty() ? 1
                       : suffix == "K" || suffix == "k" ? 1e3
                       : suffix == "M" ? 1e6
                       : suffix == "B" || suffix == "G" ? 1e9
                       : suffix == "T" ? 1e12
                                       : -1;
  if (!n.ok || scale < 0 || !(v >= 0) || !std::isfinite(v))
    throw InputError("", 0, 0, flag, "expected a count like 2T, 300B or 1.5e12, got '" + text + "'");
  return v * scale;
}

// "30d", "12h", "90min", "2s", "150ms", "800us": a duration in seconds.
double parse_duration(const std::string& text, const char* flag) {
  const LeadingNumber n = leading_number(text);
  const double v = n.value;
  std::string unit = n.rest;
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  const double scale = unit == "d" ? 86400
                       : unit == "h" ? 3600
                       : unit == "min" ? 60
                       : unit == "s" || unit.empty() ? 1
                       : unit == "ms" ? 1e-3
                       : unit == "us" ? 1e-6
                                      : -1;
  if (!n.ok || scale < 0 || !(v > 0) || !std::isfinite(v))
    throw InputError("", 0, 0, flag, "expected a duration like 30d, 12h, 2s or 150ms, got '" + text + "'");
  return v * scale;
}

// "8", "2,4,8", or "4-32" (the powers of two inside, and both ends).
std::vector<int> parse_nodes(const std::string& text) {
  auto bad = [&] {
    return InputError("", 0, 0, "--nodes", "expected a node count (8), a list (2,4,8) or a range (4-32), got '" + text + "'");
  };
  auto one = [&](const std::string& part) {
    std::size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(part, &used);
    } catch (const std::logic_error&) {
      throw bad();
    }
    if (used != part.size() || v < 1) throw bad();
    return v;
  };
  std::vector<int> out;
  const auto dash = text.find('-');
  if (dash != std::string::npos) {
    const int lo = one(text.substr(0, dash)), hi = one(text.substr(dash + 1));
    if (hi < lo) throw bad();
    out.push_back(lo);
    for (int64_t p = 1; p < hi; p *= 2)   // int64: doubling past a large int's half would overflow
      if (p > lo) out.push_back(static_cast<int>(p));
    if (hi != lo) out.push_back(hi);
    return out;
  }
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(one(text.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

SweepSpec sweep_spec(const PlanArgs& a) {
  // The sweep sets every layout's plan itself; the base scenario's own plan only has to load. Under
  // sequence parallelism it does for any model (a mixture of experts with tp > 1 needs it).
  ScenarioRequest request = a.scenario.request();
  request.overrides.push_back({"plan.sp", "true"});
  const Scenario base = load_scenario(request);
  SweepSpec spec;
  spec.model = base.model;
  spec.topology = base.topology;
  if (!a.nodes.empty()) spec.node_counts = parse_nodes(a.nodes);
  // Every node count is a topology of its own: each must fit what a topology may hold.
  for (int n : spec.node_counts) {
    const int64_t gpus = int64_t(n) * spec.topology.gpus_per_node;
    if (const std::string why = spec_detail::limits::too_many_gpus(gpus); !why.empty())
      throw InputError("", 0, 0, "--nodes",
                       fmt::format("{} nodes x {} GPUs per node = {} GPUs, {}", n, spec.topology.gpus_per_node, gpus, why));
  }
  try {
    spec.objective = parse_objective(a.rank_by);
  } catch (const std::invalid_argument& e) {
    throw InputError("", 0, 0, "--rank-by", e.what());
  }
  spec.micro_batches = a.micro_batches;
  for (int v : a.virtual_stages)
    if (v < 1 || v > 64) throw InputError("", 0, 0, "--virtual-stages", "virtual stages per GPU must be 1 to 64");
  spec.virtual_stages = a.virtual_stages;
  spec.distributed_optimizers = a.distributed_optimizer == "both" ? std::vector<bool>{false, true}
                                : a.distributed_optimizer == "on" ? std::vector<bool>{true}
                                                                  : std::vector<bool>{false};
  for (int64_t mb : spec.micro_batches)
    if (mb < 1) throw InputError("", 0, 0, "--micro-batches", "micro-batch sizes must be at least 1");
  for (int cp : a.cp)
    if (cp < 1 || cp > 1024) throw InputError("", 0, 0, "--cp", "context-parallel sizes must be 1 to 1024");
  spec.context_parallel = a.cp;
  for (int ep : a.ep)
    if (ep < 1 || ep > 65536) throw InputError("", 0, 0, "--ep", "expert-parallel sizes must be 1 to 65536");
  if (!a.ep.empty() && !base.model.moe.enabled() && a.ep != std::vector<int>{1})
    throw InputError("", 0, 0, "--ep", fmt::format("model '{}' is dense: expert parallelism needs a mixture of experts",
                                                   base.model.name));
  spec.expert_parallel = a.ep.empty() && !base.model.moe.enabled() ? std::vector<int>{1} : a.ep;
  if (a.workload == "inference") {
    spec.kind = WorkloadKind::inference;
    if (a.batch < 1 || a.prompt < 1 || a.generate < 1)
      throw InputError("", 0, 0, "--batch", "inference needs --batch, --prompt and --generate of at least 1");
    spec.inference.batch = a.batch;
    spec.inference.prompt = a.prompt;
    spec.inference.generate = a.generate;
    if (!a.latency_bound.empty()) spec.inference.latency_bound_s = parse_duration(a.latency_bound, "--latency-bound");
    if (spec.objective == Objective::time_to_train)
      throw InputError("", 0, 0, "--rank-by", "time (to train) ranks training sweeps; use throughput, cost or latency");
    return spec;
  }
  spec.kind = WorkloadKind::training;
  if (a.global_batch < 1) throw InputError("", 0, 0, "--global-batch", "must be at least 1");
  if (a.seq < 0) throw InputError("", 0, 0, "--seq", "must be positive (0 = the model's max_seq)");
  spec.training.global_batch = a.global_batch;
  spec.training.seq = a.seq;
  if (!a.tokens.empty()) spec.training.tokens = parse_count(a.tokens, "--tokens");
  if (!a.deadline.empty()) {
    spec.training.deadline_s = parse_duration(a.deadline, "--deadline");
    if (spec.training.tokens <= 0)
      throw InputError("", 0, 0, "--deadline", "a deadline needs --tokens (how much to train by then)");
  }
  return spec;
}

// The sweep's page; the best layout's step is simulated once more, whole, for its timeline.
void write_page(const SweepSpec& spec, const SweepOptions& options, const SweepOutcome& outcome, const PlanArgs& a) {
  PlanPage page;
  page.context = sweep_context(spec);
  page.objective = spec.objective;
  page.ranked = outcome.ranked;
  page.megatron_tp = spec.kind == WorkloadKind::training ? megatron_tp(spec.topology) : 0;
  page.csv = options.csv;
  page.top = a.top;
  if (options.shard.parts > 1)
    page.part = fmt::format("Shard {}/{}: this page shows only this shard's {} of the sweep's {} layouts (those whose "
                            "index % {} is {}), so its best layout, Megatron's choice and the Pareto front are this "
                            "shard's. Combine every part with `tpsim merge PART.csv... --html OUT` for the whole sweep's "
                            "page.",
                            options.shard.index, options.shard.parts, outcome.total, sweep_tag(spec, options.shard).layouts,
                            options.shard.parts, options.shard.index);
  const bool any_ran = !outcome.ranked.empty() && outcome.ranked.front().verdict == Verdict::ok;
  if (any_ran) {
    spdlog::info("simulating the best layout's step again for the page's timeline");
    try {
      page.best_run = run_layout(spec, outcome.ranked.front().layout);
    } catch (const std::exception& e) {
      page.best_run_note = std::string("simulating the best layout again failed: ") + e.what();
    }
  }
  write_plan_html(a.html, page);
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Sweep TP x PP x DP x micro-batch x SP x recompute layouts, rank them");
  add_scenario_options(*cmd, a->scenario);
  cmd->add_option("--nodes", a->nodes, "Node counts: 8, 2,4,8 or 4-32 (default: the topology's)");
  cmd->add_option("--workload", a->workload, "training | inference | serving (capacity search over a request stream)")
      ->check(CLI::IsMember({"training", "inference", "serving"}));
  add_serving_stream_options(*cmd, a->stream);
  cmd->add_option("--schedulers", a->schedulers, "Serving: schedulers to try")->delimiter(',')->capture_default_str();
  cmd->add_option("--max-batches", a->max_batches, "Serving: max sequences per iteration to try")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--token-budgets", a->token_budgets, "Serving: Sarathi token budgets to try")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--global-batch", a->global_batch, "Training: sequences per optimizer step")->capture_default_str();
  cmd->add_option("--seq", a->seq, "Training: tokens per sequence (default: the model's max_seq)");
  cmd->add_option("--tokens", a->tokens, "Training: tokens to train, e.g. 2T (gives time to train and cost)");
  cmd->add_option("--deadline", a->deadline, "Training: reject layouts that train --tokens slower than this, e.g. 30d");
  cmd->add_option("--micro-batches", a->micro_batches, "Training: micro-batch sizes to try")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--virtual-stages", a->virtual_stages, "Training: virtual pipeline stages per GPU to try (interleaved 1F1B)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--distributed-optimizer", a->distributed_optimizer,
                  "Training: Adam states sharded over dp (Megatron's distributed optimizer): off | on | both")
      ->check(CLI::IsMember({"off", "on", "both"}))->capture_default_str();
  cmd->add_option("--cp", a->cp, "Training: context-parallel sizes to try (ring attention), e.g. 1,2,4")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--ep", a->ep,
                  "Expert-parallel sizes to try for a mixture-of-experts model (default: every power of two "
                  "dividing its experts)")
      ->delimiter(',');
  cmd->add_option("--batch", a->batch, "Inference: largest batch (tries 1, 2, 4, ... up to it)")->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "Inference: prompt tokens")->capture_default_str();
  cmd->add_option("--generate", a->generate, "Inference: output tokens")->capture_default_str();
  cmd->add_option("--latency-bound", a->latency_bound, "Inference: reject layouts whose request takes longer, e.g. 2s");
  cmd->add_option("--rank-by", a->rank_by, "throughput | time | cost | latency")->capture_default_str();
  cmd->add_option("--csv", a->csv, "Result file: every layout, appended as it finishes; a re-run resumes from it");
  cmd->add_option("--json", a->json, "Also write the ranked result as JSON");
  cmd->add_option("--html", a->html,
                  "Also write a self-contained HTML page: the metric per layout, time vs cost with the Pareto front, "
                  "the rejections and the best layout's step timeline");
  cmd->add_option("-j,--jobs", a->jobs, "Worker processes (default: all cores)");
  cmd->add_option("--shard", a->shard, "Run only part i of N (0-based, e.g. 3/16); combine parts with `tpsim merge`");
  cmd->add_option("--top", a->top, "Rows of the ranked table")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([a] {
    if (a->workload == "serving") {
      if (!a->html.empty())
        throw InputError("", 0, 0, "--html",
                         "the serving capacity search has no page; `tpsim serve --html` is the page for one serving run");
      return plan_serving(*a);
    }
    const SweepSpec spec = sweep_spec(*a);
    SweepOptions options;
    options.jobs = a->jobs;
    options.csv = a->csv;
    options.json = a->json;
    check_output_file("--csv", a->csv);   // before the sweep: its results are not lost at the end
    check_output_file("--json", a->json);
    check_output_file("--html", a->html);
    if (!a->shard.empty()) {
      try {
        options.shard = parse_shard(a->shard);
      } catch (const std::invalid_argument& e) {
        throw InputError("", 0, 0, "--shard", e.what());
      }
    }
    // Said once here, not by each layout's run (one process each).
    int most_nodes = spec.topology.nodes;
    for (int n : spec.node_counts) most_nodes = std::max(most_nodes, n);
    if (!dp_links_private(spec.topology) && int64_t(most_nodes) * spec.topology.gpus_per_node >= 512)
      spdlog::warn("the DP groups of different GPUs share links on '{}' (shared NICs, socket or PCIe uplinks, an "
                   "oversubscribed or minimal-routing network): layouts from 512 GPUs simulate every DP replica, "
                   "not one, so their contention counts (slower sweeps)",
                   spec.topology.name);
    // -q (errors only) silences the progress lines too, for logs that must not depend on time.
    if (spdlog::get_level() < spdlog::level::err) options.progress = progress_printer(::isatty(STDERR_FILENO) != 0);
    const SweepOutcome outcome = run_sweep(spec, options, evaluate_layout);
    std::printf("%s on %s: %s sweep", spec.model.name.c_str(), spec.topology.name.c_str(),
                spec.kind == WorkloadKind::training ? "training" : "inference");
    if (options.shard.parts > 1) std::printf(", shard %d/%d", options.shard.index, options.shard.parts);
    std::printf(" (%d layouts, %d from an earlier run)\n\n", outcome.total, outcome.resumed);
    std::fputs(plan_table(outcome.ranked, spec.objective, megatron_tp(spec.topology), a->top).c_str(), stdout);
    std::fputs(rejection_hints(spec, outcome.ranked).c_str(), stdout);
    if (options.shard.parts > 1)
      std::printf("\nthis is one shard: combine all parts with `tpsim merge PART.csv... --csv OUT`\n");
    if (!a->html.empty()) write_page(spec, options, outcome, *a);
  });
}

}  // namespace tpsim::cli
