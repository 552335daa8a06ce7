// What a layout's step time means for the target: tokens/s, model TFLOP/s per GPU, time and GPU-hours
// to train, cost; the target's deadline and latency bound; and the ranking by an objective.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>
#include <utility>

#include "tpsim/memory.hpp"
#include "tpsim/planner.hpp"

namespace tpsim {

const char* to_string(Objective o) {
  switch (o) {
    case Objective::throughput: return "throughput";
    case Objective::time_to_train: return "time";
    case Objective::cost: return "cost";
    case Objective::latency: return "latency";
  }
  return "?";
}

Objective parse_objective(const std::string& text) {
  if (text == "throughput") return Objective::throughput;
  if (text == "time" || text == "time_to_train") return Objective::time_to_train;
  if (text == "cost") return Objective::cost;
  if (text == "latency") return Objective::latency;
  throw std::invalid_argument("rank-by expects throughput | time | cost | latency, got '" + text + "'");
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::ok: return "ok";
    case Verdict::invalid: return "invalid";
    case Verdict::oom: return "oom";
    case Verdict::deadline: return "deadline";
    case Verdict::latency: return "latency";
    case Verdict::error: return "error";
  }
  return "?";
}

namespace {

std::string format_days(double seconds) {
  return seconds >= 86400 ? fmt::format("{:.1f} days", seconds / 86400) : fmt::format("{:.1f} hours", seconds / 3600);
}

void clear_derived(LayoutResult& r) {
  r.tokens_per_s = r.tflops_per_gpu = r.time_to_train_s = r.gpu_hours = r.cost = 0;
}

// The first number of a result that is nan or inf ("" when all are finite).
const char* non_finite(const LayoutResult& r) {
  const std::pair<const char*, double> fields[] = {
      {"step time", r.step_time_s}, {"compute time", r.compute_s}, {"exposed communication", r.exposed_comm_s},
      {"bubble", r.bubble_s}, {"TP communication", r.tp_comm_s}, {"memory", r.memory_bytes},
      {"time to first token", r.ttft_s}, {"time per output token", r.tpot_s}, {"tokens/s", r.tokens_per_s},
      {"TFLOP/s", r.tflops_per_gpu}, {"time to train", r.time_to_train_s}, {"GPU-hours", r.gpu_hours},
      {"cost", r.cost}};
  for (const auto& [name, v] : fields)
    if (!std::isfinite(v)) return name;
  return "";
}

// A result file holds finite numbers only: a nan or inf (a simulator bug, or a step so short that
// tokens/s overflows) becomes an error verdict, which a resume redoes instead of ranking.
void refuse_non_finite(LayoutResult& r) {
  const char* name = non_finite(r);
  if (!*name) return;
  const Layout layout = r.layout;
  r = LayoutResult{};
  r.layout = layout;
  r.verdict = Verdict::error;
  r.reason = fmt::format("the simulation reported a non-finite {}", name);
}

void finish_metrics(const SweepSpec& spec, LayoutResult& r) {
  if (r.verdict != Verdict::ok) {
    clear_derived(r);
    return;
  }
  if (!(r.step_time_s > 0)) {
    r.verdict = Verdict::error;
    r.reason = "the simulation reported no step time";
    clear_derived(r);
    return;
  }
  const double gpus = r.layout.gpus();
  const double price = spec.topology.price_per_gpu_hour;
  if (spec.kind == WorkloadKind::inference) {
    // dp replicas each serve a batch; step_time_s is one request, prefill plus every decode step.
    const double output_tokens = static_cast<double>(r.layout.dp) * static_cast<double>(r.layout.batch) *
                                 static_cast<double>(spec.inference.generate);
    r.tokens_per_s = output_tokens / r.step_time_s;
    r.tflops_per_gpu = 0;
    r.time_to_train_s = 0;
    r.gpu_hours = r.tokens_per_s > 0 ? gpus / 3600 * 1e6 / r.tokens_per_s : 0;   // per million output tokens
    r.cost = r.gpu_hours * price;
    const double bound = spec.inference.latency_bound_s;
    if (bound > 0 && r.step_time_s > bound) {
      r.verdict = Verdict::latency;
      r.reason = fmt::format("a request takes {:.3g} s, over the {:.3g} s latency bound", r.step_time_s, bound);
    }
    return;
  }
  const int64_t seq = spec.training.seq > 0 ? spec.training.seq : spec.model.max_seq;
  const double tokens_per_step = static_cast<double>(spec.training.global_batch) * static_cast<double>(seq);
  r.tokens_per_s = tokens_per_step / r.step_time_s;
  r.tflops_per_gpu =
      model_flops_per_step(spec.model, spec.training.global_batch, seq, r.layout.recompute) / r.step_time_s / gpus / 1e12;
  const double tokens = spec.training.tokens;
  r.time_to_train_s = tokens > 0 ? tokens / r.tokens_per_s : 0;
  r.gpu_hours = (tokens > 0 ? r.time_to_train_s : r.step_time_s) * gpus / 3600;
  r.cost = r.gpu_hours * price;
  const double deadline = spec.training.deadline_s;
  if (deadline > 0 && tokens > 0 && r.time_to_train_s > deadline) {
    r.verdict = Verdict::deadline;
    r.reason = fmt::format("trains {:.3g} tokens in {}, past the {} deadline", tokens, format_days(r.time_to_train_s),
                           format_days(deadline));
  }
}

}  // namespace

// Measurements are checked before the metrics are derived from them, and the metrics after.
void finish_result(const SweepSpec& spec, LayoutResult& r) {
  refuse_non_finite(r);
  finish_metrics(spec, r);
  refuse_non_finite(r);
}

namespace {

// Smaller is better for every objective once throughput is negated.
double objective_key(const LayoutResult& r, Objective o) {
  switch (o) {
    case Objective::throughput: return -r.tokens_per_s;
    case Objective::time_to_train: return r.time_to_train_s > 0 ? r.time_to_train_s : r.step_time_s;
    case Objective::cost: return r.gpu_hours;
    case Objective::latency: return r.step_time_s;
  }
  return 0;
}

}  // namespace

void rank_results(std::vector<LayoutResult>& results, Objective objective) {
  std::sort(results.begin(), results.end(), [objective](const LayoutResult& a, const LayoutResult& b) {
    const bool a_ok = a.verdict == Verdict::ok, b_ok = b.verdict == Verdict::ok;
    if (a_ok != b_ok) return a_ok;
    if (a_ok) {
      const double ka = objective_key(a, objective), kb = objective_key(b, objective);
      if (ka != kb) return ka < kb;
    }
    return a.layout < b.layout;
  });
}

}  // namespace tpsim
