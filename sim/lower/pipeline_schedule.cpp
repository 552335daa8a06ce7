// Pipeline schedules (1F1B and interleaved 1F1B), as Megatron-LM orders them.
#include "lower/pipeline_schedule.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace tpsim::lowering {

int warmup_forwards(int pp, int stage, int virtual_stages, int micro_batches) {
  const int total = micro_batches * virtual_stages;
  if (virtual_stages <= 1) return std::min(pp - stage - 1, micro_batches);
  // Interleaved: each stage fills the pipeline for all of its chunks before the first backward.
  return std::min((pp - stage - 1) * 2 + (virtual_stages - 1) * pp, total);
}

namespace {

// Megatron's mapping of the k-th forward (or backward) of a stage to its (micro-batch, chunk):
// micro-batches advance in groups of pp per chunk, chunks run ascending forward, descending backward.
PipelineSlot interleaved_slot(int k, int pp, int v, bool forward) {
  const int group = k / (pp * v), in_group = k % (pp * v);
  int chunk = in_group / pp;
  if (!forward) chunk = v - 1 - chunk;
  return {forward, group * pp + in_group % pp, chunk};
}

}  // namespace

std::vector<PipelineSlot> pipeline_order(int pp, int stage, int v, int m) {
  if (pp < 1 || stage < 0 || stage >= pp || v < 1 || m < 1)
    throw std::invalid_argument("pipeline_order: need pp >= 1, 0 <= stage < pp, virtual_stages >= 1, micro_batches >= 1");
  if (v > 1 && m % pp != 0)
    throw std::invalid_argument("interleaved 1F1B needs micro-batches (" + std::to_string(m) +
                                ") divisible by pp (" + std::to_string(pp) + ")");
  const int total = m * v;
  const int warmup = warmup_forwards(pp, stage, v, m);
  auto fwd = [&](int k) { return v == 1 ? PipelineSlot{true, k, 0} : interleaved_slot(k, pp, v, true); };
  auto bwd = [&](int k) { return v == 1 ? PipelineSlot{false, k, 0} : interleaved_slot(k, pp, v, false); };
  std::vector<PipelineSlot> order;
  order.reserve(2 * size_t(total));
  for (int k = 0; k < warmup; ++k) order.push_back(fwd(k));
  // Steady state: one forward, one backward; then the cool-down backwards.
  for (int k = 0; k < total - warmup; ++k) {
    order.push_back(fwd(warmup + k));
    order.push_back(bwd(k));
  }
  for (int k = total - warmup; k < total; ++k) order.push_back(bwd(k));
  return order;
}

int peak_in_flight_chunks(const std::vector<PipelineSlot>& order) {
  int live = 0, peak = 0;
  for (const PipelineSlot& s : order) {
    live += s.forward ? 1 : -1;
    peak = std::max(peak, live);
  }
  return peak;
}

}  // namespace tpsim::lowering
