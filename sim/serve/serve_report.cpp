// What `tpsim serve` prints and writes: the terminal summary (what was simulated, how, and the
// latency percentiles, throughput and goodput), JSON, CSV (per request, per iteration) and a
// Perfetto trace with one track per replica.
#include "serve/serve_report.hpp"

#include <fmt/format.h>

#include <filesystem>

#include "report/atomic_file.hpp"
#include "tpsim/report.hpp"

namespace tpsim {
namespace {

std::string lengths_text(const LengthDistribution& d) {
  const std::string clip = d.max > 0 ? fmt::format(", clipped to [{}, {}]", d.min, d.max) : "";
  if (d.kind == "fixed") return fmt::format("{:g}", std::round(d.mean));
  if (d.kind == "uniform") return fmt::format("uniform [{}, {}]", d.min, d.max);
  if (d.kind == "lognormal") return fmt::format("lognormal mean {:g} sigma {:g}{}", d.mean, d.sigma, clip);
  return fmt::format("drawn from {}{}", d.file, clip);
}

std::string stream_text(const ServingSpec& spec, const ServeSummary& s) {
  if (spec.arrivals == "trace")
    return fmt::format("{} requests from trace {}{}", s.requests, spec.trace,
                       spec.requests > 0 ? fmt::format(" (its first {})", spec.requests) : "");
  const std::string arrivals = spec.arrivals == "poisson" ? "Poisson" : fmt::format("gamma (cv {:g})", spec.cv);
  const std::string span = spec.requests > 0 ? fmt::format("{} requests", spec.requests)
                                             : fmt::format("{:g} s", spec.duration);
  return fmt::format("{} requests, {} arrivals at {:g}/s for {} (seed {}); prompt {} tokens, output {} tokens",
                     s.requests, arrivals, spec.rate, span, spec.seed, lengths_text(spec.prompt), lengths_text(spec.output));
}

std::string engine_text(const ServingSpec& spec, int64_t budget) {
  const std::string preempt = fmt::format("preemption by {}", spec.preemption);
  if (spec.scheduler == "static")
    return fmt::format("static batching: up to {} requests per batch, a new batch when the last has ended "
                       "(finished requests padded), KV reserved for prompt + output", spec.max_batch);
  if (spec.scheduler == "orca")
    return fmt::format("iteration-level batching (Orca): up to {} sequences, whole prompts prefilled beside the "
                       "decodes{}, KV reserved for prompt + output",
                       spec.max_batch, budget > 0 ? fmt::format(" up to {} tokens", budget) : "");
  if (spec.scheduler == "vllm")
    return fmt::format("paged KV (vLLM), {}-token blocks: prefills first (up to {} tokens, no decodes beside them), "
                       "up to {} sequences, {}",
                       spec.block_size, budget, spec.max_batch, preempt);
  return fmt::format("chunked prefill (Sarathi), {}-token budget per iteration: decodes first, then prefill chunks; "
                     "paged KV, {}-token blocks, up to {} sequences, {}",
                     budget, spec.block_size, spec.max_batch, preempt);
}

std::string ms(double s) { return fmt::format("{:.1f}", s * 1e3); }

}  // namespace

std::vector<std::pair<std::string, std::string>> serve_facts(const Scenario& sc, const ServingSpec& spec,
                                                             const ServeResult& r, const ServeSummary& s,
                                                             const std::string& timing) {
  const int per_replica = sc.plan.tp * sc.plan.pp;
  const int64_t replicas = spec.replicas + spec.prefill_replicas;
  const std::string placement =
      spec.prefill_replicas > 0
          ? fmt::format("{} prefill + {} decode (disaggregated) x (tp {} x pp {}) = {} of {} GPUs, router {}",
                        spec.prefill_replicas, spec.replicas, sc.plan.tp, sc.plan.pp, replicas * per_replica,
                        sc.topology.total_gpus(), spec.router)
          : fmt::format("{} x (tp {} x pp {}) = {} of {} GPUs, router {}", spec.replicas, sc.plan.tp, sc.plan.pp,
                        replicas * per_replica, sc.topology.total_gpus(), spec.router);
  return {
      {"scenario", sc.name},
      {"cluster", fmt::format("{} ({} node{} x {} {}, {} GPUs)", sc.topology.name, sc.topology.nodes,
                              sc.topology.nodes == 1 ? "" : "s", sc.topology.gpus_per_node, sc.topology.gpu.name,
                              sc.topology.total_gpus())},
      {"model", fmt::format("{} (hidden {}, {} layers, {} heads)", sc.model.name, sc.model.hidden, sc.model.layers,
                            sc.model.heads)},
      {"replicas", placement},
      {"requests", stream_text(spec, s)},
      {"engine", engine_text(spec, r.token_budget) +
                     (spec.prefill_replicas > 0 ? "; disaggregated: prefill replicas only prefill (whole prompts up to "
                                                  "the budget) and send each KV cache on, decode replicas only decode"
                                                : "")},
      {"KV cache", fmt::format("{} tokens per replica: {}", r.capacity.kv_tokens, r.capacity.basis)},
      {"timing", timing},
      {"simulated", fmt::format("every request from arrival to its last token: {} iterations over {:.1f} s{}", s.iterations,
                                s.makespan,
                                sc.plan.pp > 1 ? "; pipeline stages run one iteration at a time (no micro-batches in flight)"
                                               : "")}};
}

std::string serve_text(const Scenario& sc, const ServingSpec& spec, const ServeResult& r, const ServeSummary& s,
                       const std::string& timing) {
  std::string out;
  for (const auto& [label, text] : serve_facts(sc, spec, r, s, timing)) out += fmt::format("{:<11}{}\n", label, text);
  out += "\n";
  out += fmt::format("{:<34}{:>10}{:>10}{:>10}{:>10}\n", "latency", "p50", "p90", "p99", "mean");
  auto row = [&](const char* name, const Percentiles& p, bool in_ms) {
    auto f = [&](double v) { return in_ms ? ms(v) : fmt::format("{:.3f}", v); };
    out += fmt::format("  {:<32}{:>10}{:>10}{:>10}{:>10}\n", name, f(p.p50), f(p.p90), f(p.p99), f(p.mean));
  };
  row("time to first token (s)", s.ttft, false);
  row("time per output token (ms)", s.tpot, true);
  row("end-to-end latency (s)", s.latency, false);
  row("queueing delay (s)", s.queueing, false);
  if (spec.prefill_replicas > 0) row("KV cache transfer (ms)", s.kv_transfer, true);
  out += "\n";
  out += fmt::format("throughput   {:.2f} requests/s, {:.0f} output tokens/s ({:.1f} per GPU), {:.0f} prompt tokens/s, "
                     "over the {:.1f} s from the stream's start to the last token\n",
                     s.requests_per_s, s.output_tokens_per_s, s.output_tokens_per_s_per_gpu, s.input_tokens_per_s, s.makespan);
  out += fmt::format("goodput      {:.2f} requests/s with TTFT <= {} and TPOT <= {} ({:.1f}% of requests)\n", s.goodput,
                     format_seconds(spec.slo.ttft), format_seconds(spec.slo.tpot), 100 * s.good_fraction);
  out += fmt::format("SLO          {}: TTFT p{:g} {} {} {}, TPOT p{:g} {} {} {}\n", s.slo_met ? "met" : "MISSED",
                     spec.slo.ttft_percentile, format_seconds(s.slo_ttft), s.slo_ttft <= spec.slo.ttft ? "<=" : ">",
                     format_seconds(spec.slo.ttft), spec.slo.tpot_percentile, format_seconds(s.slo_tpot),
                     s.slo_tpot <= spec.slo.tpot ? "<=" : ">", format_seconds(spec.slo.tpot));
  out += fmt::format("KV cache     peak {:.1f}%, mean {:.1f}% of capacity; {} preemption{}\n", 100 * s.kv_peak,
                     100 * s.kv_mean, s.preemptions, s.preemptions == 1 ? "" : "s");
  out += fmt::format("in system    {:.1f} requests on average (Little's law: {:.2f} requests/s x {:.3f} s mean latency)\n",
                     s.mean_in_system, s.requests_per_s, s.latency.mean);
  return out;
}

nlohmann::json serve_json(const Scenario& sc, const ServingSpec& spec, const ServeResult& r, const ServeSummary& s,
                          const std::string& timing) {
  auto pct = [](const Percentiles& p) { return nlohmann::json{{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"mean", p.mean}}; };
  nlohmann::json j;
  j["scenario"] = sc.name;
  j["topology"] = sc.topology.name;
  j["model"] = sc.model.name;
  j["replicas"] = {{"count", spec.replicas}, {"prefill", spec.prefill_replicas}, {"tp", sc.plan.tp}, {"pp", sc.plan.pp},
                   {"router", spec.router}, {"gpus", (spec.replicas + spec.prefill_replicas) * sc.plan.tp * sc.plan.pp}};
  j["engine"] = {{"scheduler", spec.scheduler}, {"max_batch", spec.max_batch}, {"token_budget", r.token_budget},
                 {"block_size", spec.block_size}, {"preemption", spec.preemption},
                 {"kv_tokens_per_replica", r.capacity.kv_tokens}, {"kv_basis", r.capacity.basis}};
  j["timing"] = timing;
  j["requests"] = s.requests;
  j["iterations"] = s.iterations;
  j["makespan_s"] = s.makespan;
  j["ttft_s"] = pct(s.ttft);
  j["tpot_s"] = pct(s.tpot);
  j["latency_s"] = pct(s.latency);
  j["queueing_s"] = pct(s.queueing);
  if (spec.prefill_replicas > 0) j["kv_transfer_s"] = pct(s.kv_transfer);
  j["throughput"] = {{"requests_per_s", s.requests_per_s}, {"output_tokens_per_s", s.output_tokens_per_s},
                     {"output_tokens_per_s_per_gpu", s.output_tokens_per_s_per_gpu},
                     {"prompt_tokens_per_s", s.input_tokens_per_s}};
  j["slo"] = {{"ttft_s", spec.slo.ttft}, {"tpot_s", spec.slo.tpot}, {"ttft_percentile", spec.slo.ttft_percentile},
              {"tpot_percentile", spec.slo.tpot_percentile}, {"ttft_at_percentile_s", s.slo_ttft},
              {"tpot_at_percentile_s", s.slo_tpot}, {"met", s.slo_met}};
  j["goodput_requests_per_s"] = s.goodput;
  j["good_fraction"] = s.good_fraction;
  j["kv_cache"] = {{"peak_fraction", s.kv_peak}, {"mean_fraction", s.kv_mean}, {"preemptions", s.preemptions}};
  j["mean_requests_in_system"] = s.mean_in_system;
  return j;
}

void write_serve_csv(const std::string& folder, const ServeResult& r) {
  std::filesystem::create_directories(folder);
  std::string q = "id,replica,arrived_at,prompt_tokens,output_tokens,first_scheduled,first_token,finished,ttft_s,tpot_s,"
                  "latency_s,preemptions,decode_replica,kv_transfer_s\n";
  for (const RequestOutcome& o : r.requests)
    q += fmt::format("{},{},{:.9g},{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{},{},{:.9g}\n", o.id, o.replica, o.arrival,
                     o.prompt, o.output, o.first_scheduled, o.first_token, o.finished, o.ttft(), o.tpot(), o.latency(),
                     o.preemptions, o.decode_replica, o.kv_transfer);
  write_file_atomically("--csv", folder + "/requests.csv", q);
  std::string it = "replica,start,end,prefill_tokens,decodes,running,kv_tokens_used,preempted\n";
  for (const IterationRecord& i : r.iterations)
    it += fmt::format("{},{:.9g},{:.9g},{},{},{},{},{}\n", i.replica, i.start, i.end, i.prefill_tokens, i.decodes, i.running,
                      i.kv_tokens_used, i.preempted);
  write_file_atomically("--csv", folder + "/iterations.csv", it);
}

// Chrome/Perfetto trace events: one process per replica, its iterations as slices, and its KV
// occupancy and running sequences as counters.
void write_serve_trace(const std::string& path, const ServeResult& r) {
  nlohmann::json events = nlohmann::json::array();
  int replicas = 0;
  for (const IterationRecord& i : r.iterations) replicas = std::max(replicas, i.replica + 1);
  for (int p = 0; p < replicas; ++p)
    events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", p}, {"args", {{"name", fmt::format("replica {}", p)}}}});
  for (const IterationRecord& i : r.iterations) {
    const std::string name = i.prefill_tokens > 0 && i.decodes > 0 ? fmt::format("prefill {} + decode {}", i.prefill_tokens, i.decodes)
                             : i.prefill_tokens > 0                ? fmt::format("prefill {}", i.prefill_tokens)
                                                                   : fmt::format("decode {}", i.decodes);
    events.push_back({{"ph", "X"}, {"name", name}, {"pid", i.replica}, {"tid", 0}, {"ts", i.start * 1e6},
                      {"dur", (i.end - i.start) * 1e6},
                      {"args", {{"prefill_tokens", i.prefill_tokens}, {"decodes", i.decodes}, {"preempted", i.preempted}}}});
    events.push_back({{"ph", "C"}, {"name", "KV cache tokens"}, {"pid", i.replica}, {"ts", i.start * 1e6},
                      {"args", {{"used", i.kv_tokens_used}}}});
    events.push_back({{"ph", "C"}, {"name", "running sequences"}, {"pid", i.replica}, {"ts", i.start * 1e6},
                      {"args", {{"running", i.running}}}});
  }
  write_file_atomically("--trace", path, nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() + "\n");
}

}  // namespace tpsim
