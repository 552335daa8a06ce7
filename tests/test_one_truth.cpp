// One program, one truth: every output of a run comes from the same resolved Program.
//  - a step is the whole step (global batch 64 takes 64 micro-batches of time), and a partial run
//    says PARTIAL with its fraction;
//  - the collective instances the timing ran are the ones the numerics executed;
//  - `tpsim explain` and `tpsim run` give each collective the same time.
#include <doctest/doctest.h>

#include "cli_runner.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <set>
#include <string>
#include <sys/wait.h>

#include "tpsim/collective_calls.hpp"
#include "tpsim/explain.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/run.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

Scenario load(const std::string& scenario, const std::vector<Override>& overrides = {}) {
  ScenarioRequest request;
  request.path = scenario;
  request.overrides = overrides;
  return load_scenario(request);
}

RunResult run(const Scenario& s, const std::string& numerics = "off") {
  RunOptions options;
  options.numerics = numerics;
  return run_scenario(s, options);
}

std::string cli(const std::string& args, int& status) {
  const Output o = run_shell(std::string(TPSIM_BINARY) + " " + args);
  status = o.status;
  return o.out;
}

bool within(double got, double want, double rel) { return std::fabs(got - want) <= rel * std::fabs(want); }

}  // namespace

TEST_CASE("global batch 64 is 64 micro-batches of time, not one") {
  // Llama-2-7B TP8 on one DGX H100, dp 1 and pp 1: micro-batches run back to back and the
  // optimizer runs once per step, so T(n) = n x micro-batch + optimizer, and T(64) must equal
  // T(1) + 63 (T(2) - T(1)) (within 1%: 64 micro-batches fold TP collectives at their
  // uncontended time, 1 and 2 simulate them; TP links here carry nothing else).
  auto step = [](int batch) {
    const RunResult r = run(load("", {{"workload.global_batch", std::to_string(batch)}}));
    REQUIRE(r.step);
    CHECK(r.step->micro_batches == batch);
    CHECK_FALSE(r.step->partial);
    return r.step->step_time_s;
  };
  const double t1 = step(1), t2 = step(2), t64 = step(64);
  INFO("T(1) " << t1 << " s, T(2) " << t2 << " s, T(64) " << t64 << " s");
  CHECK(within(t64, t1 + 63 * (t2 - t1), 0.01));
  CHECK(t64 > 50 * t1);   // not one micro-batch's time under the step's name
}

TEST_CASE("a partial run says PARTIAL with the fraction and never calls its time the step") {
  int status = -1;
  const std::string out =
      cli("run --numerics off --set workload.global_batch=64 --partial-micro-batches 4", status);
  CHECK(status == 0);
  CHECK(out.find("PARTIAL training step: the first 4 of 64 micro-batches (6.2%)") != std::string::npos);
  CHECK(out.find("step time") == std::string::npos);
  CHECK(out.find("time of the simulated part") != std::string::npos);
  // The removed key says what replaced it.
  const std::string old = cli("run --set workload.steps=0", status);
  CHECK(status == 2);
  CHECK(old.find("partial_micro_batches") != std::string::npos);
}

TEST_CASE("the default run's trace holds only collective instances that the numerics executed") {
  const RunResult r = run(load(""), "proxy");
  REQUIRE(r.numerics);
  CHECK(r.numerics->ok);
  const std::set<std::string> executed(r.numerics->instances.begin(), r.numerics->instances.end());
  REQUIRE_FALSE(executed.empty());
  int collectives = 0;
  for (const Span& span : r.timeline.spans) {
    if (span.kind != "collective") continue;
    ++collectives;
    const std::string key = instance_key(span.collective, span.instance);
    INFO("timed instance " << key);
    CHECK(executed.count(key) == 1);
  }
  CHECK(collectives > 0);
  CHECK(r.unverified_instances.empty());
}

TEST_CASE("explain and run give each collective the same time") {
  // Both resolve the op through the one selector and time it at flow fidelity; in run, a TP group
  // whose links carry nothing else runs each call in exactly the time explain measures alone.
  for (const char* example : {"examples/bandwidth-wall-tp16.yaml", "examples/default.yaml"}) {
    INFO(example);
    const Scenario s = load(example);
    const ExplainReport e = explain_layer(s);
    const std::vector<CollectiveCalls> calls = collective_calls(run(s).timeline);
    REQUIRE_FALSE(e.collectives.empty());
    for (const ExplainCollective& c : e.collectives) {
      const CollectiveCalls* match = nullptr;
      for (const CollectiveCalls& k : calls)
        if (k.op == c.collective && k.mapping == c.mapping && (k.pass == Pass::backward) == c.backward &&
            k.bytes == c.bytes && k.instance == c.instance)
          match = &k;
      INFO(c.op << " " << c.instance);
      REQUIRE(match != nullptr);
      INFO(std::setprecision(17) << match->fastest << " vs " << c.seconds);
      CHECK(within(match->fastest, c.seconds, 1e-9));
    }
  }
}
