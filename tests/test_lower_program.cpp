// The lowering's structure: mesh ranks, the collectives each plan implies (kind, dim, group,
// bytes), shard descriptions, costs, and the errors for plans that do not divide the model.
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>

#include "lower/program_builder.hpp"
#include "test_numerics_scenario.hpp"

using namespace tpsim;

namespace {

std::vector<const Op*> collectives(const Program& p, CollectiveOp kind, int micro_batch_layer_filter = -1) {
  (void)micro_batch_layer_filter;
  std::vector<const Op*> out;
  for (const Op& o : p.ops)
    if (o.kind == OpKind::collective && o.collective.op == kind) out.push_back(&o);
  return out;
}

ProgramSet lower_layer(const Scenario& s, bool backward) {
  LowerOptions lo;
  lo.scope = LowerScope::layer;
  lo.backward = backward;
  return lower(s, lo);
}

Scenario tiny(int tp, bool sp = false, PlanPreset preset = PlanPreset::megatron) {
  test::Tiny t;
  t.tp = tp;
  t.sp = sp;
  t.preset = preset;
  return test::tiny_scenario(t);
}

}  // namespace

TEST_CASE("ranks follow mesh_order, tp innermost by default") {
  PlanSpec p;
  p.tp = 2, p.dp = 2, p.pp = 2;
  CHECK(lowering::rank_of(p, 1, 0, 0) == 1);
  CHECK(lowering::rank_of(p, 0, 1, 0) == 2);
  CHECK(lowering::rank_of(p, 0, 0, 1) == 4);
  CHECK(lowering::rank_coords(p, 6).tp_group == std::vector<int>{6, 7});
  p.mesh_order = {"dp", "tp", "pp"};
  CHECK(lowering::rank_of(p, 1, 0, 0) == 2);
  const auto c = lowering::rank_coords(p, 5);
  CHECK(c.dp_index == 1);
  CHECK(c.tp_index == 0);
  CHECK(c.pp_index == 1);
  CHECK(c.tp_group == std::vector<int>{5, 7});
}

TEST_CASE("megatron: one all-reduce per block forward, their conjugates in backward") {
  const Scenario s = tiny(4);
  const ProgramSet fwd = lower_layer(s, false);
  REQUIRE(fwd.ranks.size() == 4);
  const auto ar = collectives(fwd.ranks[2], CollectiveOp::all_reduce);
  REQUIRE(ar.size() == 2);
  CHECK(ar[0]->name == "layer0.attn.proj.all_reduce");
  CHECK(ar[1]->name == "layer0.mlp.fc2.all_reduce");
  CHECK(ar[0]->collective.group == std::vector<int>{0, 1, 2, 3});
  CHECK(ar[0]->collective.bytes == 24 * 48 * 2);   // [T, h] bf16, the full buffer
  CHECK(ar[0]->stream == Stream::tp_comm);
  CHECK(collectives(fwd.ranks[2], CollectiveOp::all_gather).empty());

  const ProgramSet both = lower_layer(s, true);
  const auto ar2 = collectives(both.ranks[0], CollectiveOp::all_reduce);
  REQUIRE(ar2.size() == 4);   // + the backward of each block's copy (input of the column-parallel linears)
  CHECK(ar2[2]->name == "layer0.norm2.copy_to_tp.bwd_all_reduce");
  CHECK(ar2[3]->name == "layer0.norm1.copy_to_tp.bwd_all_reduce");
}

TEST_CASE("sequence parallelism: all-gather before, reduce-scatter after, conjugates in backward") {
  const Scenario s = tiny(4, true);
  const Program fwd = lower_layer(s, false).ranks[1];
  const auto ag = collectives(fwd, CollectiveOp::all_gather), rs = collectives(fwd, CollectiveOp::reduce_scatter);
  REQUIRE(ag.size() == 2);
  REQUIRE(rs.size() == 2);
  CHECK(collectives(fwd, CollectiveOp::all_reduce).empty());
  for (const Op* o : ag) CHECK(o->collective.dim == 0);
  CHECK(ag[0]->collective.bytes == 24 * 48 * 2);   // the gathered output
  CHECK(rs[0]->collective.bytes == 24 * 48 * 2);   // the un-scattered input
  CHECK(fwd.tensors.at("layer0.norm1.out").rows == 6);   // norms run on [T/tp, h]
  CHECK(fwd.tensors.at("layer0.norm1.out").split_dim == 0);

  const Program both = lower_layer(s, true).ranks[1];
  CHECK(collectives(both, CollectiveOp::all_gather).size() == 4);
  CHECK(collectives(both, CollectiveOp::reduce_scatter).size() == 4);
  // Replicated norm weights see only their sequence shard: weight and bias gradients all-reduced.
  CHECK(collectives(both, CollectiveOp::all_reduce).size() == 4);
}

