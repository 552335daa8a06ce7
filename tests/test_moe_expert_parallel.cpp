// Mixture-of-experts under expert parallelism: every EP plan computes what one GPU holding every
// expert computes for the EP group's tokens (fp32 and bf16, forward and backward), planted bugs
// are caught and named, and the all-to-all, buffers and memory are what the closed forms say.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "relative.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/run.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

// A Mixtral-shaped model small enough to run: SwiGLU experts, GQA, RMSNorm, 8 experts, top 2.
Scenario tiny_moe(int tp, int dp, int ep, int pp = 1, bool normalize = true, int64_t experts = 8, int64_t top_k = 2) {
  Scenario s;
  s.name = "tiny-moe";
  ModelSpec& m = s.model;
  m.name = "tiny-moe";
  m.heads = 8;
  m.kv_heads = 2;
  m.hidden = 32;
  m.ffn = 48;
  m.vocab = 96;
  m.layers = pp;
  m.max_seq = 16;
  m.activation = Activation::swiglu;
  m.norm = Norm::rmsnorm;
  m.moe.experts = experts;
  m.moe.top_k = top_k;
  m.moe.expert_ffn = 48;
  m.moe.normalize_top_k = normalize;
  s.plan.tp = tp;
  s.plan.sp = tp > 1;
  s.plan.dp = dp;
  s.plan.ep = ep;
  s.plan.pp = pp;
  s.workload.seq = 16;
  s.workload.micro_batch = 1;
  s.workload.global_batch = dp;
  return dropless_numerics(s);
}

LowerOptions stack_fwd_bwd() {
  LowerOptions lo;
  lo.scope = LowerScope::stack;
  lo.backward = true;
  return lo;
}

NumericsReport check(const Scenario& s, DType dtype, const NumericsOptions& extra = {}) {
  NumericsOptions no = extra;
  no.dtype = dtype;
  return verify(lower(s, stack_fwd_bwd()), lower(unsharded(s), stack_fwd_bwd()), no);
}

bool checked(const NumericsReport& r, const std::string& tensor) {
  return std::any_of(r.checks.begin(), r.checks.end(), [&](const TensorCheck& c) { return c.tensor == tensor; });
}

// The first failure is at `op` writing `tensor`, far above its tolerance.
void expect_named_failure(const NumericsReport& r, const std::string& op, const std::string& tensor) {
  REQUIRE_FALSE(r.ok);
  const TensorCheck* f = r.first_failure();
  REQUIRE(f != nullptr);
  INFO(describe(*f));
  CHECK(f->op == op);
  CHECK(f->tensor == tensor);
  CHECK(f->max_rel > 10 * f->tolerance);
}

}  // namespace

TEST_CASE("EP plans compute the unsharded model over the EP group's tokens, forward and backward") {
  struct Plan {
    int tp, dp, ep, pp;
  };
  for (const Plan p : {Plan{1, 4, 4, 1}, Plan{1, 4, 2, 1}, Plan{2, 2, 2, 1}, Plan{2, 4, 4, 1}, Plan{1, 2, 2, 2}})
    for (DType dtype : {DType::fp32, DType::bf16}) {
      const Scenario s = tiny_moe(p.tp, p.dp, p.ep, p.pp);
      CAPTURE(p.tp);
      CAPTURE(p.dp);
      CAPTURE(p.ep);
      CAPTURE(p.pp);
      CAPTURE(to_string(dtype));
      const NumericsReport r = check(s, dtype);
      if (!r.ok) FAIL(describe(*r.first_failure()));
      // The block's output, an expert's weight gradient (summed over every source's tokens) and the
      // router's were compared, not skipped.
      const int last = p.pp - 1;
      CHECK(checked(r, "layer0.moe.out"));
      CHECK(checked(r, "layer" + std::to_string(last) + ".moe.expert0.fc1.grad"));
      CHECK(checked(r, "layer0.moe.router.grad"));
    }
}

TEST_CASE("OLMoE's un-normalised top-k weights and a fine-grained 16-expert top-4 plan also match") {
  for (DType dtype : {DType::fp32, DType::bf16}) {
    const NumericsReport r = check(tiny_moe(2, 4, 4, 1, /*normalize=*/false, 16, 4), dtype);
    if (!r.ok) FAIL(describe(*r.first_failure()));
  }
}

TEST_CASE("a shared expert beside the routed ones (Qwen2-MoE's, sigmoid-gated) also matches") {
  for (DType dtype : {DType::fp32, DType::bf16})
    for (int tp : {1, 2}) {
      Scenario s = tiny_moe(tp, 4, 2, 1, /*normalize=*/false);
      s.model.moe.shared_expert_ffn = 64;
      s.model.moe.shared_expert_gate = true;
      CAPTURE(tp);
      CAPTURE(to_string(dtype));
      const NumericsReport r = check(s, dtype);
      if (!r.ok) FAIL(describe(*r.first_failure()));
      CHECK(checked(r, "layer0.moe.shared_expert.gated"));
      CHECK(checked(r, "layer0.moe.shared_expert.sigmoid_gate.grad"));
      CHECK(checked(r, "layer0.moe.routed_plus_shared.out"));
    }
}

TEST_CASE("planted: a wrong combine permutation (the experts' outputs joined in the wrong order)") {
  const Scenario s = tiny_moe(1, 2, 2);   // 4 experts per rank
  ProgramSet sharded = lower(s, stack_fwd_bwd());
  int planted = 0;
  for (Program& p : sharded.ranks)
    for (Op& op : p.ops)
      if (op.name == "layer0.moe.experts.join") std::swap(op.inputs[0], op.inputs[1]), ++planted;
  REQUIRE(planted == 2);
  expect_named_failure(verify(sharded, lower(unsharded(s), stack_fwd_bwd()), {}), "layer0.moe.combine", "layer0.moe.out");
}

