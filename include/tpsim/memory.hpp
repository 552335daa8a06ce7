// Memory per GPU and model FLOPs: closed-form accounting of what a training step or an inference
// request keeps resident in HBM, and how many FLOPs the model needs (the numerator of MFU).
//
// Memory follows Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
// Models") for activations and Megatron-LM's mixed-precision Adam for states:
//   weights 2 B/param (bf16), gradients 4 B/param (fp32 main grads; 2 B for an fp16 model, below),
//   optimizer 12 B/param (fp32 master copy, Adam m and v); the distributed optimizer shards the 12 B
//   over dp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim {

// A fixed allowance for what is not the model: CUDA context (~0.5 GiB), NCCL channel buffers and
// cuBLAS workspaces (~0.5 GiB), caching-allocator fragmentation (~1 GiB). 2 GiB per GPU.
inline constexpr double kRuntimeReserveBytes = 2.0 * 1024 * 1024 * 1024;

// Bytes per parameter in mixed-precision Adam (Megatron-LM): bf16 weight, fp32 main gradient, and
// fp32 master weight + Adam first and second moments.
inline constexpr double kWeightBytes = 2, kGradBytes = 4, kOptimizerBytes = 12;
// Bytes per element of the main gradient, which weight gradients accumulate into over the
// micro-batches and DP reduces: Megatron-LM keeps it in fp32 for bf16 (and FP8) training, which it
// forces (accumulate_allreduce_grads_in_fp32), and in the parameters' fp16 for fp16 training, where
// that switch defaults off (Narayanan et al. 2021 ran --fp16: data/reference/
// narayanan_2021_table1_run_config.csv).
inline DType main_grad_dtype(DType model_dtype) { return model_dtype == DType::fp16 ? DType::fp16 : DType::fp32; }
inline double main_grad_bytes(DType model_dtype) { return dtype_bytes(main_grad_dtype(model_dtype)); }
// FP8 training keeps an FP8 copy of each linear weight and of its transpose (Transformer Engine).
inline constexpr double kFp8WeightCopyBytes = 2;

struct MemoryComponent {
  std::string name;     // "weights", "gradients", "optimizer", "activations", "kv_cache", "runtime reserve"
  double bytes = 0;
  std::string detail;   // how it was counted, e.g. "8 in-flight micro-batches x 6 layers"
};

struct MemoryBreakdown {
  int stage = 0;                         // pipeline stage the GPU belongs to
  double parameters = 0;                 // parameters held by this GPU (its TP shard of its stage)
  double expert_parameters = 0;   // of them, a mixture of experts' (optimizer states sharded over dp / ep)
  double fp8_weight_copies = 0;   // FP8 training: bytes of the FP8 weight copies (inside `weights`)
  double weights = 0, gradients = 0, optimizer = 0, activations = 0, kv_cache = 0, reserve = 0;
  // What weights and the KV cache are stored in: bf16 for training (mixed-precision Adam);
  // workload.precision for inference.
  DType weights_dtype = DType::bf16, kv_cache_dtype = DType::bf16;
  DType main_grad_dtype = DType::fp32;   // training: the gradients' (main_grad_dtype() above)
  int in_flight_micro_batches = 0;       // training: micro-batches whose activations are held at peak
  double activation_bytes_per_layer = 0; // one micro-batch, one layer, on this GPU (inference: one
                                         // prefill step's working set of one layer)
  // Inference: which prefill the activations assume ("prefill of the whole batch at once (8 x 512
  // tokens)" or "chunked prefill, 2048 tokens per step beside the decoding batch"); "" for training.
  std::string prefill_basis;
  double total = 0;                      // bytes
  double capacity = 0;                   // the GPU's HBM bytes
  bool fits = true;
  // When it does not fit: the largest component (the first of equals in the order of
  // components()), and by how much the total exceeds the capacity.
  std::string overflow_component;
  double overflow_bytes = 0;
  std::vector<MemoryComponent> components() const;   // in a fixed order, zero-sized ones included
};

