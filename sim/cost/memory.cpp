// Memory per GPU: weights, gradients, optimizer states, activations, KV cache and a fixed runtime
// reserve, for the GPU of each pipeline stage (TP and DP ranks of one stage hold the same amount).
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "tpsim/memory.hpp"
#include "tpsim/partition.hpp"

namespace tpsim {
namespace {

// Elements of a weight held by one GPU: all of it, or 1/tp of it when the plan splits it.
double held(const PlanSpec& p, const std::string& weight, double elements) {
  return tp_split_dim(p, weight) >= 0 ? elements / std::max(1, p.tp) : elements;
}

// Parameters of one transformer layer held by one GPU: linears (no biases, as the lowering) and the
// two norms (scale, plus bias for LayerNorm), each as the plan splits it.
// The MLP's linears held by one GPU: one FFN of width `ffn`, times `count` (experts).
double ffn_params_held(const ModelSpec& m, const PlanSpec& p, double ffn, double count) {
  const double h = double(m.hidden);
  double params = held(p, "mlp.fc1", h * ffn) + held(p, "mlp.fc2", ffn * h);
  if (m.activation == Activation::swiglu) params += held(p, "mlp.gate", h * ffn);
  return count * params;
}

// The experts one GPU holds in one layer: E/ep of them, each split over tp like the dense MLP.
double layer_expert_params_held(const ModelSpec& m, const PlanSpec& p) {
  if (!m.moe.enabled()) return 0;
  return ffn_params_held(m, p, double(m.moe.expert_ffn), double(m.moe.experts / std::max(1, p.ep)));
}

// The layer's linears (attention and MLP or experts, the router excepted), as one GPU holds them.
double layer_linear_params_held(const ModelSpec& m, const PlanSpec& p) {
  const double h = double(m.hidden), hd = double(m.head_dim());
  const double mlp = m.moe.enabled() ? layer_expert_params_held(m, p) + ffn_params_held(m, p, double(m.moe.shared_expert_ffn), 1)
                                      : ffn_params_held(m, p, double(m.ffn), 1);
  return held(p, "attn.qkv", h * double(m.heads + 2 * m.kv_heads) * hd) + held(p, "attn.proj", double(m.heads) * hd * h) + mlp;
}

double layer_params_held(const ModelSpec& m, const PlanSpec& p) {
  const double h = double(m.hidden), hd = double(m.head_dim());
  const double norm = (m.norm == Norm::layernorm ? 2 : 1) * h;
  // A mixture of experts: router, the rank's experts, the shared expert and its gate.
  const double mlp = m.moe.enabled() ? h * double(m.moe.experts) + layer_expert_params_held(m, p) +
                                           ffn_params_held(m, p, double(m.moe.shared_expert_ffn), 1) +
                                           (m.moe.shared_expert_gate ? h : 0.0)
                                     : ffn_params_held(m, p, double(m.ffn), 1);
  return held(p, "attn.qkv", h * double(m.heads + 2 * m.kv_heads) * hd) + held(p, "attn.proj", double(m.heads) * hd * h) +
         mlp + held(p, "norm1", norm) + held(p, "norm2", norm);
}

// Layers stage `stage` holds (all of its virtual chunks under interleaving).
int64_t layers_on_stage(const ModelSpec& m, const PlanSpec& p, int stage) {
  if (p.first_stage_layers > 0 || p.last_stage_layers > 0) return stage_layers(m, p, stage).count;
  return m.layers / std::max(1, p.pp);
}

// fp32 logits of `tokens` tokens on one GPU: [tokens, V/t] when the output head [h, V] is split by
// columns (vocab-parallel), the whole [tokens, V] otherwise (a row split leaves full partial sums).
double logits_bytes(const ModelSpec& m, const PlanSpec& p, double tokens) {
  const double t = tp_split_dim(p, "output") == 1 ? std::max(1, p.tp) : 1;
  return tokens * double(m.vocab) / t * 4;
}

}  // namespace

double parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage) {
  double params = double(layers_on_stage(m, p, stage)) * layer_params_held(m, p);
  const double table = double(m.vocab) * double(m.hidden);   // embedding [V, h], output [h, V]
  if (stage == 0) params += held(p, "embedding", table);
  if (stage == p.pp - 1)
    params += held(p, "output", table) + held(p, "final_norm", (m.norm == Norm::layernorm ? 2 : 1) * double(m.hidden));
  return params;
}

