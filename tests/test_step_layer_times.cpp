// One layer's forward and backward as the step ran them (StepMetrics::layer_forward_s, printed by
// `tpsim run` as "one layer: forward ... backward ..."): recomputed forward ops count as backward,
// and the figures add up to the step.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <string>

#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

using namespace tpsim;

namespace {

StepMetrics run(const std::string& recompute, const std::string& tp_collectives = "auto") {
  ScenarioRequest request;
  request.overrides = {{"model.layers", "4"},          {"plan.recompute", recompute},
                       {"workload.global_batch", "1"}, {"workload.micro_batch", "1"}};
  RunOptions options;
  options.numerics = "off";
  options.tp_collectives = tp_collectives;
  return *run_scenario(load_scenario(request), options).step;
}

}  // namespace

TEST_CASE("a layer's backward holds its recomputation: full adds a forward, selective the attention core") {
  const StepMetrics none = run("none"), full = run("full"), selective = run("selective");
  REQUIRE(none.layer_samples == 4);
  CHECK(full.layer_forward_s == rel(none.layer_forward_s, 1e-6));
  CHECK(full.layer_backward_s == rel(none.layer_backward_s + none.layer_forward_s, 0.05));
  CHECK(selective.layer_backward_s > none.layer_backward_s);
  CHECK(selective.layer_backward_s < full.layer_backward_s);
  // Four layers forward and backward fit in the step, with the embedding, the output head over a
  // 32k vocabulary and the optimizer around them (a third of this 4-layer step).
  CHECK(4 * (none.layer_forward_s + none.layer_backward_s) < none.step_time_s);
  CHECK(4 * (none.layer_forward_s + none.layer_backward_s) > 0.5 * none.step_time_s);
}

TEST_CASE("folded TP collectives merge layers into one op: no per-layer figure") {
  CHECK(run("none", "folded").layer_samples == 0);
}
