// Wrong plans are caught and named: each planted bug fails verification with a message naming the
// op, the tensor and the size of the error.
#include <doctest/doctest.h>

#include <stdexcept>

#include "test_numerics_scenario.hpp"

using namespace tpsim;

namespace {

Scenario layer_scenario(int tp, bool sp) {
  test::Tiny t;
  t.tp = tp;
  t.sp = sp;
  return test::tiny_scenario(t);
}

// The first failure is at `op` writing `tensor`, with a relative error far above its tolerance.
void expect_named_failure(const NumericsReport& r, const std::string& op, const std::string& tensor) {
  REQUIRE_FALSE(r.ok);
  const TensorCheck* f = r.first_failure();
  REQUIRE(f != nullptr);
  const std::string message = describe(*f);
  INFO(message);
  CHECK(f->op == op);
  CHECK(f->tensor == tensor);
  CHECK(f->max_rel > 1e-2);
  CHECK(f->max_rel > 10 * f->tolerance);
  CHECK(message.find(op) != std::string::npos);
  CHECK(message.find(tensor) != std::string::npos);
  CHECK(message.find("max abs") != std::string::npos);
}

LowerOptions layer_fwd_bwd() {
  LowerOptions lo;
  lo.scope = LowerScope::layer;
  lo.backward = true;
  return lo;
}

}  // namespace

TEST_CASE("(a) missing all-reduce after a row-parallel linear: plan.mappings mlp.fc2 reduce_output false") {
  for (int tp : {2, 4})
    for (DType dt : {DType::fp32, DType::bf16}) {
      Scenario s = layer_scenario(tp, false);
      s.plan.mappings["mlp.fc2"].reduce_output = false;
      expect_named_failure(test::check(s, LowerScope::layer, true, dt), "layer0.mlp.fc2.fwd", "layer0.mlp.fc2.out");
    }
}

TEST_CASE("(b) a layernorm weight sharded where it must be replicated") {
  for (int tp : {2, 4}) {
    Scenario s = layer_scenario(tp, false);
    s.plan.partitions["norm2"] = {"", "tp"};
    expect_named_failure(test::check(s, LowerScope::layer, true), "layer0.norm2.fwd", "layer0.norm2.out");
  }
}

TEST_CASE("(c) a wrong chunk index in the ring all-reduce's schedule") {
  for (int tp : {2, 4}) {
    NumericsOptions planted;
    planted.schedule_hook = [](const Op& op, Schedule& s) {
      if (op.name != "layer0.mlp.fc2.all_reduce") return;
      for (Round& round : s.rounds)
        for (Transfer& t : round.transfers)
          if (t.reduce) {   // the first reduction reads the wrong chunk
            t.src_chunk = (t.src_chunk + 1) % s.chunks;
            return;
          }
    };
    expect_named_failure(test::check(layer_scenario(tp, false), LowerScope::layer, true, DType::fp32, planted),
                         "layer0.mlp.fc2.all_reduce", "layer0.mlp.fc2.out");
    // The untouched schedule passes: the failure is the planted index, nothing else.
    CHECK(test::check(layer_scenario(tp, false), LowerScope::layer, true).ok);
  }
}

TEST_CASE("(d) all-gather / reduce-scatter swapped in the backward under sequence parallelism") {
  const Scenario s = layer_scenario(4, true);
  const std::string op = "layer0.norm2.gather_from_sp.bwd_reduce_scatter";
  ProgramSet sharded = lower(s, layer_fwd_bwd());
  const ProgramSet reference = lower(unsharded(s), layer_fwd_bwd());

  SUBCASE("the all-gather's conjugate done as an all-gather: caught, named, sized") {
    int swapped = 0;
    for (Program& p : sharded.ranks)
      for (Op& o : p.ops)
        if (o.name == op) o.collective.op = CollectiveOp::all_gather, ++swapped;
    REQUIRE(swapped == 4);
    try {
      verify(sharded, reference, {});
      FAIL("the swapped collective was not caught");
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      INFO(message);
      CHECK(message.find(op) != std::string::npos);
      CHECK(message.find("layer0.norm2.out.grad") != std::string::npos);
      CHECK(message.find("4608 elements") != std::string::npos);   // [24, 48] gathered 4 times, for a [6, 48] shard
      CHECK(message.find("holds 288") != std::string::npos);
    }
  }

  SUBCASE("the all-gather's conjugate done as a split (no reduction): the gradient is wrong there") {
    for (Program& p : sharded.ranks)
      for (Op& o : p.ops)
        if (o.name == op) {
          const int part = int(std::find(o.collective.group.begin(), o.collective.group.end(), p.rank) -
                               o.collective.group.begin());
          o.kind = OpKind::kernel;
          o.kernel.fn = "slice";
          o.kernel.attrs = {{"dim", 0}, {"parts", 4}, {"part", part}};
        }
    expect_named_failure(verify(sharded, reference, {}), op, "layer0.norm2.out.grad");
  }
}
