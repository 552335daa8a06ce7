// Memory per GPU and model FLOPs: closed forms from Korthikanti et al. 2022, Megatron-LM's optimizer
// accounting and Narayanan et al. 2021, checked on hand-built GPT specs.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <cmath>
#include <fmt/format.h>

#include "tpsim/memory.hpp"

using namespace tpsim;

namespace {

ModelSpec gpt(int64_t h, int64_t heads, int64_t layers) {
  ModelSpec m;
  m.name = "gpt";
  m.hidden = h;
  m.ffn = 4 * h;
  m.heads = m.kv_heads = heads;
  m.layers = layers;
  m.vocab = 51200;
  m.max_seq = 2048;
  return m;
}

Scenario training(ModelSpec m, int tp, int pp, int dp, int64_t global_batch) {
  Scenario s;
  s.model = m;
  s.plan.tp = tp;
  s.plan.pp = pp;
  s.plan.dp = dp;
  s.workload.kind = WorkloadKind::training;
  s.workload.global_batch = global_batch;
  s.workload.micro_batch = 1;
  s.workload.seq = 2048;
  s.topology.gpu.hbm_bytes = 80e9;
  return s;
}

}  // namespace

TEST_CASE("model FLOPs equal Narayanan's closed form for a GPT") {
  for (auto [h, a, l] : {std::tuple{2304, 24, 24}, std::tuple{8192, 64, 48}, std::tuple{12288, 96, 96}}) {
    const ModelSpec m = gpt(h, a, l);
    const double B = 1536, s = 2048, V = 51200;
    const double F = 96 * B * s * l * double(h) * h * (1 + s / (6.0 * h) + V / (16.0 * l * h));
    CHECK(model_flops_per_step(m, 1536, 2048) == rel(F, 1e-12));
  }
}

TEST_CASE("GQA and SwiGLU layers count their actual weight shapes") {
  ModelSpec m = gpt(4096, 32, 1);
  m.kv_heads = 8;
  m.ffn = 14336;
  m.activation = Activation::swiglu;
  const double h = 4096, tokens = 10, s = 2048;
  const double weights = h * (32 + 16) * 128 + h * h + 3 * h * 14336;
  CHECK(layer_forward_flops(m, 10, 2048) == rel(tokens * (2 * weights + 4 * s * h)));
}

TEST_CASE("unfused attention: activation bytes per layer follow Korthikanti et al. for every TP / SP / recompute case") {
  const ModelSpec m = gpt(12288, 96, 96);
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  const AttentionKernel unfused = AttentionKernel::unfused;
  PlanSpec p;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) == rel(s * b * h * (34 + 5 * a * s / h)));
  p.tp = 8;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) ==
        rel(s * b * h * (10 + 24 / t + 5 * a * s / (h * t))));
  p.sp = true;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) == rel(s * b * h * (34 + 5 * a * s / h) / t));
  p.recompute = Recompute::selective;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) == rel(s * b * h * 34 / t));
  p.recompute = Recompute::full;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) == rel(2 * s * b * h / t));
  p.sp = false;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1, unfused) == rel(2 * s * b * h));
}

TEST_CASE("unfused attention against data/reference/korthikanti_2022_tables3-4.md") {
  // Table 3's models (heads, hidden, layers, TP, micro-batch; s = 2048) and the file's memory line:
  // "Activation memory w/ selective+SP = 34*s*b*h*L/t bytes" (per GPU, L layers). Stated exactly.
  struct Row { int64_t heads, hidden, layers, tp, micro_batch; };
  for (const Row r : {Row{64, 6144, 48, 8, 4}, Row{96, 12288, 96, 8, 1}, Row{128, 20480, 105, 8, 1},
                      Row{160, 25600, 128, 8, 1}}) {
    CAPTURE(r.hidden);
    const ModelSpec m = gpt(r.hidden, r.heads, r.layers);
    PlanSpec p;
    p.tp = int(r.tp);
    p.sp = true;
    p.recompute = Recompute::selective;
    const double expected = 34.0 * 2048 * double(r.micro_batch) * double(r.hidden) * double(r.layers) / double(r.tp);
    const double got = double(r.layers) * activation_bytes_per_layer(m, p, 2048, r.micro_batch, AttentionKernel::unfused);
    CHECK(std::abs(got - expected) <= 1e-12 * expected);
  }
  // Table 4's model (22B, TP 8, micro-batch 4): "together [SP and selective recompute] ... <20% of
  // TP baseline" -- the baseline being TP without SP or recomputation.
  const ModelSpec m22 = gpt(6144, 64, 48);
  PlanSpec tp8;
  tp8.tp = 8;
  const double baseline = activation_bytes_per_layer(m22, tp8, 2048, 4, AttentionKernel::unfused);
  PlanSpec both = tp8;
  both.sp = true;
  both.recompute = Recompute::selective;
  CHECK(activation_bytes_per_layer(m22, both, 2048, 4, AttentionKernel::unfused) < 0.20 * baseline);
}

