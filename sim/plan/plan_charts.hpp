// The plan page's three charts of the sweep: the ranking metric per layout, time against cost with
// the Pareto front, and why layouts were rejected.
#pragma once

#include <string>

#include "plan/plan_facts.hpp"

namespace tpsim::plan_page {

std::string metric_chart(const PlanPage& page, const Facts& f);
std::string pareto_chart(const Facts& f);
std::string rejection_chart(const PlanPage& page);

}  // namespace tpsim::plan_page
