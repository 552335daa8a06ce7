// Pipeline schedules: the order in which one pipeline stage runs the forward and backward passes of
// its micro-batches. 1F1B (PipeDream-Flush, Narayanan et al. 2021 fig. 4 top) and interleaved 1F1B
// with v model chunks per stage (fig. 4 bottom), in Megatron-LM's order.
#pragma once

#include <cstdint>
#include <vector>

namespace tpsim::lowering {

struct PipelineSlot {
  bool forward = true;
  int micro_batch = 0;
  int chunk = 0;   // model chunk on this stage, 0..v-1; global chunk = chunk * pp + stage
};

// The slots of `stage` (0..pp-1) in execution order: every micro-batch's forward and backward of
// every chunk, exactly once each. Interleaving (virtual_stages > 1) needs micro_batches % pp == 0,
// as Megatron-LM requires; throws std::invalid_argument otherwise.
std::vector<PipelineSlot> pipeline_order(int pp, int stage, int virtual_stages, int micro_batches);

// Slots a stage runs before its first backward (the warm-up forwards).
int warmup_forwards(int pp, int stage, int virtual_stages, int micro_batches);

// Most (micro-batch, chunk) forwards whose backward has not run yet, over the schedule of `stage`.
int peak_in_flight_chunks(const std::vector<PipelineSlot>& order);

}  // namespace tpsim::lowering
