// Feedback on long work: the progress line's text and time left, worked by hand, and the sweep's
// progress counting only the layouts that take a simulation (quick rejections would make the time
// left say "0 s" with half the simulations still to run).
#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "plan_toy.hpp"
#include "tpsim/progress.hpp"

using namespace tpsim;
using namespace tpsim_test;

TEST_CASE("the time left is this phase's rate applied to what it has left") {
  // 250 of 1000 ops in 10 s: 25 ops/s, 750 left -> 30 s.
  CHECK(progress_text("tpsim verify", "executing ops", "ops", 250, 1000, 10.0) ==
        "tpsim verify: executing ops  250/1000 ops  25%  about 30 s left");
  // A resumed sweep: 50 of 100 came from the file; 10 more took 4 s, so 40 left take 16 s.
  CHECK(progress_text("tpsim plan", "simulating layouts", "layouts", 60, 100, 4.0, 50) ==
        "tpsim plan: simulating layouts  60/100 layouts  60%  about 16 s left");
  // Under 2 s, or under 2% of the work, a rate is a guess: none is shown.
  CHECK(progress_text("tpsim run", "simulating", "ops", 500, 1000, 1.5) ==
        "tpsim run: simulating  500/1000 ops  50%  estimating the time left");
  CHECK(progress_text("tpsim run", "simulating", "ops", 1, 1000, 60.0) ==
        "tpsim run: simulating  1/1000 ops  0%  estimating the time left");
  // 20 of 1000 (2%) in 3 s: 147 s left = 2 min 27 s.
  CHECK(progress_text("tpsim run", "simulating", "ops", 20, 1000, 3.0) ==
        "tpsim run: simulating  20/1000 ops  2%  about 2 min 27 s left");
  CHECK(progress_text("tpsim run", "simulating", "ops", 1000, 1000, 3.0) ==
        "tpsim run: simulating  1000/1000 ops  100%  done");
}

TEST_CASE("durations read as a person says them") {
  CHECK(duration_text(0.4) == "under 1 s");
  CHECK(duration_text(1.4) == "1 s");
  CHECK(duration_text(89.4) == "89 s");
  CHECK(duration_text(200) == "3 min 20 s");
  CHECK(duration_text(3725) == "1 h 02 min");
}

TEST_CASE("a progress line that is not wanted draws nothing and hands out no callback") {
  ProgressLine off("tpsim run", false);
  CHECK_FALSE(off.phase("simulating", "ops"));
}

TEST_CASE("the sweep's progress counts only layouts that take a simulation") {
  const SweepSpec spec = toy_spec();
  int quick = 0, simulated = 0;
  for (const Layout& l : enumerate_layouts(spec)) (layout_problem(spec, l).empty() ? simulated : quick) += 1;
  REQUIRE(quick > 0);   // the toy sweep has rejections the planner makes without a simulator
  REQUIRE(simulated > 0);
  std::vector<std::pair<int64_t, int64_t>> calls;
  SweepOptions options;
  options.jobs = 2;
  options.progress = [&](int64_t done, int64_t total) { calls.emplace_back(done, total); };
  const SweepOutcome outcome = run_sweep(spec, options, fake_evaluate);
  CHECK(outcome.total == quick + simulated);
  REQUIRE(calls.size() == size_t(simulated) + 1);   // once at the start, once per simulated layout
  for (size_t i = 0; i < calls.size(); ++i) {
    CHECK(calls[i].first == int64_t(i));
    CHECK(calls[i].second == simulated);
  }
}