TEST_CASE("naive: every linear column-parallel with an all-gather of its output") {
  const Program p = lower_layer(tiny(2, false, PlanPreset::naive), false).ranks[0];
  const auto ag = collectives(p, CollectiveOp::all_gather);
  REQUIRE(ag.size() == 4);
  for (const Op* o : ag) CHECK(o->collective.dim == 1);
  CHECK(collectives(p, CollectiveOp::all_reduce).empty());
  CHECK(p.tensors.at("layer0.attn.qkv").interleave == 1);   // gathered qkv: a plain column block
}

TEST_CASE("qkv is a strided shard over q, k, v; partial sums have no global name") {
  test::Tiny t;
  t.tp = 2;
  t.kv_heads = 4;
  const Program p = lower_layer(test::tiny_scenario(t), false).ranks[1];
  const TensorDesc& w = p.tensors.at("layer0.attn.qkv");
  CHECK(w.is_weight);
  CHECK(w.split_dim == 1);
  CHECK(w.part == 1);
  CHECK(w.interleave == 3);
  CHECK(w.interleave_cols == std::vector<int64_t>{48, 16, 16});
  CHECK(w.cols == 40);
  CHECK(p.tensors.at("layer0.mlp.fc2.out.partial").global_name.empty());
  CHECK(p.tensors.at("layer0.mlp.fc2.out").global_name == "layer0.mlp.fc2.out");
  const Op& qkv = *std::find_if(p.ops.begin(), p.ops.end(), [](const Op& o) { return o.name == "layer0.attn.qkv.fwd"; });
  CHECK(qkv.gemm.m == 24);
  CHECK(qkv.gemm.k == 48);
  CHECK(qkv.gemm.n == 40);
  CHECK(qkv.flops == 2.0 * 24 * 48 * 40);
  CHECK(qkv.hbm_bytes == (24 * 48 + 48 * 40 + 24 * 40) * 2.0);
  for (const Op& o : p.ops)
    if (o.kind == OpKind::kernel && o.kernel.fn != "slice") CHECK(o.hbm_bytes > 0);
}

TEST_CASE("explicit mappings are obeyed as written; custom partitions derive their collectives") {
  Scenario s = tiny(2);
  s.plan.mappings["mlp.fc2"].reduce_output = false;
  CHECK(collectives(lower_layer(s, false).ranks[0], CollectiveOp::all_reduce).size() == 1);

  Scenario c = tiny(2);
  c.plan.preset = PlanPreset::custom;
  c.plan.partitions["mlp.fc1"] = {"tp", ""};   // row-parallel fc1: split its input, reduce its output
  c.plan.partitions["mlp.fc2"] = {"", "tp"};   // column-parallel fc2: gather for the residual
  const Program p = lower_layer(c, false).ranks[0];
  bool split = false;
  for (const Op& o : p.ops) split |= o.name == "layer0.norm2.split" && o.kernel.fn == "slice";
  CHECK(split);
  CHECK(collectives(p, CollectiveOp::all_reduce).size() == 1);   // after fc1
  CHECK(collectives(p, CollectiveOp::all_gather).size() == 1);   // after fc2
  c.plan.partitions["mlp.fc1"] = {"dp", ""};
  CHECK_THROWS_AS(lower_layer(c, false), std::invalid_argument);
}

TEST_CASE("plans that do not divide the model are rejected with the numbers") {
  Scenario s = tiny(2);
  s.model.kv_heads = 3;
  s.model.heads = 9;
  s.model.hidden = 36;
  try {
    lower_layer(s, false);
    FAIL("accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("heads 9 is not divisible by plan.tp 2") != std::string::npos);
  }
}

TEST_CASE("unsharded and proxy_scale") {
  Scenario s;
  s.model.hidden = 4096, s.model.ffn = 11008, s.model.heads = 32, s.model.kv_heads = 8, s.model.vocab = 32000;
  s.model.layers = 32;
  s.plan.tp = 8, s.plan.sp = true, s.plan.pp = 2;
  s.workload.seq = 4096;
  const Scenario u = unsharded(s);
  CHECK(u.plan.tp == 1);
  CHECK_FALSE(u.plan.sp);
  CHECK(u.plan.pp == 2);
  CHECK(u.model.hidden == 4096);
  const Scenario p = proxy_scale(s);
  CHECK(p.model.kv_heads == 8);
  CHECK(p.model.heads == 32);   // keeps 4 query heads per kv head
  CHECK(p.model.hidden == 256);
  CHECK(p.model.head_dim() == 8);
  CHECK(p.model.ffn % 8 == 0);
  CHECK(p.model.ffn == 688);    // 11008 / 16
  CHECK(p.model.vocab == 2000); // 32000 / 16
  CHECK(p.workload.seq % 8 == 0);
  CHECK(p.workload.seq <= 32);
  CHECK(p.model.layers == 32);
  CHECK_NOTHROW(lower(p, {LowerScope::stack, true}));
}
