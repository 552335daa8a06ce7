// The `serving` section of a scenario: the request stream, the engine's scheduler and its limits,
// the replicas and the latency objective. Every value is checked here, at its key, before any
// request is made: a plan's replicas must fit the topology, a budget must hold a batch.
#include <cmath>
#include <cstdlib>

#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {
namespace {

// More requests than this in one run would take more memory than a run should (~200 B each plus
// their outcomes); the bench serves 100,000.
constexpr int64_t kMaxRequests = int64_t(1) << 22;

// A bare number of seconds is a time here (`--duration 600`), as serving tools write it.
bool bare_number(const Map& m, const std::string& key) {
  if (!m.has(key) || !m.yaml()[key].IsScalar()) return false;
  const std::string text = m.yaml()[key].Scalar();
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return !text.empty() && end && *end == '\0';
}

double bounded(const Map& m, const std::string& key, const std::string& kind, std::optional<double> fallback, double lo,
               double hi, const char* what) {
  const double v = m.quantity(key, kind == "time" && bare_number(m, key) ? "number" : kind, fallback);
  if (!(std::isfinite(v) && v >= lo && v <= hi))
    m.fail(key, fmt::format("expected {} from {:g} to {:g}, got {:g}", what, lo, hi, v));
  return v;
}

LengthDistribution read_lengths(const Map& m, LengthDistribution d) {
  m.only({"distribution", "mean", "sigma", "min", "max", "file"});
  // Another distribution than the default's starts blank: no default's clip or sigma carried over.
  const std::string kind = m.choice("distribution", {"fixed", "uniform", "lognormal", "empirical"}, d.kind);
  if (kind != d.kind) d = LengthDistribution{kind, 0, 0, 1, 0, ""};
  if (m.has("mean") || kind == "fixed" || kind == "lognormal")
    d.mean = bounded(m, "mean", "number", d.mean > 0 ? std::optional<double>(d.mean) : std::nullopt, 1,
                     double(limits::kSequence), "a mean length in tokens");
  d.sigma = bounded(m, "sigma", "number", d.sigma, 0, 10, "a lognormal sigma");
  d.min = m.integer_up_to("min", limits::kSequence, "tokens", d.min);
  d.max = m.integer_up_to("max", limits::kSequence, "tokens", d.max);
  d.file = m.string("file", d.file);
  if (d.min < 1) m.fail("min", fmt::format("expected at least 1 token, got {}", d.min));
  if (d.max != 0 && d.max < d.min) m.fail("max", fmt::format("expected at least min ({}) or 0 (no upper clip), got {}", d.min, d.max));
  if (d.kind == "uniform" && d.max == 0) m.fail("max", "a uniform distribution needs max (its upper end)");
  if (d.kind == "empirical" && d.file.empty()) m.fail("file", "an empirical distribution needs file: a CSV of lengths");
  if (d.kind != "empirical" && !d.file.empty())
    m.fail("file", fmt::format("applies to distribution: empirical only (this one is {})", d.kind));
  return d;
}

}  // namespace

