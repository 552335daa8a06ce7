// The two shortcuts that make a 1024-GPU step fast, each against the full simulation:
// replica symmetry (simulate DP replica 0, time its DP collectives alone on the full topology) and
// TP folding (a layer's TP collectives inside its compute op at their uncontended time).
#include <doctest/doctest.h>

#include <cmath>
#include <tuple>

#include "tpsim/engine.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

Scenario scenario_64_gpus(int tp, int pp, int dp) {
  ScenarioRequest request;
  request.topology = "cluster-h100-ndr";
  request.model = "gpt-1.7b";
  request.overrides = {{"topology.nodes", "8"},
                       {"plan.tp", std::to_string(tp)},
                       {"plan.pp", std::to_string(pp)},
                       {"plan.dp", std::to_string(dp)},
                       {"plan.sp", tp > 1 ? "true" : "false"},
                       {"plan.recompute", "selective"},
                       {"workload.kind", "training"},
                       {"workload.global_batch", std::to_string(8 * dp)},
                       {"workload.micro_batch", "1"},
                       {"workload.seq", "2048"}};
  return load_scenario(request);
}

// |got - want| <= rel * |want|: doctest's Approx is absolute for values this small.
bool within(double got, double want, double rel) { return std::abs(got - want) <= rel * std::abs(want); }

StepMetrics run(const Scenario& s, const std::string& replicas, const std::string& tp_collectives) {
  RunOptions options;
  options.numerics = "off";
  options.dp_replicas = replicas;
  options.tp_collectives = tp_collectives;
  RunResult r = run_scenario(s, options);
  REQUIRE(r.step);
  CHECK(r.step->dp_replicas == replicas);
  CHECK(r.step->tp_collectives == tp_collectives);
  return *r.step;
}

}  // namespace

TEST_CASE("one DP replica gives the full 64-GPU step time (TP8 PP2 DP4: DP rings on their own rails)") {
  const Scenario s = scenario_64_gpus(8, 2, 4);
  const StepMetrics all = run(s, "all", "folded");
  const StepMetrics one = run(s, "one", "folded");
  MESSAGE("all replicas ", all.step_time_s, " s, one replica ", one.step_time_s, " s");
  CHECK(within(one.step_time_s, all.step_time_s, 0.005));
  CHECK(within(one.tokens_per_s, all.tokens_per_s, 0.005));
}

TEST_CASE("one DP replica, DP-heavy layout (TP4 PP1 DP16): the bucketed all-reduce tail matches") {
  const Scenario s = scenario_64_gpus(4, 1, 16);
  const StepMetrics all = run(s, "all", "folded");
  const StepMetrics one = run(s, "one", "folded");
  MESSAGE("all replicas ", all.step_time_s, " s, one replica ", one.step_time_s, " s");
  CHECK(within(one.step_time_s, all.step_time_s, 0.01));
}

TEST_CASE("auto keeps every replica where DP groups share links: a dragonfly's pair links carry all 8 rails") {
  // 64 nodes in 4 groups of 16, minimal routing in a 128-group machine: two groups share 1/127 of
  // a group's global links, 48.9 GB/s, about one NIC's rate, and the 8 DP rings (one per rail)
  // all cross there. Timed alone, one replica's DP ring would have it to itself.
  auto load = [](const std::string& topology, const std::vector<Override>& extra) {
    ScenarioRequest request;
    request.topology = topology;
    request.model = "gpt-1.7b";
    request.overrides = {{"topology.nodes", "64"}, {"plan.tp", "8"}, {"plan.dp", "64"}, {"plan.sp", "true"},
                         {"workload.kind", "training"}, {"workload.global_batch", "64"}, {"workload.micro_batch", "1"},
                         {"workload.seq", "2048"}};
    request.overrides.insert(request.overrides.end(), extra.begin(), extra.end());
    return load_scenario(request);
  };
  auto step = [](const Scenario& s, const std::string& replicas) {
    RunOptions options;
    options.numerics = "off";
    options.dp_replicas = replicas;
    RunResult r = run_scenario(s, options);
    REQUIRE(r.step);
    return *r.step;
  };
  std::string what_if = TPSIM_SOURCE_DIR;
  what_if += "/examples/topologies/h100-dragonfly-what-if.yaml";
  const Scenario dragonfly = load(what_if, {{"topology.network.nodes_per_group", "16"}, {"topology.network.groups", "128"}});
  const StepMetrics automatic = step(dragonfly, "auto"), all = step(dragonfly, "all"), one = step(dragonfly, "one");
  MESSAGE("dragonfly, 512 GPUs: auto ", automatic.step_time_s, " s, all ", all.step_time_s, " s, one ", one.step_time_s, " s");
  CHECK(automatic.dp_replicas == "all");
  CHECK(automatic.step_time_s == all.step_time_s);
  CHECK(all.step_time_s > 3 * one.step_time_s);   // what the shortcut would have missed
  // A non-blocking fat tree: each rail's ring has its own NICs and the spine carries them all.
  const StepMetrics fat_tree = step(load("cluster-h100-ndr", {}), "auto");
  CHECK(fat_tree.dp_replicas == "one");
}

TEST_CASE("folding TP collectives matches TP collectives simulated on tp_comm (TP8 inside a node)") {
  const Scenario s = scenario_64_gpus(8, 2, 1);
  const StepMetrics exact = run(s, "all", "exact");
  const StepMetrics folded = run(s, "all", "folded");
  MESSAGE("exact ", exact.step_time_s, " s, folded ", folded.step_time_s, " s");
  CHECK(within(folded.step_time_s, exact.step_time_s, 0.01));
  CHECK(folded.tp_comm_folded_s > 0);
}

// Not a shortcut but a representation: a stage's ranks bound to one program (RankBinding) must
// time exactly as each rank holding its own copy, span for span, bit for bit.
TEST_CASE("ranks bound to their stage's program simulate exactly as ranks with their own copies") {
  for (auto [tp, pp, dp, fold, one] :
       {std::tuple{8, 2, 4, true, false}, std::tuple{4, 2, 2, false, false}, std::tuple{4, 2, 4, true, true}}) {
    const Scenario s = scenario_64_gpus(tp, pp, dp);
    lowering::StepOptions options;
    options.fold_tp = fold;
    options.micro_batches = 4;
    options.one_dp_replica = one;
    ProgramSet bound = lowering::lower_training_step(s, options);
    REQUIRE(!bound.bindings.empty());
    ProgramSet copies = bound;
    expand_bindings(copies);
    CHECK(copies.bindings.empty());
    resolve_collectives(s.topology, bound);
    resolve_collectives(s.topology, copies);
    const EngineOptions engine{Fidelity::flow};
    const Timeline a = simulate(s.topology, bound, engine);
    const Timeline b = simulate(s.topology, copies, engine);
    CHECK(a.makespan == b.makespan);
    REQUIRE(a.spans.size() == b.spans.size());
    size_t differ = 0;
    for (size_t i = 0; i < a.spans.size(); ++i) {
      const Span &x = a.spans[i], &y = b.spans[i];
      differ += !(x.rank == y.rank && x.op == y.op && x.name == y.name && x.kind == y.kind && x.start == y.start &&
                  x.end == y.end && x.instance == y.instance && x.algorithm == y.algorithm && x.peer == y.peer &&
                  x.bytes == y.bytes && x.waited_for == y.waited_for);
    }
    CHECK(differ == 0);
    CHECK(a.links.size() == b.links.size());
  }
}
