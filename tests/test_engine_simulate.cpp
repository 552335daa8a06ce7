// Timing engine, programs: hand-built ProgramSets with closed-form makespans, stalls, bubbles,
// contention between concurrent collectives, link accounting, determinism.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "toy_gpu.hpp"

#include <numeric>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

Topology ideal(int gpn, int nodes, double bw, double alpha) {
  Topology t;
  t.name = "ideal";
  t.gpus_per_node = gpn;
  t.nodes = nodes;
  t.intra.bandwidth = bw;
  t.intra.latency = alpha;
  t.nic.count = gpn;
  t.nic.bandwidth = bw / 8;
  t.nic.latency = alpha / 4;
  t.network.switch_latency = alpha / 2;
  t.gpu = toy_gpu();
  return t;
}

Op gemm(int id, std::string name, std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = OpKind::gemm;
  op.name = std::move(name);
  op.deps = std::move(deps);
  op.gemm = {4096, 4096, 4096};
  op.flops = 2.0 * 4096 * 4096 * 4096;
  op.hbm_bytes = 3.0 * 4096 * 4096 * 2;
  return op;
}

Op all_reduce(int id, std::vector<int> group, int64_t bytes, std::vector<int> deps, Stream s = Stream::tp_comm) {
  Op op;
  op.id = id;
  op.kind = OpKind::collective;
  op.name = "all_reduce" + std::to_string(id);
  op.stream = s;
  op.deps = std::move(deps);
  op.collective.op = CollectiveOp::all_reduce;
  op.collective.algorithm = Algorithm::ring;
  op.collective.group = std::move(group);
  op.collective.bytes = bytes;
  return op;
}

ProgramSet gemm_allreduce_gemm(int p, int64_t bytes) {
  ProgramSet set;
  std::vector<int> group(p);
  std::iota(group.begin(), group.end(), 0);
  for (int r = 0; r < p; ++r) {
    Program prog;
    prog.rank = r;
    prog.ops = {gemm(0, "fc1", {}), all_reduce(1, group, bytes, {0}), gemm(2, "fc2", {1})};
    set.ranks.push_back(prog);
  }
  return set;
}

}  // namespace

TEST_CASE("gemm -> all-reduce -> gemm on 4 ranks: closed-form makespan and a stall as long as the all-reduce") {
  const double B = 450e9, alpha = 1e-6;
  const int64_t S = 64 << 20;
  const Topology t = ideal(8, 1, B, alpha);
  const double g = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  const double ar = 2.0 * 3 / 4 * S / B + 2.0 * 3 * alpha;
  for (Fidelity f : {Fidelity::step, Fidelity::flow}) {
    const Timeline tl = simulate(t, gemm_allreduce_gemm(4, S), EngineOptions{f});
    CHECK(tl.makespan == rel(2 * g + ar, 1e-9));
    REQUIRE(tl.ranks.size() == 4);
    for (const RankTotals& rt : tl.ranks) {
      CHECK(rt.compute == rel(2 * g, 1e-9));
      CHECK(rt.communication == rel(ar, 1e-9));
      CHECK(rt.exposed_communication == rel(ar, 1e-9));
      CHECK(rt.bubble == 0);
    }
    int stalls = 0;
    for (const Span& s : tl.spans)
      if (s.kind == "stall") {
        ++stalls;
        CHECK(s.waited_for == "all_reduce1");
        CHECK(s.end - s.start == rel(ar, 1e-9));
      }
    CHECK(stalls == 4);
    // Every GPU port carried 2(p-1)/p * S in each direction.
    REQUIRE(!tl.links.empty());
    for (const LinkUse& l : tl.links) {
      CHECK(l.bytes == rel(1.5 * S, 1e-6));
      CHECK(l.bandwidth == B);
    }
  }
}

TEST_CASE("two all-reduces in flight on the same GPUs share the ports and each take twice as long") {
  const double B = 100e9;
  const int64_t S = 1 << 26;
  const Topology t = ideal(4, 1, B, 0);
  ProgramSet set;
  for (int r = 0; r < 4; ++r) {
    Program prog;
    prog.rank = r;
    prog.ops = {all_reduce(0, {0, 1, 2, 3}, S, {}, Stream::tp_comm), all_reduce(1, {3, 2, 1, 0}, S, {}, Stream::dp_comm)};
    set.ranks.push_back(prog);
  }
  const Timeline tl = simulate(t, set, EngineOptions{Fidelity::flow});
  CHECK(tl.makespan == rel(2 * (1.5 * S / B), 1e-9));
}

TEST_CASE("a recv waiting for its pipeline peer shows as a bubble") {
  const double B = 400e9, alpha = 2e-6;
  const Topology t = ideal(2, 1, B, alpha);
  const int64_t S = 1 << 24;
  const double g = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  ProgramSet set;
  Program a, b;
  a.rank = 0;
  a.ops = {gemm(0, "stage0", {})};
  Op send;
  send.id = 1;
  send.kind = OpKind::send;
  send.name = "send_act";
  send.stream = Stream::pp_comm;
  send.deps = {0};
  send.p2p = {1, S, 7};
  a.ops.push_back(send);
  b.rank = 1;
  Op recv = send;
  recv.id = 0;
  recv.kind = OpKind::recv;
  recv.name = "recv_act";
  recv.deps = {};
  recv.p2p = {0, S, 7};
  b.ops = {recv, gemm(1, "stage1", {0})};
  set.ranks = {a, b};
  const Timeline tl = simulate(t, set, EngineOptions{});
  const double transfer = S / B + alpha;
  CHECK(tl.makespan == rel(2 * g + transfer, 1e-9));
  CHECK(tl.ranks[1].bubble == rel(g + transfer, 1e-9));
  CHECK(tl.ranks[0].bubble == 0);
}

TEST_CASE("simulate is deterministic and rejects programs that cannot run") {
  const Topology t = ideal(8, 1, 450e9, 1e-6);
  const Timeline a = simulate(t, gemm_allreduce_gemm(8, 1 << 20), EngineOptions{});
  const Timeline b = simulate(t, gemm_allreduce_gemm(8, 1 << 20), EngineOptions{});
  REQUIRE(a.spans.size() == b.spans.size());
  CHECK(a.makespan == b.makespan);
  for (size_t i = 0; i < a.spans.size(); ++i) CHECK((a.spans[i].start == b.spans[i].start && a.spans[i].end == b.spans[i].end));

  ProgramSet missing = gemm_allreduce_gemm(4, 1 << 20);
  missing.ranks[3].ops.resize(1);   // rank 3 never reaches the all-reduce: deadlock
  CHECK_THROWS_AS(simulate(t, missing, EngineOptions{}), std::runtime_error);
  CHECK_THROWS_AS(simulate(t, gemm_allreduce_gemm(16, 1 << 20), EngineOptions{}), std::invalid_argument);
}
