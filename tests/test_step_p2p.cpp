// Megatron's scatter/gather pipeline sends (plan.p2p_scatter_gather): each TP rank sends 1/tp of
// the [tokens, h] activation or gradient and the receiving TP group all-gathers it. The program the
// numerics executes (stack scope), the step the timing simulates, and the timeline agree on it,
// and the numerics still computes the unsharded function.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "test_numerics_scenario.hpp"

#include <string>
#include <vector>

#include "tpsim/report.hpp"
#include "tpsim/run.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

struct Sends {
  std::vector<int64_t> bytes;        // every send's bytes
  int gathers = 0;                   // the receivers' all-gathers
  int64_t gather_bytes = 0;
};

Sends sends_of(const ProgramSet& set) {
  Sends s;
  for (int r = 0; r < int(set.ranks.size()); ++r) {
    const Program& p = program_of(set, r);
    for (const Op& op : p.ops) {
      if (op.kind == OpKind::send) s.bytes.push_back(op.p2p.bytes);
      // The receiving group's gather: an all-gather fed by a receive that is no TP mapping of a
      // layer (a layer's first collective may wait on the receive too).
      if (op.kind != OpKind::collective || op.collective.op != CollectiveOp::all_gather || op.mapping != TpMappingId::none)
        continue;
      for (int d : op.deps)
        if (p.ops[size_t(d)].kind == OpKind::recv) ++s.gathers, s.gather_bytes = op.collective.bytes;
    }
  }
  return s;
}

// GPT 1.7B (4 of its layers) on two A100 nodes, one pipeline stage per node (TP 8 inside it),
// four micro-batches.
Scenario two_stage(bool scatter, bool sp) {
  ScenarioRequest request;
  request.topology = "cluster-a100-hdr";
  request.model = "gpt-1.7b";
  request.overrides = {{"topology.nodes", "2"},   {"plan.tp", "8"},           {"plan.pp", "2"}, {"model.layers", "4"},
                       {"plan.dp", "1"},          {"plan.sp", sp ? "true" : "false"},
                       {"plan.p2p_scatter_gather", scatter ? "true" : "false"},
                       {"workload.global_batch", "4"}, {"workload.micro_batch", "1"}, {"workload.seq", "2048"}};
  return load_scenario(request);
}

}  // namespace

TEST_CASE("numerics: scattered pipeline sends carry 1/tp of the tensor and still compute the unsharded function") {
  for (bool scatter : {true, false}) {
    test::Tiny t;
    t.tp = 2;
    t.layers = 2;
    Scenario s = test::tiny_scenario(t);
    s.plan.pp = 2;
    s.plan.p2p_scatter_gather = scatter;
    const ProgramSet set = lower(s, {LowerScope::stack, true});
    const Sends sends = sends_of(set);
    const int64_t tensor = t.seq * s.model.hidden * dtype_bytes(s.model.dtype);
    REQUIRE(sends.bytes.size() == 4);   // activation forward and gradient back, on each of 2 TP ranks
    for (int64_t b : sends.bytes) CHECK(b == (scatter ? tensor / 2 : tensor));
    CHECK(sends.gathers == (scatter ? 4 : 0));
    if (scatter) CHECK(sends.gather_bytes == tensor);
    CAPTURE(scatter);
    const NumericsReport r = test::check(s, LowerScope::stack, true);
    CHECK(r.ok);
  }
}

TEST_CASE("the step the timing runs sends what the numerics program sends, and the timeline shows it") {
  for (bool sp : {false, true})
    for (bool scatter : {true, false}) {
      CAPTURE(sp);
      CAPTURE(scatter);
      const Scenario s = two_stage(scatter, sp);
      const int64_t tensor = 2048 * s.model.hidden * dtype_bytes(s.model.dtype);
      const int64_t want = scatter || sp ? tensor / 8 : tensor;
      const Sends step = sends_of(lowering::lower_training_step(s));
      REQUIRE(!step.bytes.empty());
      for (int64_t b : step.bytes) CHECK(b == want);
      CHECK(step.gathers == (scatter && !sp ? int(step.bytes.size()) : 0));   // one per message received
      if (scatter && !sp) CHECK(step.gather_bytes == tensor);
      // The numerics' stack program (full size, lowered only) sends the same bytes.
      for (int64_t b : sends_of(lower(s, {LowerScope::stack, true})).bytes) CHECK(b == want);
      // And the simulated sends moved them.
      RunOptions options;
      options.numerics = "off";
      const RunResult run = run_scenario(s, options);
      int spans = 0;
      for (const Span& span : run.timeline.spans)
        if (span.kind == "send") {
          CHECK(span.bytes == want);
          ++spans;
        }
      CHECK(spans == int(step.bytes.size()));
    }
}

TEST_CASE("across nodes, scattering the pipeline sends over the TP group's NICs shortens the step") {
  RunOptions options;
  options.numerics = "off";
  const RunResult scattered = run_scenario(two_stage(true, false), options);
  const RunResult whole = run_scenario(two_stage(false, false), options);
  CHECK(scattered.step->step_time_s < whole.step->step_time_s);
  // Waiting for the receive is still the pipeline's bubble, not a stall on the all-gather after it.
  CHECK(totals(scattered.timeline).bubble > 0.5 * totals(whole.timeline).bubble);
}
