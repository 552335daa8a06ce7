// Waits named after what they waited for: a pipeline stage waiting for its receive is a pipeline
// wait (a bubble naming the receive), even when a TP collective stands between the receive and the
// op, and the timeline shows the TP collective's own wait as a stall on it. Tiny hand-built
// two-stage programs on an ideal two-GPU-per-stage node, run through the engine.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "toy_gpu.hpp"

#include <functional>

#include "tpsim/attribution.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

constexpr double kBandwidth = 400e9, kLatency = 2e-6;
constexpr int64_t kMessage = 1 << 24;

Topology ideal_node() {
  Topology t;
  t.name = "ideal";
  t.gpus_per_node = 4;
  t.nodes = 1;
  t.intra.bandwidth = kBandwidth;
  t.intra.latency = kLatency;
  t.nic.count = 4;
  t.nic.bandwidth = kBandwidth / 8;
  t.nic.latency = kLatency / 4;
  t.network.switch_latency = kLatency / 2;
  t.gpu = toy_gpu();
  return t;
}

Op gemm(int id, const std::string& name, std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = OpKind::gemm;
  op.name = name;
  op.deps = std::move(deps);
  op.gemm = {4096, 4096, 4096};
  op.flops = 2.0 * 4096 * 4096 * 4096;
  op.hbm_bytes = 3.0 * 4096 * 4096 * 2;
  return op;
}

Op p2p(int id, OpKind kind, const std::string& name, int peer, std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = kind;
  op.name = name;
  op.stream = Stream::pp_comm;
  op.deps = std::move(deps);
  op.p2p = {peer, kMessage, 7};
  return op;
}

Op tp_collective(int id, CollectiveOp what, const std::string& name, std::vector<int> group, int64_t bytes,
                 std::vector<int> deps) {
  Op op;
  op.id = id;
  op.kind = OpKind::collective;
  op.name = name;
  op.stream = Stream::tp_comm;
  op.deps = std::move(deps);
  op.collective.op = what;
  op.collective.algorithm = Algorithm::ring;
  op.collective.group = std::move(group);
  op.collective.bytes = bytes;
  return op;
}

// Stage 0 (GPUs 0, 1) computes a GEMM and sends to stage 1 (GPUs 2, 3); stage 1 builds its
// program with `stage1` from the receive's op id.
ProgramSet two_stages(const std::function<std::vector<Op>(int rank)>& stage1) {
  ProgramSet set;
  for (int r = 0; r < 2; ++r) {
    Program p;
    p.rank = r;
    p.ops = {gemm(0, "stage0.fwd", {}), p2p(1, OpKind::send, "mb0.act.send", r + 2, {0})};
    set.ranks.push_back(p);
  }
  for (int r = 2; r < 4; ++r) {
    Program p;
    p.rank = r;
    p.ops = stage1(r);
    set.ranks.push_back(p);
  }
  return set;
}

const Span* find(const Timeline& t, int rank, const std::string& kind) {
  for (const auto& s : t.spans)
    if (s.rank == rank && s.kind == kind) return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("a receive under a TP all-gather: a pipeline wait until it arrives, a TP stall after") {
  // Stage 1: receive (the scattered message), all-gather it over the TP pair, then the GEMM.
  const Timeline t = simulate(ideal_node(), two_stages([](int r) {
                                return std::vector<Op>{
                                    p2p(0, OpKind::recv, "mb0.act.recv", r - 2, {}),
                                    tp_collective(1, CollectiveOp::all_gather, "layer0.fwd.act.all_gather", {2, 3},
                                                  kMessage, {0}),
                                    gemm(2, "layer0.fwd.qkv", {1})};
                              }),
                              EngineOptions{});
  const double g = gemm_cost(ideal_node().gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  for (int r : {2, 3}) {
    const Span* bubble = find(t, r, "bubble");
    const Span* stall = find(t, r, "stall");
    REQUIRE(bubble);
    REQUIRE(stall);
    // Waiting for the receive: the stage-0 GEMM, then the message (bytes / bandwidth + latency).
    CHECK(bubble->waited_for == "mb0.act.recv");
    CHECK(bubble->waited_kind == OpKind::recv);
    CHECK(bubble->waited_stream == Stream::pp_comm);
    CHECK(bubble->start == 0);
    CHECK(bubble->end == rel(g + kMessage / kBandwidth + kLatency, 1e-6));
    // Then the all-gather itself: a TP stall, named after it, from the bubble's end on.
    CHECK(stall->waited_for == "layer0.fwd.act.all_gather");
    CHECK(stall->waited_kind == OpKind::collective);
    CHECK(stall->waited_collective == CollectiveOp::all_gather);
    CHECK(stall->start == bubble->end);
  }
  const Attribution a = attribute(t);
  REQUIRE(a.stall_groups.size() == 1);
  CHECK(a.stall_groups[0].what == "all-gather on the tp stream");
  CHECK(a.stall_groups[0].op == "fwd.qkv");
}

TEST_CASE("an op needing a receive and a slower TP collective waits for the pipeline first") {
  // Stage 1: a large all-reduce over the TP pair starts at once, a receive arrives meanwhile; the
  // GEMM needs both. The all-reduce finishes last, yet until the receive arrived the GPU waited
  // on the pipeline too: that stretch is a bubble naming the receive, the rest a stall on the
  // all-reduce (before, the whole wait was blamed on the all-reduce).
  const int64_t big = int64_t(1) << 31;
  const Timeline t = simulate(ideal_node(), two_stages([&](int r) {
                                return std::vector<Op>{
                                    p2p(0, OpKind::recv, "mb0.act.recv", r - 2, {}),
                                    tp_collective(1, CollectiveOp::all_reduce, "layer0.bwd.grad.all_reduce", {2, 3},
                                                  big, {}),
                                    gemm(2, "layer0.fwd.qkv", {0, 1})};
                              }),
                              EngineOptions{});
  const Span* bubble = find(t, 2, "bubble");
  const Span* stall = find(t, 2, "stall");
  REQUIRE(bubble);
  REQUIRE(stall);
  CHECK(bubble->waited_for == "mb0.act.recv");
  CHECK(stall->waited_for == "layer0.bwd.grad.all_reduce");
  CHECK(stall->start == bubble->end);
  // The all-reduce (2 GiB over a ring of 2 at 400 GB/s: about 5 ms) outlasts the receive (GEMM +
  // 16 MiB: well under 1 ms), so the stall is the longer part.
  CHECK(stall->end - stall->start > bubble->end - bubble->start);
}
