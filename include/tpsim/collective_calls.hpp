// The collectives a run timed, grouped by what they are (operation, TP mapping, pass, size and
// the resolved instance), with the time per call. `tpsim explain` times each of a layer's
// collectives alone with the same instance and fidelity; on links nothing else uses, the fastest
// call here is that very time, so the two commands answer "how long does this all-reduce take"
// with one number.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/timeline.hpp"

namespace tpsim {

struct CollectiveCalls {
  CollectiveOp op = CollectiveOp::all_reduce;
  std::string mapping;    // TP mapping name, "" for none (DP gradients, weight-gradient reductions)
  Pass pass = Pass::forward;
  int64_t bytes = 0;      // nccl-tests size
  std::string instance;   // describe() of the resolved instance
  int calls = 0;          // on the GPU that ran it most often
  double fastest = 0;     // s, the shortest call on any GPU (the time alone when nothing contends)
  double mean = 0;        // s, over every GPU's calls
  double total = 0;       // s, calls x mean on the GPU that ran it most often
};

// Longest total first.
std::vector<CollectiveCalls> collective_calls(const Timeline& timeline);
std::string collective_calls_text(const std::vector<CollectiveCalls>& calls, size_t top = 8);

}  // namespace tpsim