double expert_parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage) {
  return double(layers_on_stage(m, p, stage)) * layer_expert_params_held(m, p);
}

AttentionKernel attention_kernel(const GpuSpec& gpu) {
  return gpu.attention_score_bytes > 0 ? AttentionKernel::unfused : AttentionKernel::fused;
}

double activation_bytes_per_layer(const ModelSpec& m, const PlanSpec& p, int64_t seq, int64_t micro_batch,
                                  AttentionKernel attention, bool fp8_gemm_inputs) {
  const double s = double(seq), b = double(micro_batch), h = double(m.hidden), a = double(m.heads);
  const double t = std::max(1, p.tp);
  const bool sp = p.sp && p.tp > 1;
  if (p.recompute == Recompute::full) return 2 * s * b * h / (sp ? t : 1);   // the layer's input only
  // Per score element (s^2 of them per head): Korthikanti's 5 bytes when unfused; fused attention
  // keeps only one fp32 statistic per query and head. Both are split over tp with the heads.
  double attention_core = 0;   // bytes / (s*b*h)
  if (p.recompute != Recompute::selective)
    attention_core = attention == AttentionKernel::unfused ? 5 * a * s / h : 4 * a / h;
  if (m.moe.enabled()) {
    // The dense MLP's 19 sbh/t (Korthikanti) becomes the MoE block's, on this GPU's T = sb/t tokens
    // (MoE with tp > 1 runs under SP) and R = load * k * T buffer rows: the router's input (2Th)
    // and fp32 logits (4TE), the dispatched and exchanged buffers and the experts' inputs (3 x 2Rh),
    // their fc1 (+ gate) and activation outputs (2 or 3 x 2Rf over tp x El experts: R rows of f),
    // and the returned buffer the combine keeps (2Rh).
    const double tokens = s * b / t;
    const double load = m.moe.capacity_factor > 0 ? m.moe.capacity_factor : 1.0;
    const double rows = load * double(m.moe.top_k) * tokens;
    const double f = double(m.moe.expert_ffn), e = double(m.moe.experts);
    // FP8: the experts' inputs (1 B instead of 2) and the attention linears' (qkv's, proj's: 2 of the 15).
    // A shared expert keeps its fc1 (+ gate) and activation outputs for every token: [s b, fs / t].
    const double shared = (m.activation == Activation::swiglu ? 3 : 2) * 2 * s * b * double(m.moe.shared_expert_ffn) / t;
    const double moe = 2 * tokens * h + 4 * tokens * e + (fp8_gemm_inputs ? 7 : 8) * rows * h +
                       (m.activation == Activation::swiglu ? 3 : 2) * 2 * rows * f + shared;
    return s * b * h * ((fp8_gemm_inputs ? 13 : 15) + attention_core) / t + moe;
  }
  if (sp || p.tp == 1) return s * b * h * ((fp8_gemm_inputs ? 27 : 34) + attention_core) / t;
  return s * b * h * ((fp8_gemm_inputs ? 8 : 10) + (fp8_gemm_inputs ? 19 : 24) / t + attention_core / t);
}

double activation_bytes_per_layer(const Scenario& s) {
  const WorkloadSpec& w = s.workload;
  if (w.kind == WorkloadKind::training)
    return activation_bytes_per_layer(s.model, s.plan, w.seq / std::max(1, s.plan.cp), w.micro_batch,
                                      attention_kernel(s.topology.gpu), s.model.dtype == DType::fp8);
  // Inference: one layer's working set during a prefill step, split over tp (as under SP); nothing
  // is kept for a backward pass. The step is the whole batch's prompts at once, or, with
  // workload.prefill_chunk, that many tokens whose queries each attend to at most `prompt` keys
  // (the per-sequence bytes are linear in the tokens). Korthikanti's bytes count 2-byte
  // activations: they scale with the activations' precision.
  PlanSpec prefill = s.plan;
  prefill.sp = true;
  prefill.recompute = Recompute::none;
  const double scale = dtype_bytes(precision_of(s).activations) / 2.0;
  const AttentionKernel attention = attention_kernel(s.topology.gpu);
  if (w.prefill_chunk > 0 && w.prefill_chunk < w.batch * w.prompt)
    return scale * activation_bytes_per_layer(s.model, prefill, w.prompt, 1, attention) * double(w.prefill_chunk) /
           double(w.prompt);
  return scale * activation_bytes_per_layer(s.model, prefill, w.prompt, w.batch, attention);
}

