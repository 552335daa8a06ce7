// A fused op whose parts change pass (the lowering merges a 1F1B backward and the next
// micro-batch's forward into one op under folded TP) is drawn as one span per pass run, at the run
// ends the unit-time run measured (simulate.cpp, push_pass_runs). Toy ops with closed-form times:
// each part a GEMM on the toy GPU, so a run lasts the sum of its GEMMs' roofline times.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "toy_gpu.hpp"

#include <memory>

#include "engine/sm_share.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

Topology toy() {
  Topology t;
  t.name = "toy";
  t.gpus_per_node = 4;
  t.nodes = 1;
  t.intra.bandwidth = 450e9;
  t.intra.latency = 1e-6;
  t.nic.count = 4;
  t.nic.bandwidth = 450e9 / 8;
  t.gpu = toy_gpu();
  return t;
}

// A piece as the lowering stamps it: its qualified name, layer, pass. m x 4096 x 4096 GEMM.
Op piece(const std::string& name, int layer, Pass pass, int64_t m, bool recompute = false) {
  Op op;
  op.kind = OpKind::gemm;
  op.name = name;
  op.layer = layer;
  op.pass = pass;
  op.recompute = recompute;
  op.gemm = {m, 4096, 4096};
  op.flops = 2.0 * double(m) * 4096 * 4096;
  op.hbm_bytes = (double(m) * 4096 * 2 + 4096.0 * 4096 + double(m) * 4096) * 2;
  return op;
}

double cost(const Op& op) { return op_cost(toy_gpu(), op).seconds; }

// The merged op: named and fielded after its first piece, as StepWriter names it.
Op merged(int id, const std::vector<Op>& parts) {
  Op op;
  op.id = id;
  op.kind = OpKind::kernel;
  op.kernel.fn = "fused";
  op.name = parts.front().name + " .. " + parts.back().name + " (" + std::to_string(parts.size()) + " pieces)";
  op.pass = parts.front().pass;
  op.recompute = parts.front().recompute;
  op.micro_batch = 3;
  op.stage = 0;
  op.parts = std::make_shared<const std::vector<Op>>(parts);
  return op;
}



std::vector<const Span*> spans_of_op(const Timeline& tl, int rank, int op) {
  std::vector<const Span*> out;
  for (const Span& s : tl.spans)
    if (s.rank == rank && s.op == op && s.stream == Stream::compute) out.push_back(&s);
  return out;
}

// Backward of layers 1, 0 (4096-row GEMMs), then forward of layers 0, 1 (1024-row GEMMs).
std::vector<Op> backward_then_forward() {
  return {piece("layer1.bwd", 1, Pass::backward, 4096), piece("layer0.bwd", 0, Pass::backward, 4096),
          piece("layer0.fwd", 0, Pass::forward, 1024), piece("layer1.fwd", 1, Pass::forward, 1024)};
}

}  // namespace

TEST_CASE("a merged backward-then-forward op is two spans: the backward's GEMMs, then the forward's") {
  const std::vector<Op> parts = backward_then_forward();
  const double backward = cost(parts[0]) + cost(parts[1]), forward = cost(parts[2]) + cost(parts[3]);
  REQUIRE(backward > 2 * forward);   // the split is not at the middle
  const Timeline tl = simulate(toy(), same_program_on_four({merged(0, parts)}), EngineOptions{Fidelity::flow});
  for (int r = 0; r < 4; ++r) {
    const std::vector<const Span*> s = spans_of_op(tl, r, 0);
    REQUIRE(s.size() == 2);
    CHECK(s[0]->name == "layer1.bwd .. layer0.bwd (2 pieces)");
    CHECK(s[1]->name == "layer0.fwd .. layer1.fwd (2 pieces)");
    CHECK(s[0]->pass == Pass::backward);
    CHECK(s[1]->pass == Pass::forward);
    CHECK(s[0]->layer == -1);   // layers 1 and 0
    CHECK(s[1]->layer == -1);
    for (const Span* x : s) {
      CHECK(x->micro_batch == 3);   // the op's
      CHECK(x->kind == "kernel");
    }
    CHECK(s[0]->start == 0);
    CHECK(s[0]->end - s[0]->start == rel(backward, 1e-12));
    CHECK(s[1]->start == s[0]->end);   // they tile the op
    CHECK(s[1]->end - s[1]->start == rel(forward, 1e-12));
    CHECK(s[1]->end == tl.makespan);
    CHECK((s[0]->end - s[0]->start) + (s[1]->end - s[1]->start) == rel(tl.makespan, 1e-12));
    // The per-GPU compute total is the op's time, once.
    CHECK(tl.ranks[size_t(r)].compute == rel(backward + forward, 1e-12));
  }
}