TEST_CASE("fused (flash) attention keeps no scores, only fp32 softmax statistics split over tp") {
  // By hand, 22B layer (h 6144, 64 heads), s 2048, b 4, TP 8 with SP, no recomputation:
  //   34*s*b*h/t = 34 * 2048*4*6144 / 8 = 34 * 50,331,648 / 8 = 213,909,504 B
  //   statistics 4*s*b*a/t = 4 * 2048*4*64 / 8                  =     262,144 B
  //   total                                                      = 214,171,648 B
  // (unfused would add 5*a*s/h*s*b*h/t = 5*64*2048 * 2048*4 / 8 = 671,088,640 B of scores).
  const ModelSpec m = gpt(6144, 64, 48);
  PlanSpec p;
  p.tp = 8;
  p.sp = true;
  const double fused = activation_bytes_per_layer(m, p, 2048, 4, AttentionKernel::fused);
  CHECK(std::abs(fused - 214171648.0) <= 1e-12 * 214171648.0);
  const double unfused = activation_bytes_per_layer(m, p, 2048, 4, AttentionKernel::unfused);
  CHECK(std::abs(unfused - (214171648.0 - 262144.0 + 671088640.0)) <= 1e-12 * unfused);
  // Without SP (by hand): s*b*h*(10 + 24/8) = 50,331,648 * 13 = 654,311,424 B, + 262,144 B statistics.
  p.sp = false;
  const double no_sp = activation_bytes_per_layer(m, p, 2048, 4, AttentionKernel::fused);
  CHECK(std::abs(no_sp - 654573568.0) <= 1e-12 * 654573568.0);
  // Selective recomputation recomputes the core attention: neither scores nor statistics are kept.
  p.sp = true;
  p.recompute = Recompute::selective;
  CHECK(activation_bytes_per_layer(m, p, 2048, 4, AttentionKernel::fused) ==
        activation_bytes_per_layer(m, p, 2048, 4, AttentionKernel::unfused));
}

TEST_CASE("memory follows the cost model's attention switch: gpu.attention_score_bytes") {
  Scenario s = training(gpt(6144, 64, 48), 8, 1, 1, 4);
  s.plan.sp = true;
  s.workload.micro_batch = 4;
  CHECK(attention_kernel(s.topology.gpu) == AttentionKernel::fused);   // 0, the preset default
  CHECK(std::abs(activation_bytes_per_layer(s) - 214171648.0) <= 1e-12 * 214171648.0);
  const MemoryBreakdown fused = memory_per_gpu(s, 0);
  CHECK(fused.activation_bytes_per_layer == activation_bytes_per_layer(s));
  s.topology.gpu.attention_score_bytes = 24;   // Megatron-LM 2021's unfused softmax + dropout
  CHECK(attention_kernel(s.topology.gpu) == AttentionKernel::unfused);
  const MemoryBreakdown unfused = memory_per_gpu(s, 0);
  CHECK(unfused.activation_bytes_per_layer == activation_bytes_per_layer(s));
  // 1 micro-batch in flight (pp 1), 48 layers: the difference is 48 layers of scores less statistics.
  const double per_layer = 671088640.0 - 262144.0;
  CHECK(std::abs((unfused.activations - fused.activations) - 48 * per_layer) <= 1e-9 * 48 * per_layer);
}

TEST_CASE("1F1B: stage i holds pp - i micro-batches; interleaving adds (p-1)/v on the first stage") {
  CHECK(in_flight_micro_batches(8, 0, 1, 64) == 8);
  CHECK(in_flight_micro_batches(8, 7, 1, 64) == 1);
  CHECK(in_flight_micro_batches(8, 0, 1, 3) == 3);   // fewer micro-batches than stages
  // Korthikanti et al.: the interleaved schedule's first stage holds L * (1 + (p-1)/(p*v)) layers.
  CHECK(in_flight_micro_batches(8, 0, 4, 64) == rel(8 + 7.0 / 4));
}

