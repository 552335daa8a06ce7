// Memory per GPU and model FLOPs: closed-form accounting of what a training step or an inference
// request keeps resident in HBM, and how many FLOPs the model needs (the numerator of MFU).
//
// Memory follows Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
// Models") for activations and Megatron-LM's mixed-precision Adam for states:
//   weights 2 B/param (bf16), gradients 4 B/param (fp32 main grads), optimizer 12 B/param (fp32
//   master copy, Adam m and v); the distributed optimizer shards the 12 B over dp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim {

// A fixed allowance for what is not the model: CUDA context (~0.5 GiB), NCCL channel buffers and
// cuBLAS workspaces (~0.5 GiB), caching-allocator fragmentation (~1 GiB). 2 GiB per GPU.
inline constexpr double kRuntimeReserveBytes = 2.0 * 1024 * 1024 * 1024;

struct MemoryComponent {
  std::string name;     // "weights", "gradients", "optimizer", "activations", "kv_cache", "runtime reserve"
  double bytes = 0;
  std::string detail;   // how it was counted, e.g. "8 in-flight micro-batches x 6 layers"
};

struct MemoryBreakdown {
  int stage = 0;                         // pipeline stage the GPU belongs to
  double parameters = 0;                 // parameters held by this GPU (its TP shard of its stage)
  double weights = 0, gradients = 0, optimizer = 0, activations = 0, kv_cache = 0, reserve = 0;
  int in_flight_micro_batches = 0;       // training: micro-batches whose activations are held at peak
  double activation_bytes_per_layer = 0; // one micro-batch, one layer, on this GPU
  double total = 0;                      // bytes
  double capacity = 0;                   // the GPU's HBM bytes
  bool fits = true;
  // When it does not fit: the component at which the running sum (in the order of components())
  // first passes the capacity, and by how much the total exceeds it.
  std::string overflow_component;
  double overflow_bytes = 0;
  std::vector<MemoryComponent> components() const;   // in a fixed order, zero-sized ones included
};

// Activation bytes one transformer layer keeps for one micro-batch on one GPU (Korthikanti et al.):
//   no parallelism           s*b*h*(34 + 5*a*s/h)
//   TP t with SP             s*b*h*(34 + 5*a*s/h) / t
//   TP t without SP          s*b*h*(10 + 24/t + 5*a*s/(h*t))
//   selective recompute      the 5*a*s/h term dropped (attention scores and softmax recomputed)
//   full recompute           2*s*b*h per layer (its input; / t with SP)
double activation_bytes_per_layer(const ModelSpec& m, const PlanSpec& p, int64_t seq, int64_t micro_batch);

// Micro-batches (in units of a full stage's layers) whose activations a pipeline stage holds at
// its peak. 1F1B: stage i of p holds min(p - i, m); interleaved with v chunks per stage: Megatron's
// warm-up of (p - i - 1)*2 + (v - 1)*p chunks plus the one in flight, capped at m*v, over v.
double in_flight_micro_batches(int pp, int stage, int virtual_stages, int64_t micro_batches);

// Parameters held by one GPU of `stage`: its layers' TP shards, plus the vocab-parallel embedding on
// the first stage and the output head and final norm on the last.
double parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage);

// Memory of one GPU of `stage` for the scenario's workload (training or inference).
MemoryBreakdown memory_per_gpu(const Scenario& s, int stage);
// The stage with the largest total (ties: the lowest stage).
MemoryBreakdown peak_memory(const Scenario& s);
// One line: "fits: 61.2 GiB of 80.0 GiB" or "OOM: activations overflow HBM (80.0 GiB) by 12.3 GiB".
std::string memory_verdict(const MemoryBreakdown& m);

// ---------------------------------------------------------------------------------------------
// Model FLOPs as Narayanan et al. 2021 count them: forward, backward (2x forward) and one more
// forward for activation recomputation in every layer, plus the logits forward and backward. For a
// GPT (4h GELU MLP, multi-head attention) this is exactly
//   F = 96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h))      B sequences of s tokens, per optimizer step.
// For other models the per-layer linear FLOPs come from the actual weight shapes (GQA, SwiGLU).
double model_flops_per_step(const ModelSpec& m, int64_t global_batch, int64_t seq);
// The same count with the layer forwards a step really runs: 4 with full recomputation (the count
// above), 3 without it or with selective recomputation (whose recomputed attention scores are not
// model FLOPs). MFU and TFLOP/s reported for a run use this, so a run without recomputation is not
// credited for a forward pass it never did.
double model_flops_per_step(const ModelSpec& m, int64_t global_batch, int64_t seq, Recompute recompute);
// Forward FLOPs of one layer for `tokens` tokens in a sequence of `seq` (linears + QK^T + AV, not
// halved for causality, as Narayanan counts).
double layer_forward_flops(const ModelSpec& m, int64_t tokens, int64_t seq);

}  // namespace tpsim