TEST_CASE("recomputed forwards count to the backward run; a run of one layer names it") {
  // Full recomputation: per layer a recomputed forward, then its backward; then the next
  // micro-batch's forward of layer 0 alone. Two runs, not five.
  const std::vector<Op> parts = {piece("layer1.recompute.fwd", 1, Pass::forward, 1024, true),
                                 piece("layer1.bwd", 1, Pass::backward, 2048),
                                 piece("layer0.recompute.fwd", 0, Pass::forward, 1024, true),
                                 piece("layer0.bwd", 0, Pass::backward, 2048), piece("layer0.fwd", 0, Pass::forward, 1024)};
  double backward = 0;
  for (size_t i = 0; i < 4; ++i) backward += cost(parts[i]);
  const double forward = cost(parts[4]);
  const Timeline tl = simulate(toy(), same_program_on_four({merged(0, parts)}), EngineOptions{Fidelity::flow});
  const std::vector<const Span*> s = spans_of_op(tl, 0, 0);
  REQUIRE(s.size() == 2);
  CHECK(s[0]->name == "layer1.recompute.fwd .. layer0.bwd (4 pieces)");
  CHECK(s[0]->pass == Pass::backward);   // recomputation and backward: backward time
  CHECK(!s[0]->recompute);
  CHECK(s[1]->name == "layer0.fwd");
  CHECK(s[1]->pass == Pass::forward);
  CHECK(s[1]->layer == 0);
  CHECK(s[0]->end - s[0]->start == rel(backward, 1e-12));
  CHECK(s[1]->end - s[1]->start == rel(forward, 1e-12));
}

TEST_CASE("a merged op of one pass stays one span with the op's name") {
  const std::vector<Op> parts = {piece("layer0.fwd", 0, Pass::forward, 1024), piece("layer1.fwd", 1, Pass::forward, 2048)};
  const Timeline tl = simulate(toy(), same_program_on_four({merged(0, parts)}), EngineOptions{Fidelity::flow});
  const std::vector<const Span*> s = spans_of_op(tl, 0, 0);
  REQUIRE(s.size() == 1);
  CHECK(s[0]->name == "layer0.fwd .. layer1.fwd (2 pieces)");
  CHECK(s[0]->end - s[0]->start == rel(cost(parts[0]) + cost(parts[1]), 1e-12));
}

TEST_CASE("a merged op stretched by a collective beside it: its runs stretch by the same factor") {
  // An all-reduce on the TP stream from 0, longer than the stretched op, holds c of the S SMs all
  // along: every GEMM of the op takes T S / (S - c) (test_engine_sm_share.cpp), so the op lasts
  // (backward + forward) / (1 - f), and each run its own time / (1 - f).
  const Topology t = toy();
  const int64_t bytes = int64_t(2) << 30;
  const std::vector<Op> parts = backward_then_forward();
  const double backward = cost(parts[0]) + cost(parts[1]), forward = cost(parts[2]) + cost(parts[3]);
  const CollectiveTiming alone = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {});
  const double f = double(engine::collective_ctas(t, CollectiveOp::all_reduce, alone.instance, {0, 1, 2, 3}, double(bytes))) / t.gpu.sms;
  REQUIRE(f > 0);
  REQUIRE((backward + forward) / (1 - f) < alone.seconds);
  const Timeline tl = simulate(t, same_program_on_four({toy_all_reduce(0, bytes), merged(1, parts)}), EngineOptions{Fidelity::flow});
  const std::vector<const Span*> s = spans_of_op(tl, 0, 1);
  REQUIRE(s.size() == 2);
  CHECK(s[0]->start == 0);
  CHECK(s[0]->end - s[0]->start == rel(backward / (1 - f), 1e-9));
  CHECK(s[1]->end - s[1]->start == rel(forward / (1 - f), 1e-9));
  CHECK(s[1]->start == s[0]->end);

  // A short all-reduce ends inside the backward: the op is late by f ar in all (sm_share's closed
  // form), and the split, scaled alike over the whole op, gives each run its share of that.
  const int64_t small = int64_t(32) << 20;
  const CollectiveTiming brief = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(small), {});
  const double g = double(engine::collective_ctas(t, CollectiveOp::all_reduce, brief.instance, {0, 1, 2, 3}, double(small))) / t.gpu.sms;
  REQUIRE(brief.seconds < backward);
  const Timeline late = simulate(t, same_program_on_four({toy_all_reduce(0, small), merged(1, parts)}), EngineOptions{Fidelity::flow});
  const std::vector<const Span*> l = spans_of_op(late, 0, 1);
  REQUIRE(l.size() == 2);
  const double whole = backward + forward + g * brief.seconds;
  CHECK(l[1]->end - l[0]->start == rel(whole, 1e-9));
  CHECK(l[0]->end - l[0]->start == rel(whole * backward / (backward + forward), 1e-9));
  CHECK((l[0]->end - l[0]->start) + (l[1]->end - l[1]->start) == rel(l[1]->end - l[0]->start, 1e-12));
}
