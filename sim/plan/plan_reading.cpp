// What the sweep's page reads out of the results besides the numbers themselves: the rejection
// groups, the time / cost Pareto front, and the best layout simulated again as `tpsim run` would.
#include <algorithm>
#include <numeric>

#include "tpsim/plan_html.hpp"
#include "tpsim/run.hpp"

namespace tpsim {

namespace {

bool says(const std::string& text, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return text.find(w) != std::string::npos; });
}

}  // namespace

// The reasons are free text from layout_problem() and validate(): the words tested here are the
// ones those messages use ("80 layers do not split over 32 stages", "global batch 1024 is not a
// multiple of ...", "seq ... is not divisible by tp", "... needs sequence parallelism", "... is not
// modelled yet"). Divisibility is tested first: "interleaved 1F1B needs micro-batches to be a
// multiple of pp" is a divisibility problem, not a missing feature.
std::string rejection_category(const LayoutResult& r) {
  switch (r.verdict) {
    case Verdict::ok: return "";
    case Verdict::oom: return "out of memory";
    case Verdict::deadline: return "past the deadline";
    case Verdict::latency: return "over the latency bound";
    case Verdict::error: return "simulation failed";
    case Verdict::invalid: break;
  }
  if (says(r.reason, {"divid", "split", "multiple of", "does not cut"})) return "does not divide";
  if (says(r.reason, {"needs", "not modelled", "not supported"})) return "unsupported combination";
  return "invalid (other)";
}

// Sorted by time then cost, a point is on the front when its cost is below every cost before it
// (those are all at least as fast): one pass after the sort.
std::vector<std::size_t> pareto_front(const std::vector<TimeCost>& points) {
  std::vector<std::size_t> order(points.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (points[a].time != points[b].time) return points[a].time < points[b].time;
    return points[a].cost < points[b].cost;
  });
  std::vector<std::size_t> front;
  for (std::size_t i : order)
    if (front.empty() || points[i].cost < points[front.back()].cost) front.push_back(i);
  return front;
}

RunResult run_layout(const SweepSpec& spec, const Layout& layout) {
  return run_scenario(scenario_for(spec, layout), RunOptions{});
}

}  // namespace tpsim
