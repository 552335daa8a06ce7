// The evaluator's representative slice: a training step of m micro-batches is timed from two
// simulated slices (pp and 2 pp micro-batches, TP collectives folded at their uncontended time) and
// extended affinely in m. Checked here against the whole step simulated with run_scenario's own
// choice (exact TP collectives at this size), for plain and interleaved 1F1B; and an inference
// layout reports its request as prefill plus decode steps.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <cmath>

#include "tpsim/planner.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

using namespace tpsim;

namespace {

SweepSpec llama7b_on_one_dgx() {
  SweepSpec spec;
  spec.model = load_model("llama2-7b");
  spec.topology = load_topology("dgx-h100");
  spec.training.global_batch = 64;
  spec.training.seq = 1024;
  return spec;
}

double whole_step(const Scenario& s) {
  RunOptions options;
  options.numerics = "off";
  options.scope = "step";
  Scenario whole = s;
  return run_scenario(whole, options).step->step_time_s;
}

Layout layout(int tp, int pp, int dp, int v) {
  Layout l;
  l.tp = tp;
  l.pp = pp;
  l.dp = dp;
  l.sp = true;
  l.recompute = Recompute::selective;
  l.virtual_stages = v;
  return l;
}

}  // namespace

TEST_CASE("the sliced step time equals the whole step simulated (1F1B and interleaved)") {
  const SweepSpec spec = llama7b_on_one_dgx();
  for (const Layout& l : {layout(2, 2, 2, 1), layout(2, 4, 1, 1), layout(2, 2, 2, 2)}) {
    CAPTURE(layout_id(l));
    const Scenario s = scenario_for(spec, l);
    const LayoutResult sliced = evaluate_layout(s);
    REQUIRE(sliced.verdict == Verdict::ok);
    const double whole = whole_step(s);
    // m = 64 / dp micro-batches (16 to 32) against slices of pp and 2 pp.
    INFO("sliced " << sliced.step_time_s << " s, whole " << whole << " s");
    CHECK(std::abs(sliced.step_time_s - whole) <= 0.01 * whole);   // relative: Approx is absolute here
    CHECK(sliced.compute_s > 0);
    CHECK(sliced.compute_s < sliced.step_time_s);
  }
}

TEST_CASE("an inference layout is timed as prefill plus decode steps") {
  SweepSpec spec = llama7b_on_one_dgx();
  spec.kind = WorkloadKind::inference;
  spec.inference.batch = 8;
  spec.inference.prompt = 256;
  spec.inference.generate = 32;
  Layout l;
  l.tp = 4;
  l.pp = 1;
  l.dp = 2;
  l.batch = 8;
  LayoutResult r = evaluate_layout(scenario_for(spec, l));
  REQUIRE(r.verdict == Verdict::ok);
  CHECK(r.ttft_s > 0);
  CHECK(r.tpot_s > 0);
  CHECK(r.step_time_s == rel(r.ttft_s + 31 * r.tpot_s));
  r.layout = l;
  finish_result(spec, r);
  // Two replicas of TP4 each generate 8 x 32 tokens per request.
  CHECK(r.tokens_per_s == rel(2 * 8 * 32 / r.step_time_s));
}
