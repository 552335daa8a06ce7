// Memory per GPU and model FLOPs: closed forms from Korthikanti et al. 2022, Megatron-LM's optimizer
// accounting and Narayanan et al. 2021, checked on hand-built GPT specs.
#include <doctest/doctest.h>

#include <cmath>

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
    CHECK(model_flops_per_step(m, 1536, 2048) == doctest::Approx(F).epsilon(1e-12));
  }
}

TEST_CASE("GQA and SwiGLU layers count their actual weight shapes") {
  ModelSpec m = gpt(4096, 32, 1);
  m.kv_heads = 8;
  m.ffn = 14336;
  m.activation = Activation::swiglu;
  const double h = 4096, tokens = 10, s = 2048;
  const double weights = h * (32 + 16) * 128 + h * h + 3 * h * 14336;
  CHECK(layer_forward_flops(m, 10, 2048) == doctest::Approx(tokens * (2 * weights + 4 * s * h)));
}

TEST_CASE("activation bytes per layer follow Korthikanti et al. for every TP / SP / recompute case") {
  const ModelSpec m = gpt(12288, 96, 96);
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  PlanSpec p;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) == doctest::Approx(s * b * h * (34 + 5 * a * s / h)));
  p.tp = 8;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) ==
        doctest::Approx(s * b * h * (10 + 24 / t + 5 * a * s / (h * t))));
  p.sp = true;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) == doctest::Approx(s * b * h * (34 + 5 * a * s / h) / t));
  p.recompute = Recompute::selective;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) == doctest::Approx(s * b * h * 34 / t));
  p.recompute = Recompute::full;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) == doctest::Approx(2 * s * b * h / t));
  p.sp = false;
  CHECK(activation_bytes_per_layer(m, p, 2048, 1) == doctest::Approx(2 * s * b * h));
}

TEST_CASE("1F1B: stage i holds pp - i micro-batches; interleaving adds (p-1)/v on the first stage") {
  CHECK(in_flight_micro_batches(8, 0, 1, 64) == 8);
  CHECK(in_flight_micro_batches(8, 7, 1, 64) == 1);
  CHECK(in_flight_micro_batches(8, 0, 1, 3) == 3);   // fewer micro-batches than stages
  // Korthikanti et al.: the interleaved schedule's first stage holds L * (1 + (p-1)/(p*v)) layers.
  CHECK(in_flight_micro_batches(8, 0, 4, 64) == doctest::Approx(8 + 7.0 / 4));
}

TEST_CASE("mixed-precision Adam: 18 B/param, or 6 + 12/dp with the distributed optimizer") {
  Scenario s = training(gpt(4096, 32, 32), 1, 1, 8, 64);
  MemoryBreakdown m = memory_per_gpu(s, 0);
  CHECK((m.weights + m.gradients + m.optimizer) / m.parameters == doctest::Approx(18));
  s.plan.distributed_optimizer = true;
  m = memory_per_gpu(s, 0);
  CHECK((m.weights + m.gradients + m.optimizer) / m.parameters == doctest::Approx(6 + 12.0 / 8));
}

TEST_CASE("parameters on stages add up to the whole model and TP divides the linears") {
  const ModelSpec m = gpt(4096, 32, 32);
  PlanSpec p;
  p.pp = 4;
  double total = 0;
  for (int stage = 0; stage < 4; ++stage) total += parameters_on_stage(m, p, stage);
  const double h = 4096;
  const double layer = 12 * h * h + 4 * h;                      // linears + two LayerNorms
  CHECK(total == doctest::Approx(32 * layer + 2 * 51200 * h + 2 * h));
  p.pp = 1;
  p.tp = 8;
  CHECK(parameters_on_stage(m, p, 0) == doctest::Approx(32 * (12 * h * h / 8 + 4 * h) + 2 * 51200 * h / 8 + 2 * h));
}

TEST_CASE("GPT-3 175B on one GPU is an OOM that the weights already cause") {
  Scenario s = training(gpt(12288, 96, 96), 1, 1, 1, 1);
  MemoryBreakdown m = peak_memory(s);
  CHECK_FALSE(m.fits);
  CHECK(m.overflow_component == "weights");
  CHECK(m.overflow_bytes == doctest::Approx(m.total - 80e9));
  CHECK(memory_verdict(m).find("OOM: weights overflow") == 0);
}

TEST_CASE("activations overflow first when the states fit but too many micro-batches are in flight") {
  // 7.5B-class GPT on TP8 PP4: ~1 B params per GPU = 18 GB of states; 4 in-flight micro-batches of
  // 9 layers of b=16, s=2048 without recompute do not fit in 80 GB.
  Scenario s = training(gpt(4096, 32, 36), 8, 4, 1, 256);
  s.workload.micro_batch = 16;
  MemoryBreakdown m = peak_memory(s);
  CHECK(m.stage == 0);
  CHECK(m.in_flight_micro_batches == 4);
  CHECK_FALSE(m.fits);
  CHECK(m.overflow_component == "activations");
  s.plan.recompute = Recompute::full;   // recompute is the cure
  CHECK(peak_memory(s).fits);
}

TEST_CASE("inference KV cache: 2 x layers x batch x context x kv_heads/tp x head_dim x 2 bytes") {
  Scenario s = training(gpt(8192, 64, 80), 8, 1, 1, 1);
  s.model.kv_heads = 8;
  s.workload.kind = WorkloadKind::inference;
  s.workload.batch = 16;
  s.workload.prompt = 3000;
  s.workload.generate = 1096;
  MemoryBreakdown m = memory_per_gpu(s, 0);
  CHECK(m.kv_cache == doctest::Approx(2.0 * 80 * 16 * 4096 * (8 / 8) * 128 * 2));
  CHECK(m.gradients == 0);
  CHECK(m.optimizer == 0);
}
