// The serving capacity search: each row's replica count is the fewest that meets the SLO (one
// fewer misses it, served again here from scratch), and the rows are ranked by GPUs.
#include <doctest/doctest.h>

#include "serve/capacity.hpp"
#include "serve/replica_model.hpp"

using namespace tpsim;

TEST_CASE("capacity search: the fewest replicas that meet the SLO, one fewer misses it") {
  ScenarioRequest q;
  q.model = "llama2-7b";
  q.topology = "dgx-h100";
  q.overrides = {{"plan.tp", "1"}, {"workload.kind", "serving"}, {"serving.rate", "40"}, {"serving.requests", "3000"}};
  const Scenario base = load_scenario(q);
  serving::CapacitySpec spec;
  spec.schedulers = {"vllm"};
  spec.max_batches = {64};
  const std::vector<serving::CapacityRow> rows = serving::capacity_search(base, spec);
  REQUIRE(rows.size() == 4);   // tp 1, 2, 4, 8
  for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].gpus <= rows[i].gpus);
  const serving::CapacityRow& best = rows.front();
  REQUIRE(best.meets);
  REQUIRE(best.replicas > 1);   // a stream that needs more than one replica
  CHECK(best.gpus == best.replicas * best.tp);

  Scenario s = base;
  s.plan.tp = best.tp;
  ServingSpec serving = *base.serving;
  serving.max_batch = 64;
  const std::vector<Request> requests = make_requests(serving);
  serving::SimulatedTimer timer(s);
  const ReplicaCapacity capacity = serving::replica_capacity(s, serving);
  for (const auto& [replicas, meets] : {std::pair{best.replicas, true}, std::pair{best.replicas - 1, false}}) {
    CAPTURE(replicas);
    serving.replicas = replicas;
    const ServeSummary got = summarize(serve(serving, requests, capacity, timer), serving.slo, int(replicas) * best.tp);
    CHECK(got.slo_met == meets);
  }
}