TEST_CASE("planted: a router that differs across ranks (rank 1's router weights are not the others')") {
  const Scenario s = tiny_moe(1, 4, 4);
  ProgramSet sharded = lower(s, stack_fwd_bwd());
  sharded.ranks[1].tensors.at("layer0.moe.router").global_name = "layer0.moe.router.unsynchronised";
  const NumericsReport r = verify(sharded, lower(unsharded(s), stack_fwd_bwd()), {});
  expect_named_failure(r, "layer0.moe.router.fwd", "layer0.moe.router.out");
  CHECK(r.first_failure()->rank == 1);
  // Its choices are named too: they differ by more than a near-tie.
  CHECK(std::any_of(r.checks.begin(), r.checks.end(),
                    [](const TensorCheck& c) { return !c.ok && c.tensor == "layer0.moe.experts (choices)" && c.rank == 1; }));
}

TEST_CASE("planted: the dispatch all-to-all delivers a block to the wrong rank") {
  const Scenario s = tiny_moe(1, 4, 4);
  NumericsOptions planted;
  planted.schedule_hook = [](const Op& op, Schedule& schedule) {
    if (op.name != "layer0.moe.dispatch.all_to_all") return;
    for (Round& round : schedule.rounds)
      for (Transfer& t : round.transfers)
        if (t.src != t.dst) {
          t.src_chunk = (t.src_chunk + 1) % schedule.chunks;
          return;
        }
  };
  const NumericsReport r = check(s, DType::fp32, planted);
  REQUIRE_FALSE(r.ok);
  INFO(describe(*r.first_failure()));
  CHECK(r.first_failure()->tensor == "layer0.moe.out");
}

TEST_CASE("the all-to-all moves E x C x h elements, C = ceil(load x k x T / E) slots per expert") {
  // Mixtral-8x7B's shape at 4096 tokens per micro-batch: k T / E = 2 x 4096 / 8 = 1024 tokens per
  // expert on average.
  Scenario s = tiny_moe(1, 8, 8);
  s.model.hidden = 4096;
  s.model.heads = 32;
  s.model.kv_heads = 8;
  s.model.moe.expert_ffn = s.model.ffn = 14336;
  s.model.vocab = 32000;
  s.model.layers = 1;
  s.workload.seq = 4096;
  s.workload.global_batch = 8;
  for (double load : {1.0, 1.5, 8.0 / 2.0}) {   // balanced, skewed, the busiest expert takes every token
    s.model.moe.capacity_factor = 0;
    s.workload.expert_skew = load;
    const int64_t slots = int64_t(std::ceil(load * 1024));
    const ProgramSet set = lowering::lower_training_step(s);
    int64_t bytes = -1;
    for (const Op& op : program_of(set, 0).ops)
      if (op.kind == OpKind::collective && op.collective.op == CollectiveOp::all_to_all) bytes = op.collective.bytes;
    CAPTURE(load);
    CHECK(bytes == 8 * slots * 4096 * 2);
    // What the summary reports as the slowest expert's tokens is what its GEMMs compute on.
    LowerOptions layer;
    layer.scope = LowerScope::layer;
    const ProgramSet one = lower(s, layer);
    int found = 0;
    for (const Op& op : one.ranks[0].ops)
      if (op.kind == OpKind::gemm && op.name == "layer0.moe.expert0.fc1.fwd") {
        CHECK(op.gemm.m == 8 * slots);
        ++found;
      }
    CHECK(found == 1);
    CHECK(busiest_expert_tokens(s) == 8 * slots);
  }
  // A capacity factor sets the slots whatever the skew (tokens past them are dropped).
  s.model.moe.capacity_factor = 1.25;
  s.workload.expert_skew = 3;
  const ProgramSet set = lowering::lower_training_step(s);
  const Program& p = program_of(set, 0);
  const auto a2a = std::find_if(p.ops.begin(), p.ops.end(), [](const Op& op) {
    return op.kind == OpKind::collective && op.collective.op == CollectiveOp::all_to_all;
  });
  REQUIRE(a2a != p.ops.end());
  CHECK(a2a->collective.bytes == 8 * 1280 * 4096 * 2);
  CHECK(a2a->collective.group.size() == 8);
}

TEST_CASE("memory: an EP GPU holds E/ep experts; the distributed optimizer shards them over dp/ep") {
  // Mixtral-8x7B per GPU at tp 1, ep 8: per layer qkv 4096 x 6144 + proj 4096^2 + router 4096 x 8 +
  // one expert 3 x 4096 x 14336 + two norms 2 x 4096; embedding and output 32000 x 4096 each.
  ModelSpec m = tiny_moe(1, 8, 8).model;
  m.hidden = 4096;
  m.heads = 32;
  m.kv_heads = 8;
  m.moe.expert_ffn = m.ffn = 14336;
  m.vocab = 32000;
  m.layers = 32;
  PlanSpec p;
  p.dp = 16;
  p.ep = 8;
  const double layer = 4096.0 * 6144 + 4096.0 * 4096 + 4096.0 * 8 + 3 * 4096.0 * 14336 + 2 * 4096.0;
  const double table = 32000.0 * 4096;
  CHECK(parameters_on_stage(m, p, 0) == rel(32 * layer + 2 * table + 4096, 1e-12));
  CHECK(expert_parameters_on_stage(m, p, 0) == rel(32 * 3 * 4096.0 * 14336, 1e-12));
  p.ep = 1;   // every expert on every GPU
  CHECK(expert_parameters_on_stage(m, p, 0) == rel(32 * 8 * 3 * 4096.0 * 14336, 1e-12));
}
