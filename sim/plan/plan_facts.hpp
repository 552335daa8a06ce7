// What a sweep's results hold, and the words the plan page uses for them (plan_html.cpp,
// plan_charts.cpp): training or inference, time to train or per step, cost or GPU-hours.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "plan/plan_svg.hpp"
#include "tpsim/plan_html.hpp"

namespace tpsim::plan_page {

struct Facts {
  bool inference = false, has_time = false, has_cost = false;
  double price = 0;                         // per GPU-hour, read back from cost / GPU-hours
  std::vector<const LayoutResult*> ran;     // ranked order
  std::optional<LayoutResult> megatron;
  int megatron_rank = 0;                    // 1-based among `ran`; 0 = none
};
Facts facts_of(const PlanPage& page);

// GPU-hours and cost are counted to train the target, per step, or per million output tokens.
std::string per_what(const Facts& f);
std::string cost_title(const Facts& f);
double cost_of(const Facts& f, const LayoutResult& r);
// The time the front trades against cost: time to train the target, else the step or request.
double time_of(const Facts& f, const LayoutResult& r);
std::string time_title(const Facts& f, const Unit& u);
double metric_of(const Facts& f, Objective o, const LayoutResult& r);
// GPU-hours and costs: whole numbers once they are large, never an exponent a reader must decode.
std::string amount_text(double v);
std::string train_time_text(double s);
// The numbers a tooltip gives for one layout.
std::string layout_numbers(const Facts& f, const LayoutResult& r);
// Points are coloured by node count.
std::string node_colour(const std::vector<int>& nodes, int n);
std::vector<int> node_counts(const std::vector<LayoutResult>& ranked);

}  // namespace tpsim::plan_page