// Whether the attention kernels keep the s^2 attention scores, the switch the cost model times
// attention with (gpu.attention_score_bytes: 0 = fused flash attention, the preset default).
enum class AttentionKernel { fused, unfused };
AttentionKernel attention_kernel(const GpuSpec& gpu);

// Activation bytes one transformer layer keeps for one micro-batch on one GPU. Unfused attention
// follows Korthikanti et al. 2022 (Table 2):
//   no parallelism           s*b*h*(34 + 5*a*s/h)
//   TP t with SP             s*b*h*(34 + 5*a*s/h) / t
//   TP t without SP          s*b*h*(10 + 24/t + 5*a*s/(h*t))
// where 5*a*s/h is the s^2 part: softmax output (2 B), its dropout mask (1 B) and dropout output
// (2 B) per score element. Fused (flash) attention keeps no scores, only the softmax statistics
// (one fp32 log-sum-exp per query and head: 4*s*b*a bytes, heads split over tp):
//   TP t with SP (or t = 1)  s*b*h*34/t + 4*s*b*a/t
//   TP t without SP          s*b*h*(10 + 24/t) + 4*s*b*a/t
//   selective recompute      no score term and no statistics (core attention is recomputed)
//   full recompute           2*s*b*h per layer (its input; / t with SP)
//   fp8_gemm_inputs (FP8 training, Transformer Engine): the inputs the linears keep for their weight
//   gradients are FP8 (1 B): qkv's, proj's, fc1's (2 B each) and fc2's (8 B) halve, 34 -> 27
//   (10 + 24/t -> 8 + 19/t without SP)
double activation_bytes_per_layer(const ModelSpec& m, const PlanSpec& p, int64_t seq, int64_t micro_batch,
                                  AttentionKernel attention, bool fp8_gemm_inputs = false);
// The same for a scenario on its own GPU, the one number of "activation bytes kept per layer per
// GPU" for callers outside the memory model (explain, reports): training uses workload.seq,
// workload.micro_batch and attention_kernel(topology.gpu); inference, one layer's working set in a
// prefill step, split over tp, in the activations' precision (the bytes above count 2-byte
// elements and scale with it). The step is the whole batch's prompts at once (the default, as the
// prefill is timed), or workload.prefill_chunk tokens each attending to at most `prompt` keys:
// the per-sequence bytes times chunk / prompt.
double activation_bytes_per_layer(const Scenario& s);

// Micro-batches (in units of a full stage's layers) whose activations a pipeline stage holds at
// its peak. 1F1B: stage i of p holds min(p - i, m); interleaved with v chunks per stage: Megatron's
// warm-up of (p - i - 1)*2 + (v - 1)*p chunks plus the one in flight, capped at m*v, over v.
double in_flight_micro_batches(int pp, int stage, int virtual_stages, int64_t micro_batches);

// Parameters held by one GPU of `stage`: its layers' weights, plus the embedding on the first stage
// and the output head and final norm on the last, each divided by tp when the plan splits it
// (tp_split_dim in tpsim/partition.hpp, the rule the lowering shards with) and whole otherwise.
double parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage);
// Of them, the experts' (a mixture-of-experts model: E/ep experts per GPU, split over tp), whose
// optimizer states the distributed optimizer shards over the expert-DP group (dp/ep), not dp.
double expert_parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage);

// Memory of one GPU of `stage` for the scenario's workload (training or inference).
MemoryBreakdown memory_per_gpu(const Scenario& s, int stage);
// The stage with the largest total (ties: the lowest stage).
MemoryBreakdown peak_memory(const Scenario& s);
// One line: "fits: 61.2 GiB of 80.0 GiB (stage 0)" or, naming the largest component, the total
// and the capacity: "OOM: activations overflow HBM (80.0 GiB) by 12.3 GiB on stage 0: total
// 92.3 GiB, of which activations 51.0 GiB (the largest part)". The "OOM: <component> overflow"
// prefix is what the planner's table groups rejections by.
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