TEST_CASE("mixed-precision Adam: 18 B/param, or 6 + 12/dp with the distributed optimizer") {
  Scenario s = training(gpt(4096, 32, 32), 1, 1, 8, 64);
  MemoryBreakdown m = memory_per_gpu(s, 0);
  CHECK((m.weights + m.gradients + m.optimizer) / m.parameters == rel(18));
  s.plan.distributed_optimizer = true;
  m = memory_per_gpu(s, 0);
  CHECK((m.weights + m.gradients + m.optimizer) / m.parameters == rel(6 + 12.0 / 8));
  // An fp16 model keeps fp16 main gradients (Megatron's accumulate_allreduce_grads_in_fp32 defaults
  // off for --fp16): 2 + 2 + 12 = 16 B/param.
  s.plan.distributed_optimizer = false;
  s.model.dtype = DType::fp16;
  m = memory_per_gpu(s, 0);
  CHECK((m.weights + m.gradients + m.optimizer) / m.parameters == rel(16));
  CHECK(m.components()[1].detail.ends_with("x 2 B (fp16)"));
  CHECK(m.components()[2].detail == "2 B/param (fp16 main gradients)");
}

TEST_CASE("parameters on stages add up to the whole model and TP divides the linears") {
  const ModelSpec m = gpt(4096, 32, 32);
  PlanSpec p;
  p.pp = 4;
  double total = 0;
  for (int stage = 0; stage < 4; ++stage) total += parameters_on_stage(m, p, stage);
  const double h = 4096;
  const double layer = 12 * h * h + 4 * h;                      // linears + two LayerNorms
  CHECK(total == rel(32 * layer + 2 * 51200 * h + 2 * h));
  p.pp = 1;
  p.tp = 8;
  CHECK(parameters_on_stage(m, p, 0) == rel(32 * (12 * h * h / 8 + 4 * h) + 2 * 51200 * h / 8 + 2 * h));
}

TEST_CASE("GPT-3 175B on one GPU: an OOM whose largest part is the optimizer states (12 B/param)") {
  Scenario s = training(gpt(12288, 96, 96), 1, 1, 1, 1);
  MemoryBreakdown m = peak_memory(s);
  CHECK_FALSE(m.fits);
  CHECK(m.overflow_component == "optimizer");   // 12 B/param against 2 (weights) and 4 (gradients)
  CHECK(m.optimizer == rel(6 * m.weights));
  CHECK(m.overflow_bytes == rel(m.total - 80e9));
  CHECK(memory_verdict(m).find("OOM: optimizer overflow") == 0);
}

TEST_CASE("the OOM line names the largest component, the total and the capacity") {
  // 39B-class GPT (h 8192, 64 heads, 48 layers) on TP8, micro-batch 8, unfused attention without SP
  // or recomputation. By hand: ~4.93e9 parameters per GPU, so the states alone (18 B/param, 88.8 GB)
  // pass 80 GB while the running sum reaches the optimizer; but the activations are larger still:
  // s*b*h*(10 + 24/8 + 5*a*s/(h*8)) = 2048*8*8192*(13 + 10) = 3.09 GB per layer x 48 = 148 GB.
  Scenario s = training(gpt(8192, 64, 48), 8, 1, 1, 8);
  s.workload.micro_batch = 8;
  s.topology.gpu.attention_score_bytes = 24;
  const MemoryBreakdown m = peak_memory(s);
  CHECK_FALSE(m.fits);
  const double per_layer = 2048.0 * 8 * 8192 * (13 + 10);
  CHECK(std::abs(m.activation_bytes_per_layer - per_layer) <= 1e-12 * per_layer);
  CHECK(m.reserve + m.weights + m.gradients + m.optimizer > m.capacity);   // where the old rule stopped
  CHECK(m.activations > m.optimizer);
  CHECK(m.overflow_component == "activations");
  const std::string line = memory_verdict(m);
  CAPTURE(line);
  CHECK(line.find("OOM: activations overflow HBM (74.5 GiB)") == 0);   // 80e9 B = 74.5 GiB
  CHECK(line.find(fmt::format("total {:.1f} GiB", m.total / (1024.0 * 1024 * 1024))) != std::string::npos);
  CHECK(line.find(fmt::format("of which activations {:.1f} GiB (the largest part)",
                              m.activations / (1024.0 * 1024 * 1024))) != std::string::npos);
  CHECK(line.find("optimizer") == std::string::npos);
}

