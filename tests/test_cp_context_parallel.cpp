// Context parallelism (ring attention with causal load balancing): every CP plan computes the
// unsharded model (fp32 and bf16, forward and backward), a missing causal offset is caught and
// named, and the KV traffic, the attention work per rank and the activation memory are what the
// closed forms say.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>

#include "relative.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

// A Llama-shaped model small enough to run: GQA (8 query heads over 2 KV heads), SwiGLU, RMSNorm.
Scenario tiny_cp(int tp, int cp, int pp = 1, int64_t seq = 32) {
  Scenario s;
  s.name = "tiny-cp";
  ModelSpec& m = s.model;
  m.name = "tiny-cp";
  m.heads = 8;
  m.kv_heads = 2;
  m.hidden = 32;
  m.ffn = 64;
  m.vocab = 96;
  m.layers = pp;
  m.max_seq = seq;
  m.activation = Activation::swiglu;
  m.norm = Norm::rmsnorm;
  s.plan.tp = tp;
  s.plan.sp = tp > 1;
  s.plan.cp = cp;
  s.plan.pp = pp;
  s.workload.seq = seq;
  s.workload.micro_batch = 2;
  s.workload.global_batch = 2;
  return s;
}

// Llama-3-8B's shapes (hidden 4096, 32 heads over 8 KV heads, FFN 14336, vocab 128256) at an 8192-token
// context, with `layers` of its layers.
void as_llama3_8b(ModelSpec& m, int64_t layers) {
  m.hidden = 4096;
  m.heads = 32;
  m.kv_heads = 8;
  m.ffn = 14336;
  m.layers = layers;
  m.vocab = 128256;
  m.max_seq = 8192;
}

LowerOptions stack_fwd_bwd() {
  LowerOptions lo;
  lo.scope = LowerScope::stack;
  lo.backward = true;
  return lo;
}

bool checked(const NumericsReport& r, const std::string& tensor) {
  return std::any_of(r.checks.begin(), r.checks.end(), [&](const TensorCheck& c) { return c.tensor == tensor; });
}

}  // namespace

TEST_CASE("CP plans compute the unsharded model: ring attention's merged blocks equal whole-sequence attention") {
  struct Plan {
    int tp, cp, pp;
  };
  for (const Plan p : {Plan{1, 2, 1}, Plan{1, 4, 1}, Plan{2, 2, 1}, Plan{2, 2, 2}})
    for (DType dtype : {DType::fp32, DType::bf16}) {
      const Scenario s = tiny_cp(p.tp, p.cp, p.pp);
      CAPTURE(p.tp);
      CAPTURE(p.cp);
      CAPTURE(p.pp);
      CAPTURE(to_string(dtype));
      NumericsOptions no;
      no.dtype = dtype;
      const NumericsReport r = verify(lower(s, stack_fwd_bwd()), lower(unsharded(s), stack_fwd_bwd()), no);
      if (!r.ok) FAIL(describe(*r.first_failure()));
      // The attention's output, its input's gradient (dq and the dk, dv that travelled home) and a
      // weight's gradient summed over the ring were compared, not skipped.
      CHECK(checked(r, "layer0.attn.core.out"));
      CHECK(checked(r, "layer0.attn.qkv.out.grad"));
      CHECK(checked(r, "layer0.attn.qkv.grad"));
    }
}

TEST_CASE("planted: a missing causal offset between CP chunks (a remote block masked as if it were local)") {
  const Scenario s = tiny_cp(1, 2);
  ProgramSet sharded = lower(s, stack_fwd_bwd());
  int planted = 0;
  for (Program& p : sharded.ranks)
    for (Op& op : p.ops)
      if (op.kind == OpKind::kernel && op.kernel.fn == "attention_block" && op.name.starts_with("layer0.") &&
          op.kernel.attrs.at("kv_rank") != op.kernel.attrs.at("q_rank"))
        op.kernel.attrs["kv_rank"] = op.kernel.attrs.at("q_rank"), ++planted;
  REQUIRE(planted == 2);
  const NumericsReport r = verify(sharded, lower(unsharded(s), stack_fwd_bwd()), {});
  REQUIRE_FALSE(r.ok);
  const TensorCheck* f = r.first_failure();
  INFO(describe(*f));
  CHECK(f->op == "layer0.attn.core.merge1");
  CHECK(f->tensor == "layer0.attn.core.out");
  CHECK(f->max_rel > 10 * f->tolerance);
}

TEST_CASE("the ring shifts each rank's keys and values cp - 1 times per layer each way, KV bytes each") {
  // Llama-3-8B's attention at seq 8192, tp 2, cp 4: a rank holds 8192 / 4 = 2048 tokens of K/tp = 4
  // KV heads of 128: 2048 x 2 x 4 x 128 x 2 B = 4 MiB per shift.
  Scenario s = tiny_cp(2, 4, 1, 8192);
  as_llama3_8b(s.model, 1);
  s.workload.micro_batch = 1;
  s.workload.global_batch = 1;
  const ProgramSet set = lowering::lower_training_step(s);
  std::map<Pass, int> shifts;
  for (const Op& op : program_of(set, 0).ops)
    if (op.kind == OpKind::collective && op.collective.op == CollectiveOp::send_recv) {
      ++shifts[op.pass];
      CHECK(op.collective.bytes == 2048 * 2 * 4 * 128 * 2);
      CHECK(op.collective.group.size() == 4);
    }
  CHECK(shifts[Pass::forward] == 3);
  CHECK(shifts[Pass::backward] == 3);
}

TEST_CASE("causal load balancing: every CP rank does the same attention work, a 1/cp share of the whole") {
  // Whole causal attention of one sequence: S (S + 1) / 2 allowed pairs, 4 d FLOPs each per head.
  const int64_t seq = 64, heads = 8, d = 4;
  const double whole = 4.0 * d * heads * double(seq) * double(seq + 1) / 2;
  for (int cp : {2, 4, 8}) {
    Scenario s = tiny_cp(1, cp, 1, seq);
    s.workload.micro_batch = 1;
    LowerOptions lo;
    lo.scope = LowerScope::layer;
    const ProgramSet set = lower(s, lo);
    for (int rank = 0; rank < cp; ++rank) {
      double flops = 0;
      for (const Op& op : set.ranks[size_t(rank)].ops)
        if (op.kind == OpKind::kernel && op.kernel.fn == "attention_block") flops += op.flops;
      CAPTURE(cp);
      CAPTURE(rank);
      CHECK(flops == rel(whole / cp, 1e-12));
    }
  }
}

TEST_CASE("memory: a CP rank keeps the activations of seq / cp tokens; its weights and optimizer are dp's") {
  Scenario s = tiny_cp(1, 1, 1, 8192);
  as_llama3_8b(s.model, 32);
  s.plan.distributed_optimizer = true;
  s.plan.dp = 2;
  s.workload.global_batch = 4;
  const MemoryBreakdown one = memory_per_gpu(s, 0);
  s.plan.cp = 2;
  const MemoryBreakdown two = memory_per_gpu(s, 0);
  CHECK(two.activations == rel(one.activations / 2, 1e-12));
  CHECK(two.weights == rel(one.weights, 1e-12));
  // The distributed optimizer shards over dp x cp (Megatron's data-parallel group with CP).
  CHECK(two.optimizer == rel(one.optimizer / 2, 1e-12));
}