double in_flight_micro_batches(int pp, int stage, int virtual_stages, int64_t micro_batches) {
  const double m = double(micro_batches);
  if (virtual_stages <= 1) return std::min(double(pp - stage), m);
  const double v = virtual_stages;
  const double warmup = double(pp - stage - 1) * 2 + (v - 1) * pp;
  return std::min(warmup + 1, m * v) / v;
}

std::vector<MemoryComponent> MemoryBreakdown::components() const {
  return {{"runtime reserve", reserve, "CUDA context, NCCL and cuBLAS buffers, allocator slack"},
          {"weights", weights,
           fp8_weight_copies > 0
               ? fmt::format("{:.3g} params x 2 B (bf16) + FP8 copies of the layers' linears and their transposes ({:.2f} GiB)",
                             parameters, fp8_weight_copies / kGiB)
               : fmt::format("{:.3g} params x {} B ({})", parameters, dtype_bytes(weights_dtype), to_string(weights_dtype))},
          {"gradients", gradients,
           fmt::format("{} B/param ({} main gradients)", dtype_bytes(main_grad_dtype), to_string(main_grad_dtype))},
          {"optimizer", optimizer,
           expert_parameters > 0
               ? fmt::format("fp32 master weights + Adam m, v (12 B/param; distributed: / dp x cp, the {:.3g} expert params / (dp/ep))",
                             expert_parameters)
               : "fp32 master weights + Adam m, v (12 B/param, / dp x cp if distributed)"},
          {"activations", activations,
           prefill_basis.empty()
               ? fmt::format("{} in-flight micro-batches x {:.1f} MiB/layer", in_flight_micro_batches,
                             activation_bytes_per_layer / (1024.0 * 1024))
               : fmt::format("{}: one layer's working set {:.1f} MiB + last-token logits", prefill_basis,
                             activation_bytes_per_layer / (1024.0 * 1024))},
          {"kv_cache", kv_cache,
           fmt::format("2 x layers x batch x context x kv_heads/tp x head_dim x {} B{}", dtype_bytes(kv_cache_dtype),
                       kv_cache_dtype == DType::bf16 ? "" : fmt::format(" ({})", to_string(kv_cache_dtype)))}};
}

