// What a sweep's results hold, and the words for it (plan_facts.hpp).
#include "plan/plan_facts.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "tpsim/report.hpp"

namespace tpsim::plan_page {

namespace {

const char* kNodePalette[] = {"#4c78a8", "#f58518", "#54a24b", "#b279a2", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6"};

}  // namespace

Facts facts_of(const PlanPage& page) {
  Facts f;
  f.inference = !page.ranked.empty() && page.ranked.front().layout.batch > 0;
  for (const LayoutResult& r : page.ranked) {
    f.has_time = f.has_time || r.time_to_train_s > 0;
    if (r.cost > 0 && r.gpu_hours > 0 && !f.has_cost) f.price = r.cost / r.gpu_hours;
    f.has_cost = f.has_cost || r.cost > 0;
    if (r.verdict == Verdict::ok) f.ran.push_back(&r);
  }
  if (!f.inference && page.megatron_tp > 0) f.megatron = megatron_choice(page.ranked, page.megatron_tp);
  for (std::size_t i = 0; f.megatron && i < f.ran.size(); ++i)
    if (f.ran[i]->layout == f.megatron->layout) f.megatron_rank = int(i) + 1;
  return f;
}

// GPU-hours and cost are counted to train the target, per step, or per million output tokens.
std::string per_what(const Facts& f) {
  return f.inference ? "per million output tokens" : f.has_time ? "to train" : "per step";
}

std::string cost_title(const Facts& f) {
  if (f.has_cost) return fmt::format("cost {} (currency units, at {:.4g} per GPU-hour)", per_what(f), f.price);
  return "GPU-hours " + per_what(f) + (f.inference ? "" : " (no price in the topology)");
}
double cost_of(const Facts& f, const LayoutResult& r) { return f.has_cost ? r.cost : r.gpu_hours; }

// The time the front trades against cost: time to train the target, else the step or request.
double time_of(const Facts& f, const LayoutResult& r) { return f.has_time ? r.time_to_train_s : r.step_time_s; }
std::string time_title(const Facts& f, const Unit& u) {
  const std::string what = f.inference ? "request latency (prefill + decode)" : f.has_time ? "time to train" : "step time";
  return fmt::format("{} ({})", what, u.name);
}

double metric_of(const Facts& f, Objective o, const LayoutResult& r) {
  switch (o) {
    case Objective::throughput: return r.tokens_per_s;
    case Objective::time_to_train: return r.time_to_train_s > 0 ? r.time_to_train_s : r.step_time_s;
    case Objective::cost: return cost_of(f, r);
    case Objective::latency: return r.step_time_s;
  }
  return 0;
}

// GPU-hours and costs: whole numbers once they are large, never an exponent a reader must decode.
std::string amount_text(double v) { return std::fabs(v) >= 1000 ? fmt::format("{:.0f}", v) : fmt::format("{:.4g}", v); }

std::string train_time_text(double s) {
  if (s >= 86400) return fmt::format("{:.1f} days", s / 86400);
  if (s >= 3600) return fmt::format("{:.1f} h", s / 3600);
  return format_seconds(s);
}

// The numbers a tooltip gives for one layout.
std::string layout_numbers(const Facts& f, const LayoutResult& r) {
  std::string out = fmt::format("{} GPUs; {} {}; {:.0f} tokens/s", r.layout.gpus(), f.inference ? "request" : "step",
                                format_seconds(r.step_time_s), r.tokens_per_s);
  if (f.has_time) out += "; trains in " + train_time_text(r.time_to_train_s);
  out += f.has_cost ? fmt::format("; cost {} {}", amount_text(r.cost), per_what(f))
                    : fmt::format("; {} GPU-hours {}", amount_text(r.gpu_hours), per_what(f));
  if (r.memory_bytes > 0) out += fmt::format("; {:.1f} GiB per GPU", r.memory_bytes / kGiB);
  return out;
}

std::string node_colour(const std::vector<int>& nodes, int n) {
  const auto at = std::find(nodes.begin(), nodes.end(), n) - nodes.begin();
  return kNodePalette[at % std::size(kNodePalette)];
}

std::vector<int> node_counts(const std::vector<LayoutResult>& ranked) {
  std::vector<int> out;
  for (const LayoutResult& r : ranked) out.push_back(r.layout.nodes);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace tpsim::plan_page