ServingSpec read_serving(const Source& src, const YAML::Node& node, const Scenario& s) {
  const Map m(src, node, "serving");
  m.only({"arrivals", "rate", "cv", "duration", "requests", "seed", "trace", "columns", "prompt", "output",
          "scheduler", "max_batch", "token_budget", "block_size", "preemption", "memory_utilization", "replicas",
          "prefill_replicas", "router", "slo"});
  ServingSpec out;
  out.trace = m.string("trace", "");
  out.arrivals = m.choice("arrivals", {"poisson", "gamma", "trace"}, out.trace.empty() ? "poisson" : "trace");
  if (out.arrivals == "trace" && out.trace.empty()) m.fail("arrivals", "arrivals: trace needs trace: a CSV file");
  if (out.arrivals != "trace" && !out.trace.empty())
    m.fail("trace", fmt::format("a trace replaces synthetic arrivals, but arrivals is {}", out.arrivals));
  if (out.arrivals == "trace")   // would be read by nothing: the trace brings its own times
    for (const char* key : {"rate", "cv", "duration"})
      if (m.has(key)) m.fail(key, "applies to synthetic arrivals only; the trace gives each request's arrival");
  out.rate = bounded(m, "rate", "number", out.rate, 1e-6, 1e6, "requests per second");
  out.cv = bounded(m, "cv", "number", out.cv, 0.01, 100, "a coefficient of variation");
  out.duration = bounded(m, "duration", "time", out.duration, 1e-3, 1e7, "seconds of arrivals");
  out.requests = m.integer_up_to("requests", kMaxRequests, "requests", out.requests);
  if (out.requests < 0) m.fail("requests", fmt::format("expected 0 (as many as arrive in duration) or more, got {}", out.requests));
  out.seed = m.integer_up_to("seed", int64_t(1) << 62, "(a seed)", out.seed);
  if (out.seed < 0) m.fail("seed", fmt::format("expected a non-negative integer, got {}", out.seed));
  if (m.has("columns")) {
    const Map c = m.map("columns");
    c.only({"arrived_at", "prompt_tokens", "output_tokens"});
    out.arrived_at_column = c.string("arrived_at", out.arrived_at_column);
    out.prompt_column = c.string("prompt_tokens", out.prompt_column);
    out.output_column = c.string("output_tokens", out.output_column);
  }
  if (m.has("prompt")) out.prompt = read_lengths(m.map("prompt"), out.prompt);
  if (m.has("output")) out.output = read_lengths(m.map("output"), out.output);

  out.scheduler = m.choice("scheduler", {"static", "orca", "vllm", "sarathi"}, out.scheduler);
  out.max_batch = m.integer_up_to("max_batch", int64_t(1) << 20, "sequences", out.max_batch);
  if (out.max_batch < 1) m.fail("max_batch", fmt::format("expected at least 1 sequence, got {}", out.max_batch));
  out.token_budget = m.integer_up_to("token_budget", limits::kSequence, "tokens", out.token_budget);
  if (out.token_budget < 0) m.fail("token_budget", fmt::format("expected 0 (the scheduler's default) or more, got {}", out.token_budget));
  const bool paged = out.scheduler == "vllm" || out.scheduler == "sarathi";
  // As vLLM requires (max_num_batched_tokens >= max_num_seqs): otherwise decodes could starve.
  const int64_t budget = token_budget_of(out);
  if (paged && budget < out.max_batch)
    m.fail(m.has("token_budget") ? "token_budget" : "max_batch",
           fmt::format("the {} scheduler's token budget ({}) must hold one decode token of each of max_batch ({}) sequences",
                       out.scheduler, budget, out.max_batch));
  out.block_size = m.integer_up_to("block_size", 4096, "tokens", out.block_size);
  if (out.block_size < 1) m.fail("block_size", fmt::format("expected at least 1 token, got {}", out.block_size));
  out.preemption = m.choice("preemption", {"recompute", "swap"}, out.preemption);
  out.memory_utilization = bounded(m, "memory_utilization", "number", out.memory_utilization, 0.01, 1, "a fraction of HBM");
  out.replicas = m.integer_up_to("replicas", limits::kGpus, "replicas", out.replicas);
  out.prefill_replicas = m.integer_up_to("prefill_replicas", limits::kGpus, "replicas", out.prefill_replicas);
  if (out.prefill_replicas < 0)
    m.fail("prefill_replicas", fmt::format("expected 0 (no disaggregation) or more, got {}", out.prefill_replicas));
  if (out.prefill_replicas > 0 && !paged)
    m.fail("prefill_replicas", fmt::format("prefill/decode disaggregation runs paged-KV replicas (scheduler vllm or "
                                           "sarathi), not {}", out.scheduler));
  out.router = m.choice("router", {"round_robin", "least_tokens"}, out.router);
  if (m.has("slo")) {
    const Map slo = m.map("slo");
    slo.only({"ttft", "tpot", "ttft_percentile", "tpot_percentile"});
    out.slo.ttft = bounded(slo, "ttft", "time", out.slo.ttft, 1e-6, 1e6, "seconds");
    out.slo.tpot = bounded(slo, "tpot", "time", out.slo.tpot, 1e-6, 1e6, "seconds");
    out.slo.ttft_percentile = bounded(slo, "ttft_percentile", "number", out.slo.ttft_percentile, 1, 100, "a percentile");
    out.slo.tpot_percentile = bounded(slo, "tpot_percentile", "number", out.slo.tpot_percentile, 1, 100, "a percentile");
  }

  // The replicas on the topology: each takes tp x pp GPUs of its own; replicas stand for dp.
  const PlanSpec& p = s.plan;
  if (p.dp != 1 || p.cp != 1)
    m.fail_here(fmt::format("serving runs replicas of tp x pp GPUs (serving.replicas); the plan's dp ({}) and cp ({}) "
                            "must be 1", p.dp, p.cp));
  const int64_t per_replica = int64_t(p.tp) * p.pp;
  if (per_replica > s.topology.total_gpus()) return out;   // the plan alone does not fit: check_scenario says so
  const int64_t room = s.topology.total_gpus() / per_replica - out.prefill_replicas;
  if (room < 1)
    m.fail("prefill_replicas", fmt::format("{} prefill replicas of {} GPUs (tp {} x pp {}) leave no GPU of topology '{}' "
                                           "({} GPUs) for a decode replica",
                                           out.prefill_replicas, per_replica, p.tp, p.pp, s.topology.name,
                                           s.topology.total_gpus()));
  if (out.replicas < 1 || out.replicas > room)
    m.fail(out.replicas >= 1 && out.prefill_replicas > 0 ? "prefill_replicas" : "replicas",
           fmt::format("expected 1 to {} {}replicas of {} GPUs (tp {} x pp {}) on topology '{}' of {} GPUs{}, got {}",
                       std::max<int64_t>(room, 0), out.prefill_replicas > 0 ? "decode " : "", per_replica, p.tp, p.pp,
                       s.topology.name, s.topology.total_gpus(),
                       out.prefill_replicas > 0 ? fmt::format(" beside {} prefill replicas", out.prefill_replicas) : "",
                       out.replicas));
  return out;
}

}  // namespace tpsim::spec_detail

namespace tpsim {

int64_t token_budget_of(const ServingSpec& spec) {
  if (spec.token_budget > 0) return spec.token_budget;
  if (spec.scheduler == "vllm") return 8192;    // vLLM's max_num_batched_tokens default without chunking
  if (spec.scheduler == "sarathi") return 512;  // Sarathi-Serve's and vLLM's chunked-prefill default
  return 0;
}

}  // namespace tpsim
