// Whole training steps and inference requests lowered to per-rank Programs (LowerScope::step),
// with the shortcuts the run stage may ask for (a partial step, folded TP, one DP replica).
#pragma once

#include <cstdint>
#include <functional>

#include "tpsim/lower.hpp"
#include "tpsim/program.hpp"

namespace tpsim::lowering {


struct StepOptions {
  int64_t micro_batches = 0;   // training: simulate only this many micro-batches of the step (0 = all)
  // Each piece's TP collectives go inside one fused op with its compute (fold_collectives), and
  // consecutive pieces merge into one op: a step of a few hundred ops per rank. The engine times a
  // fused op's parts alone, collectives at their uncontended time: exact when the TP group's links
  // carry nothing else (tests/test_step_symmetry.cpp compares it with TP collectives as real ops).
  bool fold_tp = false;
  // Replica symmetry: only DP replica 0's ranks get ops (the others' programs stay empty, so they
  // cost the engine nothing) and the set is marked dp_symmetry: the engine times each DP gradient
  // collective alone on the full topology with its whole group. Identical replicas arrive at every
  // DP collective together, so this is the full step's time as long as the DP traffic shares no
  // link with the replica's other traffic (tests/test_step_symmetry.cpp compares the two).
  bool one_dp_replica = false;
};

// Micro-batches per optimizer step and DP replica: global_batch / (micro_batch * dp); throws
// std::invalid_argument when it does not divide.
int64_t micro_batches_per_step(const Scenario& s);

// A training step: for each micro-batch, in the stage's 1F1B (or interleaved) order, embedding
// (first stage), the stage's layers forward and backward (recomputation per plan), output and loss
// (last stage); activations and gradients between stages on Stream::pp_comm; bucketed DP gradient
// all-reduce (or reduce-scatter + all-gather with the distributed optimizer) on Stream::dp_comm as
// the last micro-batch's backward frees each bucket; then the optimizer kernel.
ProgramSet lower_training_step(const Scenario& s, const StepOptions& options = {});

// Inference: `decode` false = the prefill of batch x prompt tokens; true = one decode step of
// `batch` tokens attending to a KV cache of `context` tokens. Stages run the batch in turn.
ProgramSet lower_inference_step(const Scenario& s, bool decode, int64_t context, const StepOptions& options = {});

}  // namespace tpsim::lowering
