// Pipeline schedules: every slot exactly once, the activation memory they imply, and the bubble of
// Narayanan et al. 2021 (1F1B: (p-1)/m of the ideal time; interleaved: (p-1)/(v*m)) when each
// slot's time is ideal and stages wait only for their pipeline peers.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <tuple>

#include "lower/pipeline_schedule.hpp"
#include "tpsim/memory.hpp"

using namespace tpsim;
using namespace tpsim::lowering;

namespace {

// Runs the stages' orders with forward time tf and backward time tb per chunk; a forward of global
// chunk g waits for chunk g-1's forward, a backward for chunk g+1's backward. Returns the makespan
// (throws if the orders deadlock).
double ideal_makespan(int pp, int v, int m, double tf, double tb) {
  std::vector<std::vector<PipelineSlot>> orders;
  for (int s = 0; s < pp; ++s) orders.push_back(pipeline_order(pp, s, v, m));
  std::map<std::tuple<bool, int, int>, double> done;   // (forward, micro-batch, global chunk) -> end
  std::vector<size_t> next(pp, 0);
  std::vector<double> free_at(pp, 0);
  const int chunks = pp * v;
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < pp; ++s) {
      while (next[s] < orders[s].size()) {
        const PipelineSlot& slot = orders[s][next[s]];
        const int g = slot.chunk * pp + s;
        double ready = free_at[s];
        std::tuple<bool, int, int> need{true, slot.micro_batch, g - 1};
        if (!slot.forward) need = g == chunks - 1 ? std::tuple{true, slot.micro_batch, g} : std::tuple{false, slot.micro_batch, g + 1};
        const bool has_dep = slot.forward ? g > 0 : true;
        if (has_dep) {
          auto it = done.find(need);
          if (it == done.end()) break;
          ready = std::max(ready, it->second);
        }
        free_at[s] = ready + (slot.forward ? tf : tb);
        done[{slot.forward, slot.micro_batch, g}] = free_at[s];
        ++next[s];
        progress = true;
      }
    }
  }
  for (int s = 0; s < pp; ++s)
    if (next[s] != orders[s].size()) throw std::runtime_error("pipeline deadlock");
  return *std::max_element(free_at.begin(), free_at.end());
}

}  // namespace

TEST_CASE("every (micro-batch, chunk) runs forward once and backward once, backward after forward") {
  for (auto [pp, v, m] : {std::tuple{4, 1, 8}, std::tuple{4, 1, 2}, std::tuple{4, 2, 8}, std::tuple{8, 3, 16}}) {
    for (int s = 0; s < pp; ++s) {
      std::map<std::pair<int, int>, int> seen;
      for (const PipelineSlot& slot : pipeline_order(pp, s, v, m)) {
        int& state = seen[{slot.micro_batch, slot.chunk}];
        CHECK(state == (slot.forward ? 0 : 1));
        state = slot.forward ? 1 : 2;
      }
      CHECK(seen.size() == size_t(m * v));
    }
  }
}

TEST_CASE("1F1B makespan is (m + p - 1)(tf + tb): the bubble is (p-1)/m of the ideal time") {
  CHECK(ideal_makespan(4, 1, 8, 1, 2) == rel((8 + 3) * 3.0));
  CHECK(ideal_makespan(8, 1, 64, 1, 2) == rel((64 + 7) * 3.0));
  CHECK(ideal_makespan(4, 1, 2, 1, 2) == rel((2 + 3) * 3.0));   // fewer micro-batches than stages
}

TEST_CASE("interleaving with v chunks divides the bubble by v") {
  // Each chunk holds 1/v of the stage's layers: tf/v, tb/v per chunk slot.
  for (int v : {2, 4}) {
    const double tf = 1.0 / v, tb = 2.0 / v;
    CHECK(ideal_makespan(4, v, 8, tf, tb) == rel(8 * 3.0 + 3 * 3.0 / v));
  }
}

TEST_CASE("the schedules' peak in-flight forwards match the memory model's closed form") {
  for (auto [pp, v, m] : {std::tuple{8, 1, 64}, std::tuple{8, 1, 4}, std::tuple{4, 2, 8}, std::tuple{8, 4, 64}}) {
    for (int s = 0; s < pp; ++s) {
      const int peak = peak_in_flight_chunks(pipeline_order(pp, s, v, m));
      CHECK(double(peak) / v == rel(in_flight_micro_batches(pp, s, v, m)));
    }
  }
}

TEST_CASE("interleaving rejects micro-batch counts not divisible by pp") {
  CHECK_THROWS_AS(pipeline_order(4, 0, 2, 6), std::invalid_argument);
}