MemoryBreakdown memory_per_gpu(const Scenario& s, int stage) {
  const ModelSpec& m = s.model;
  const PlanSpec& p = s.plan;
  const WorkloadSpec& w = s.workload;
  MemoryBreakdown r;
  r.stage = stage;
  r.capacity = s.topology.gpu.hbm_bytes;
  r.reserve = kRuntimeReserveBytes;
  r.parameters = parameters_on_stage(m, p, stage);
  r.weights = r.parameters * kWeightBytes;
  const double layers = double(layers_on_stage(m, p, stage));
  const double t = std::max(1, p.tp);
  const AttentionKernel attention = attention_kernel(s.topology.gpu);
  if (w.kind == WorkloadKind::training) {
    r.main_grad_dtype = main_grad_dtype(m.dtype);
    if (m.dtype == DType::fp16) r.weights_dtype = DType::fp16;   // Megatron's --fp16: fp16 weights
    r.gradients = r.parameters * main_grad_bytes(m.dtype);
    // The distributed optimizer shards dense states over dp, experts' over the expert-DP group.
    const double experts = r.expert_parameters = expert_parameters_on_stage(m, p, stage);
    r.optimizer = p.distributed_optimizer ? (r.parameters - experts) * kOptimizerBytes / std::max(1, p.dp * p.cp) +
                                                experts * kOptimizerBytes / std::max(1, p.dp / std::max(1, p.ep))
                                          : r.parameters * kOptimizerBytes;
    const int64_t micro_batches = std::max<int64_t>(1, w.global_batch / std::max<int64_t>(1, w.micro_batch * p.dp));
    const double in_flight = in_flight_micro_batches(p.pp, stage, p.virtual_stages, micro_batches);
    r.in_flight_micro_batches = int(std::ceil(in_flight));
    // Context parallelism: a GPU holds seq / cp tokens of every sequence.
    const int64_t seq = w.seq / std::max(1, p.cp);
    // FP8 training (Transformer Engine): FP8 copies of every layer's linear weights and their
    // transposes for the backward (2 B per parameter beside the BF16 ones), FP8 saved GEMM inputs.
    const bool fp8 = m.dtype == DType::fp8;
    if (fp8) {
      r.fp8_weight_copies = layers * layer_linear_params_held(m, p) * kFp8WeightCopyBytes;
      r.weights += r.fp8_weight_copies;
    }
    r.activation_bytes_per_layer = activation_bytes_per_layer(m, p, seq, w.micro_batch, attention, fp8);
    r.activations = in_flight * layers * r.activation_bytes_per_layer;
    // The first stage also holds the embedding output (s*b*h, bf16) per in-flight micro-batch;
    // the last stage briefly holds one micro-batch's fp32 logits for the loss (s*b*V/t*4 when
    // the output head is vocab-parallel).
    const double sbh = double(seq) * double(w.micro_batch) * double(m.hidden);
    if (stage == 0) r.activations += in_flight * sbh * 2 / (p.sp ? t : 1);
    if (stage == p.pp - 1) r.activations += logits_bytes(m, p, double(seq) * double(w.micro_batch));
    // Full recompute rebuilds one layer's whole activations before its backward: a transient.
    if (p.recompute == Recompute::full) {
      PlanSpec kept = p;
      kept.recompute = Recompute::none;
      r.activations += activation_bytes_per_layer(m, kept, seq, w.micro_batch, attention, fp8);
    }
  } else {
    // Inference: the KV cache of the whole batch at its full context, plus one layer's working set
    // during a prefill step (activation_bytes_per_layer: the s^2 scores only when the attention is
    // unfused) and the last token's logits. The prefill step is the whole batch at once unless
    // workload.prefill_chunk says the engine prefills in chunks beside the decoding batch
    // (continuous batching): then only one chunk's working set adds to the KV cache.
    // Weights and KV cache in their workload.precision (the model's dtype unless given).
    const Precision precision = precision_of(s);
    r.weights_dtype = precision.weights;
    r.kv_cache_dtype = precision.kv_cache;
    r.weights = r.parameters * dtype_bytes(precision.weights);
    const double context = double(w.prompt + w.generate);
    const double kv_width = double(m.kv_heads) / t * double(m.head_dim());
    r.kv_cache = 2 * layers * double(w.batch) * context * kv_width * dtype_bytes(precision.kv_cache);
    r.activation_bytes_per_layer = activation_bytes_per_layer(s);
    r.activations = r.activation_bytes_per_layer + logits_bytes(m, p, double(w.batch));
    r.in_flight_micro_batches = 1;
    r.prefill_basis = w.prefill_chunk > 0 && w.prefill_chunk < w.batch * w.prompt
                          ? fmt::format("chunked prefill, {} tokens per step beside the decoding batch", w.prefill_chunk)
                          : fmt::format("prefill of the whole batch at once ({} x {} tokens)", w.batch, w.prompt);
  }
  r.total = 0;
  const MemoryComponent* largest = nullptr;
  const std::vector<MemoryComponent> parts = r.components();
  for (const MemoryComponent& c : parts) {
    r.total += c.bytes;
    if (!largest || c.bytes > largest->bytes) largest = &c;
  }
  if (r.capacity > 0 && r.total > r.capacity) {
    r.fits = false;
    r.overflow_component = largest->name;
    r.overflow_bytes = r.total - r.capacity;
  }
  return r;
}

MemoryBreakdown peak_memory(const Scenario& s) {
  MemoryBreakdown best = memory_per_gpu(s, 0);
  for (int stage = 1; stage < s.plan.pp; ++stage) {
    MemoryBreakdown m = memory_per_gpu(s, stage);
    if (m.total > best.total) best = m;
  }
  return best;
}

std::string memory_verdict(const MemoryBreakdown& m) {
  if (m.fits) return fmt::format("fits: {:.1f} GiB of {:.1f} GiB (stage {})", m.total / kGiB, m.capacity / kGiB, m.stage);
  double largest = 0;
  for (const MemoryComponent& c : m.components())
    if (c.name == m.overflow_component) largest = c.bytes;
  return fmt::format("OOM: {} overflow HBM ({:.1f} GiB) by {:.1f} GiB on stage {}: total {:.1f} GiB, of which {} "
                     "{:.1f} GiB (the largest part)",
                     m.overflow_component, m.capacity / kGiB, m.overflow_bytes / kGiB, m.stage, m.total / kGiB,
                     m.overflow_component, largest / kGiB);
}

}  // namespace tpsim
