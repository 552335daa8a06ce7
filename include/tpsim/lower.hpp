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
  // Under expert or context parallelism (layer and stack scopes, backward): all-reduce each weight
  // gradient over the EP group and CP ring, the slice of the DP reduction that lets numerics
  // compare it with the unsharded run's. A step reduces gradients in DP buckets instead; explain
  // leaves it out.
  bool token_shard_grad_reduction = true;
};

ProgramSet lower(const Scenario& scenario, const LowerOptions& options);

// The rows one rank's activations have in a training micro-batch (micro_batch x seq, a CP rank's
// seq / cp of each sequence) or an inference prefill (batch x prompt).
int64_t rank_tokens(const Scenario& scenario);

// A mixture-of-experts layer's buffers for a rank routing `tokens` tokens: C slots per expert and
// source rank, ceil(load x top_k x tokens / experts) capped at the tokens (load = the capacity
// factor, or for dropless routing workload.expert_skew, the busiest expert's share over the mean).
int64_t expert_slots(const ModelSpec& model, const WorkloadSpec& workload, int64_t tokens);
// The tokens the busiest expert computes on per micro-batch (training) or prefill (inference): its
// slots from every source rank of the EP group and every TP rank, tp x ep x C, the rows of the
// expert GEMMs the timing runs; 0 for a dense model.
int64_t busiest_expert_tokens(const Scenario& scenario);

// The same scenario with the tensor-parallel split removed (tp = 1, sp off): the reference the
// numerics compares against. Every other field is kept.
Scenario unsharded(const Scenario& scenario);

// Model dimensions shrunk by a common factor that keeps every division by the mesh exact (heads,
// kv_heads, ffn, vocab by tp; layers by pp), for fast numerical checks of a plan.
Scenario proxy_scale(const Scenario& scenario);

}  // namespace tpsim
