// `tpsim plan --workload serving`: how many GPUs serve a request stream within its SLO, per
// replica layout and engine setting (capacity.cpp).
#pragma once

#include <string>
#include <vector>

#include "tpsim/serving.hpp"

namespace tpsim::serving {

// What the search tries besides TP (every power of two that splits the model within a node).
struct CapacitySpec {
  std::vector<std::string> schedulers = {"vllm", "sarathi"};
  std::vector<int64_t> max_batches = {64, 256};
  std::vector<int64_t> token_budgets = {512, 2048};   // sarathi's chunk budgets
};

struct CapacityRow {
  int tp = 1;
  std::string scheduler;
  int64_t max_batch = 0, token_budget = 0;
  int64_t replicas = 0;   // the fewest that meet the SLO; 0 when the layout cannot serve at all
  int gpus = 0;
  bool meets = false;
  ServeSummary summary;   // at `replicas`
  std::string why;        // when it does not meet the SLO
};

// `base` is a serving scenario (its stream, SLO, router); its plan's TP is swept.
std::vector<CapacityRow> capacity_search(const Scenario& base, const CapacitySpec& spec);
std::string capacity_table(const Scenario& base, const std::vector<CapacityRow>& rows, int top);

}  // namespace tpsim::serving
