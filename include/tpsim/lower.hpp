// Lowering: Scenario -> one Program per rank. The plan's presets and partition specs decide where
// collectives go; explicit per-linear mappings in the plan are obeyed as written (even when wrong).
#pragma once

#include "tpsim/program.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

// What to lower. `block` = one attention block then one MLP block (the first end-to-end slice);
// `layer` = one whole transformer layer; `stack` = model.layers layers; `step` = a full training
// step or inference request of the workload (embedding, layers, output, loss, pipeline, DP).
enum class LowerScope { block, layer, stack, step };

struct LowerOptions {
  LowerScope scope = LowerScope::block;
  bool backward = false;       // also emit the backward pass (and weight gradients)
  int64_t tokens = 0;          // rows of the activations (micro_batch * seq); 0 = from the workload
  bool embedding_and_loss = true;   // stack: start with the embedding and end with final norm,
                                    // output and loss; false = layers only (an input activation in,
                                    // a seeded output gradient back)
};

ProgramSet lower(const Scenario& scenario, const LowerOptions& options);

// The same scenario with the tensor-parallel split removed (tp = 1, sp off): the reference the
// numerics compares against. Every other field is kept.
Scenario unsharded(const Scenario& scenario);

// Model dimensions shrunk by a common factor that keeps every division by the mesh exact (heads,
// kv_heads, ffn, vocab by tp; layers by pp), for fast numerical checks of a plan.
Scenario proxy_scale(const Scenario& scenario);

}  // namespace tpsim
