// The picture of a sweep: `tpsim plan --html` and `tpsim merge --html` write one self-contained page
// (inline CSS and SVG, a few lines of inline script, nothing fetched) with the ranking metric of every
// layout that ran, time against cost with the Pareto front, why the others were rejected, and the
// best layout's step timeline. The CSV stays the data; the page is drawn from the same results.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "tpsim/planner.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

// Why a layout was rejected, in a few groups a reader can count: "out of memory", "does not divide"
// (layers, batch, sequence or heads over a parallel degree), "unsupported combination" (a rule such
// as MoE with tp > 1 needing SP, or a feature not modelled), "past the deadline", "over the latency
// bound", "simulation failed", "invalid (other)". "" for a layout that ran.
std::string rejection_category(const LayoutResult& r);

// The points no other point beats: none has time <= and cost <= with one of them strictly smaller.
// Indices into `points`, by time (then cost) ascending; of identical points only the first is kept.
struct TimeCost {
  double time = 0, cost = 0;
};
std::vector<std::size_t> pareto_front(const std::vector<TimeCost>& points);

struct PlanPage {
  std::string context;                 // sweep_context() (or a merged file's tag.context)
  Objective objective = Objective::throughput;
  std::vector<LayoutResult> ranked;    // rank_results() order
  int megatron_tp = 0;                 // Megatron's TP (megatron_tp()); 0 = no Megatron mark (inference)
  std::string part;                    // "" = the whole sweep; else what part the page shows, said at the top
  std::string csv;                     // the result file the numbers are in ("" = none written)
  std::optional<RunResult> best_run;   // the best layout's step, simulated again (run_layout)
  std::string best_run_note;           // without best_run: why there is no timeline
  int top = 15;                        // rows of the ranked table
};

// The page. Deterministic: the same page gives the same bytes.
std::string plan_html(const PlanPage& page);
// Writes plan_html() atomically; a failed write throws InputError naming "--html".
void write_plan_html(const std::string& path, const PlanPage& page);

// One layout simulated as `tpsim run` simulates a scenario: scenario_for() and run_scenario() with
// the default options (the whole step; TP collectives and DP replicas as `auto` picks; numerics off).
RunResult run_layout(const SweepSpec& spec, const Layout& layout);

}  // namespace tpsim
