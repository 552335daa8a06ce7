// Small scenarios for the lowering and numerics tests, built in C++ (no YAML needed).
#pragma once

#include <string>

#include "tpsim/lower.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::test {

struct Tiny {
  int tp = 2;
  bool sp = false;
  Activation activation = Activation::gelu;
  Norm norm = Norm::layernorm;
  int64_t heads = 12, kv_heads = 12, head_dim = 4;
  int64_t ffn = 96, vocab = 120, seq = 24, micro_batch = 1, layers = 1;
  PlanPreset preset = PlanPreset::megatron;
};

inline Scenario tiny_scenario(const Tiny& t) {
  Scenario s;
  s.name = "tiny";
  s.model.name = "tiny";
  s.model.hidden = t.heads * t.head_dim;
  s.model.heads = t.heads;
  s.model.kv_heads = t.kv_heads;
  s.model.ffn = t.ffn;
  s.model.vocab = t.vocab;
  s.model.layers = t.layers;
  s.model.max_seq = t.seq;
  s.model.activation = t.activation;
  s.model.norm = t.norm;
  s.plan.tp = t.tp;
  s.plan.sp = t.sp;
  s.plan.preset = t.preset;
  s.workload.seq = t.seq;
  s.workload.micro_batch = t.micro_batch;
  return s;
}

// Lowers `s` sharded and unsharded for `scope` and compares them numerically.
inline NumericsReport check(const Scenario& s, LowerScope scope, bool backward, DType dtype = DType::fp32,
                            const NumericsOptions& extra = {}) {
  LowerOptions lo;
  lo.scope = scope;
  lo.backward = backward;
  NumericsOptions no = extra;
  no.dtype = dtype;
  return verify(lower(s, lo), lower(unsharded(s), lo), no);
}

}  // namespace tpsim::test
