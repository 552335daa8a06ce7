// Model FLOPs per step: Narayanan et al.'s closed form with full recomputation, and the same count
// with the three layer passes a step runs without it.
#include <doctest/doctest.h>

#include "relative.hpp"

#include "tpsim/memory.hpp"

using namespace tpsim;

TEST_CASE("model FLOPs: 96Bslh^2(1 + s/6h + V/16lh) with full recompute, 72Bslh^2(1 + s/6h) + 6BsVh without") {
  ModelSpec m;   // GPT-3 175B (Narayanan et al. 2021)
  m.hidden = 12288;
  m.ffn = 4 * 12288;
  m.heads = 96;
  m.kv_heads = 96;
  m.layers = 96;
  m.vocab = 51200;
  m.max_seq = 2048;
  const double B = 1536, s = 2048, l = 96, h = 12288, V = 51200;
  const double full = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
  const double none = 72 * B * s * l * h * h * (1 + s / (6 * h)) + 6 * B * s * V * h;
  CHECK(model_flops_per_step(m, 1536, 2048, Recompute::full) == rel(full, 1e-12));
  CHECK(model_flops_per_step(m, 1536, 2048, Recompute::none) == rel(none, 1e-12));
  CHECK(model_flops_per_step(m, 1536, 2048, Recompute::selective) == rel(none, 1e-12));
}
