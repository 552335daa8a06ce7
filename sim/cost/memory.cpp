// Memory per GPU: weights, gradients, optimizer states, activations, KV cache and a fixed runtime
// reserve, for the GPU of each pipeline stage (TP and DP ranks of one stage hold the same amount).
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "tpsim/memory.hpp"

namespace tpsim {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

// Bytes per parameter in mixed-precision Adam (Megatron-LM): bf16 weight, fp32 main gradient, and
// fp32 master weight + Adam first and second moments.
constexpr double kWeightBytes = 2, kGradBytes = 4, kOptimizerBytes = 12;

// Parameters of one transformer layer and how many of them tensor parallelism splits.
struct LayerParams {
  double split = 0;        // linear weights (qkv, proj, fc1, gate, fc2): divided by tp
  double replicated = 0;   // norm scales (and biases): every TP rank holds them whole
};

LayerParams layer_params(const ModelSpec& m) {
  const double h = double(m.hidden), hd = double(m.head_dim());
  const double qkv = h * double(m.heads + 2 * m.kv_heads) * hd;
  const double proj = double(m.heads) * hd * h;
  const double mlp = double(m.activation == Activation::swiglu ? 3 : 2) * h * double(m.ffn);
  const double norm = (m.norm == Norm::layernorm ? 2 : 1) * h;   // LayerNorm has gamma and beta
  return {qkv + proj + mlp, 2 * norm};
}

int64_t layers_on_stage(const ModelSpec& m, const PlanSpec& p) { return m.layers / std::max(1, p.pp); }

}  // namespace

double parameters_on_stage(const ModelSpec& m, const PlanSpec& p, int stage) {
  const LayerParams lp = layer_params(m);
  const double t = std::max(1, p.tp);
  double params = double(layers_on_stage(m, p)) * (lp.split / t + lp.replicated);
  const double vocab_shard = double(m.vocab) * double(m.hidden) / t;   // vocab-parallel [V/t, h]
  if (stage == 0) params += vocab_shard;                               // embedding
  if (stage == p.pp - 1) params += vocab_shard + (m.norm == Norm::layernorm ? 2 : 1) * double(m.hidden);
  return params;
}

double activation_bytes_per_layer(const ModelSpec& m, const PlanSpec& p, int64_t seq, int64_t micro_batch) {
  const double s = double(seq), b = double(micro_batch), h = double(m.hidden), a = double(m.heads);
  const double t = std::max(1, p.tp);
  const bool sp = p.sp && p.tp > 1;
  if (p.recompute == Recompute::full) return 2 * s * b * h / (sp ? t : 1);   // the layer's input only
  const double scores = p.recompute == Recompute::selective ? 0 : 5 * a * s / h;
  if (sp || p.tp == 1) return s * b * h * (34 + scores) / t;
  return s * b * h * (10 + 24 / t + scores / t);
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
          {"weights", weights, fmt::format("{:.3g} params x 2 B (bf16)", parameters)},
          {"gradients", gradients, "4 B/param (fp32 main gradients)"},
          {"optimizer", optimizer, "fp32 master weights + Adam m, v (12 B/param, / dp if distributed)"},
          {"activations", activations,
           fmt::format("{} in-flight micro-batches x {}/layer", in_flight_micro_batches,
                       fmt::format("{:.1f} MiB", activation_bytes_per_layer / (1024.0 * 1024)))},
          {"kv_cache", kv_cache, "2 x layers x batch x context x kv_heads/tp x head_dim x 2 B"}};
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
  const double layers = double(layers_on_stage(m, p));
  const double t = std::max(1, p.tp);
  if (w.kind == WorkloadKind::training) {
    r.gradients = r.parameters * kGradBytes;
    r.optimizer = r.parameters * kOptimizerBytes / (p.distributed_optimizer ? std::max(1, p.dp) : 1);
    const int64_t micro_batches = std::max<int64_t>(1, w.global_batch / std::max<int64_t>(1, w.micro_batch * p.dp));
    const double in_flight = in_flight_micro_batches(p.pp, stage, p.virtual_stages, micro_batches);
    r.in_flight_micro_batches = int(std::ceil(in_flight));
    r.activation_bytes_per_layer = activation_bytes_per_layer(m, p, w.seq, w.micro_batch);
    r.activations = in_flight * layers * r.activation_bytes_per_layer;
    // The first stage also holds the embedding output (s*b*h, bf16) per in-flight micro-batch;
    // the last stage briefly holds one micro-batch's fp32 logits for the loss (s*b*V/t*4).
    const double sbh = double(w.seq) * double(w.micro_batch) * double(m.hidden);
    if (stage == 0) r.activations += in_flight * sbh * 2 / (p.sp ? t : 1);
    if (stage == p.pp - 1) r.activations += double(w.seq) * double(w.micro_batch) * double(m.vocab) / t * 4;
    // Full recompute rebuilds one layer's whole activations before its backward: a transient.
    if (p.recompute == Recompute::full) {
      PlanSpec kept = p;
      kept.recompute = Recompute::none;
      r.activations += activation_bytes_per_layer(m, kept, w.seq, w.micro_batch);
    }
  } else {
    // Inference: the KV cache for the whole context, plus one layer's working set during prefill
    // (flash attention keeps no s^2 scores: 34*s*b*h/t) and the last token's logits.
    const double context = double(w.prompt + w.generate);
    const double kv_width = double(m.kv_heads) / t * double(m.head_dim());
    r.kv_cache = 2 * layers * double(w.batch) * context * kv_width * dtype_bytes(m.dtype);
    r.activations = double(w.prompt) * double(w.batch) * double(m.hidden) * 34 / t +
                    double(w.batch) * double(m.vocab) / t * 4;
    r.activation_bytes_per_layer = r.activations;
    r.in_flight_micro_batches = 1;
  }
  r.total = 0;
  for (const MemoryComponent& c : r.components()) {
    r.total += c.bytes;
    if (r.fits && r.capacity > 0 && r.total > r.capacity) {
      r.fits = false;
      r.overflow_component = c.name;
    }
  }
  if (!r.fits) r.overflow_bytes = r.total - r.capacity;
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
  return fmt::format("OOM: {} overflow HBM ({:.1f} GiB) by {:.1f} GiB on stage {} (total {:.1f} GiB)",
                     m.overflow_component, m.capacity / kGiB, m.overflow_bytes / kGiB, m.stage, m.total / kGiB);
}

}  // namespace tpsim
