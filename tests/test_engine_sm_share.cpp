// Compute beside a collective (engine/sm_share.hpp): NCCL's kernel holds c of the GPU's S SMs
// while it runs, so a GEMM of duration T overlapped by it for its whole length takes T S / (S - c);
// a GEMM alone and a collective alone keep their own times. Closed forms, in the simulation
// (simulate's compute stream) and in a fused op's timing (UnitTimes).
#include <doctest/doctest.h>

#include "relative.hpp"
#include "toy_gpu.hpp"

#include <memory>

#include "engine/sm_share.hpp"
#include "engine/unit_times.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

Topology toy(double bw) {
  Topology t;
  t.name = "toy";
  t.gpus_per_node = 4;
  t.nodes = 1;
  t.intra.bandwidth = bw;
  t.intra.latency = 1e-6;
  t.nic.count = 4;
  t.nic.bandwidth = bw / 8;
  t.gpu = toy_gpu();
  return t;
}

Op gemm(int id) {
  Op op;
  op.id = id;
  op.kind = OpKind::gemm;
  op.name = "gemm";
  op.gemm = {4096, 4096, 4096};
  op.flops = 2.0 * 4096 * 4096 * 4096;
  op.hbm_bytes = 3.0 * 4096 * 4096 * 2;
  return op;
}



double span_of(const Timeline& tl, int rank, const std::string& kind) {
  for (const Span& s : tl.spans)
    if (s.rank == rank && s.kind == kind) return s.end - s.start;
  FAIL("no span of kind " << kind);
  return 0;
}

// c / S for the all-reduce as the engine resolves it.
double share_of(const Topology& t, int64_t bytes) {
  const CollectiveTiming alone = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {});
  const int c = engine::collective_ctas(t, CollectiveOp::all_reduce, alone.instance, {0, 1, 2, 3}, double(bytes));
  REQUIRE(c > 0);
  REQUIRE(c < t.gpu.sms);
  return double(c) / t.gpu.sms;
}

}  // namespace

TEST_CASE("a GEMM overlapped for its whole length by a collective holding c of S SMs takes T S / (S - c)") {
  const Topology t = toy(450e9);
  const int64_t bytes = int64_t(1) << 30;   // ~3.6 ms of all-reduce: longer than the stretched GEMM
  const double T = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  const double ar = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {}).seconds;
  const double f = share_of(t, bytes);
  REQUIRE(T / (1 - f) < ar);
  for (Fidelity fidelity : {Fidelity::flow, Fidelity::step}) {
    const Timeline both = simulate(t, same_program_on_four({toy_all_reduce(0, bytes), gemm(1)}), EngineOptions{fidelity});
    CAPTURE(int(fidelity));
    for (int r = 0; r < 4; ++r) {
      CHECK(span_of(both, r, "gemm") == rel(T * t.gpu.sms / (t.gpu.sms - f * t.gpu.sms), 1e-9));   // T S / (S - c)
      CHECK(span_of(both, r, "collective") == rel(ar, 1e-9));   // NCCL's CTAs are its own: not slowed
    }
  }
}

TEST_CASE("a GEMM outlasting the collective beside it is late by the collective's share of its time") {
  const Topology t = toy(450e9);
  const int64_t bytes = int64_t(64) << 20;   // ~0.2 ms of all-reduce inside a ~1.7 ms GEMM
  const double T = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  const double ar = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {}).seconds;
  const double f = share_of(t, bytes);
  REQUIRE(ar < T);
  const Timeline both = simulate(t, same_program_on_four({toy_all_reduce(0, bytes), gemm(1)}), EngineOptions{Fidelity::flow});
  // ar (1 - f) of the GEMM's work done during the collective, the rest at full rate: T + f ar.
  CHECK(span_of(both, 0, "gemm") == rel(T + f * ar, 1e-9));
}

TEST_CASE("a GEMM with no collective beside it and a collective with no compute beside it keep their times") {
  const Topology t = toy(450e9);
  const int64_t bytes = int64_t(1) << 30;
  const double T = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  const double ar = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {}).seconds;
  const Timeline gemm_alone = simulate(t, same_program_on_four({gemm(0)}), EngineOptions{Fidelity::flow});
  CHECK(span_of(gemm_alone, 0, "gemm") == T);   // exactly: the one sleep it always was
  const Timeline ar_alone = simulate(t, same_program_on_four({toy_all_reduce(0, bytes)}), EngineOptions{Fidelity::flow});
  CHECK(span_of(ar_alone, 0, "collective") == rel(ar, 1e-12));
  // The GEMM after the collective (a dependency): no overlap, so neither changes.
  Op after = gemm(1);
  after.deps = {0};
  const Timeline serial = simulate(t, same_program_on_four({toy_all_reduce(0, bytes), after}), EngineOptions{Fidelity::flow});
  CHECK(span_of(serial, 0, "gemm") == rel(T, 1e-12));
  CHECK(span_of(serial, 0, "collective") == rel(ar, 1e-12));
}

TEST_CASE("a fused op's compute beside its own collective stretches by the same closed form") {
  const Topology t = toy(450e9);
  const int64_t bytes = int64_t(1) << 30;
  const double T = gemm_cost(t.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
  const double ar = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 1, 2, 3}, double(bytes), {}).seconds;
  const double f = share_of(t, bytes);
  Op fused;
  fused.kind = OpKind::kernel;
  fused.kernel.fn = "fused";
  fused.parts = std::make_shared<const std::vector<Op>>(std::vector<Op>{toy_all_reduce(0, bytes), gemm(1)});
  engine::UnitTimes units(t, EngineOptions{Fidelity::flow});
  const engine::UnitTime u = units.fused(fused);
  // The op waits for its compute part only (the collective is nobody's dependency).
  CHECK(u.seconds == rel(T / (1 - f), 1e-12));
  CHECK(u.tp_free == rel(ar, 1e-12));
  // Closed forms of stretched_end itself: no hold, a whole-length hold, a hold ending midway.
  CHECK(engine::stretched_end(2.0, 3.0, {}) == 5.0);
  CHECK(engine::stretched_end(0.0, 1.0, {{0.0, 10.0, 0.25}}) == rel(1.0 / 0.75, 1e-15));
  CHECK(engine::stretched_end(0.0, 1.0, {{0.0, 0.5, 0.25}}) == rel(1.0 + 0.25 * 0.5, 1e-15));
  CHECK(engine::stretched_end(1.0, 1.0, {{0.0, 0.5, 0.25}}) == 2.0);
}