TEST_CASE("parameters follow the plan's partitions: a replicated embedding costs tp times the sharded one") {
  const ModelSpec m = gpt(4096, 32, 32);
  const double h = 4096, V = 51200;
  PlanSpec p;
  p.tp = 8;
  p.pp = 4;   // stage 0 holds the embedding, stage 1 neither embedding nor output
  const double layers = parameters_on_stage(m, p, 1);
  const double sharded = parameters_on_stage(m, p, 0) - layers;
  CHECK(std::abs(sharded - V * h / 8) <= 1e-12 * V * h);   // vocab-parallel [V/8, h]
  p.partitions["embedding"] = {"", ""};                     // embedding: [null, null]
  const double replicated = parameters_on_stage(m, p, 0) - layers;
  CHECK(std::abs(replicated - V * h) <= 1e-12 * V * h);
  CHECK(std::abs(replicated - 8 * sharded) <= 1e-12 * replicated);
  CHECK(parameters_on_stage(m, p, 1) == layers);            // the layers did not change
  // And so gradients and optimizer states: 18 B/param more for the 7/8 of the table now held.
  Scenario s = training(m, 8, 4, 1, 64);
  const MemoryBreakdown before = memory_per_gpu(s, 0);
  s.plan.partitions["embedding"] = {"", ""};
  const MemoryBreakdown after = memory_per_gpu(s, 0);
  const double states = [](const MemoryBreakdown& b) { return b.weights + b.gradients + b.optimizer; }(after) -
                        (before.weights + before.gradients + before.optimizer);
  CHECK(std::abs(states - 18 * V * h * 7 / 8) <= 1e-12 * states);
}

TEST_CASE("parameters follow the plan's partitions: replicated linears, split norms, a custom plan") {
  const ModelSpec m = gpt(4096, 32, 32);
  const double h = 4096, V = 51200;
  PlanSpec p;
  p.tp = 4;
  const double megatron = parameters_on_stage(m, p, 0);
  CHECK(megatron == rel(32 * (12 * h * h / 4 + 4 * h) + 2 * V * h / 4 + 2 * h));
  p.partitions["mlp.fc2"] = {"", ""};   // a replicated fc2 [4h, h]: each GPU holds all of it
  CHECK(parameters_on_stage(m, p, 0) - megatron == rel(32 * 4 * h * h * 3 / 4));
  p.partitions.clear();
  p.partitions["norm1"] = {"", "tp"};   // a split norm [1, h] (scale and bias): 2h/4 instead of 2h
  CHECK(megatron - parameters_on_stage(m, p, 0) == rel(32 * 2 * h * 3 / 4));
  p.partitions.clear();
  p.preset = PlanPreset::custom;        // custom with no partitions: everything replicated
  CHECK(parameters_on_stage(m, p, 0) == rel(32 * (12 * h * h + 4 * h) + 2 * V * h + 2 * h));
}

TEST_CASE("inference KV cache: 2 x layers x batch x context x kv_heads/tp x head_dim x 2 bytes") {
  Scenario s = training(gpt(8192, 64, 80), 8, 1, 1, 1);
  s.model.kv_heads = 8;
  s.workload.kind = WorkloadKind::inference;
  s.workload.batch = 16;
  s.workload.prompt = 3000;
  s.workload.generate = 1096;
  MemoryBreakdown m = memory_per_gpu(s, 0);
  CHECK(m.kv_cache == rel(2.0 * 80 * 16 * 4096 * (8 / 8) * 128 * 2));
  CHECK(m.gradients == 0);
  CHECK(m.optimizer == 0);
}

TEST_CASE("FP8 training (Transformer Engine): FP8 weight copies and their transposes, FP8 saved GEMM inputs") {
  // GPT 8192 x 48 layers at tp 8 with SP, selective recompute (no score term): of Korthikanti's
  // 34 sbh/t the linears' inputs (qkv 2, proj 2, fc1 2, fc2 8) halve in FP8: 27 sbh/t.
  Scenario s = training(gpt(8192, 64, 48), 8, 1, 1, 1);
  s.plan.sp = true;
  s.plan.recompute = Recompute::selective;
  const MemoryBreakdown bf16 = memory_per_gpu(s, 0);
  s.model.dtype = DType::fp8;
  const MemoryBreakdown fp8 = memory_per_gpu(s, 0);
  const double sbh = 2048.0 * 8192;
  CHECK(bf16.activation_bytes_per_layer == rel(34 * sbh / 8, 1e-12));
  CHECK(fp8.activation_bytes_per_layer == rel(27 * sbh / 8, 1e-12));
  // 48 layers x 12 h^2 linear weights / tp, 1 B each for the FP8 copy and its transpose.
  const double linears = 48 * 12.0 * 8192 * 8192 / 8;
  CHECK(fp8.fp8_weight_copies == rel(2 * linears, 1e-12));
  CHECK(fp8.weights - bf16.weights == rel(2 * linears, 1e-12));
  // Master weights, gradients and Adam states are the same fp32 / bf16 bytes as ever.
  CHECK(fp8.optimizer == rel(bf16.optimizer, 1e-12));
  CHECK(fp8.gradients == rel(bf16.gradients, 1e-12));
}
