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

#include <functional>

#include "lower/program_builder.hpp"

namespace tpsim::test {

// One Program per rank from `body`, run on a builder for that rank (a piece of a model).
inline ProgramSet build(const Scenario& s, const std::function<void(lowering::ProgramBuilder&)>& body) {
  ProgramSet set;
  set.tp = s.plan.tp;
  set.pp = s.plan.pp;
  set.dp = s.plan.dp;
  for (int r = 0; r < s.plan.world(); ++r) {
    lowering::ProgramBuilder b(s, lowering::rank_coords(s.plan, r), s.workload.seq * s.workload.micro_batch);
    body(b);
    set.ranks.push_back(b.finish());
  }
  return set;
}

// The piece sharded vs unsharded.
inline NumericsReport check_piece(const Scenario& s, const std::function<void(lowering::ProgramBuilder&)>& body,
                                  DType dtype = DType::fp32, const NumericsOptions& extra = {}) {
  NumericsOptions no = extra;
  no.dtype = dtype;
  return verify(build(s, body), build(unsharded(s), body), no);
}

// Forward of `forward` from an input in the residual stream's layout, then backward from a seeded
// output gradient, naming the input's gradient.
inline std::function<void(lowering::ProgramBuilder&)> fwd_bwd(
    std::function<lowering::Value(lowering::ProgramBuilder&, const lowering::Value&, lowering::Tape&)> forward,
    int64_t in_cols, bool backward = true) {
  return [=](lowering::ProgramBuilder& b) {
    lowering::Tape tape;
    const lowering::Value x = b.input("x", in_cols, b.stream_layout());
    const lowering::Value y = forward(b, x, tape);
    if (!backward) return;
    b.backward(tape, y, b.gradient_seed(y));
    b.gradient(x);
  };
}

// Checks that have a reference and a counted sum of them, for asserting coverage.
inline bool has_check(const NumericsReport& r, const std::string& tensor) {
  for (const auto& c : r.checks)
    if (c.tensor == tensor) return true;
  return false;
}

}  // namespace tpsim::test
