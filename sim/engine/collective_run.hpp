// Running a planned collective on a SimPlatform, from inside the simulation. Two backends behind
// start_collective, both fed the plan's rounds (collective_plan.hpp):
//   step: one actor per participant; each round it puts its sends and gets its receives (one
//         SimGrid message per transfer, rendezvous per (src, dst) mailbox), then waits for them and
//         for the receive's step latency. No global barrier, as in NCCL's pipelined steps.
//   flow: the rounds grouped into phases; one driver runs the phases one after another, each as
//         one concurrent comm per (src, dst) edge carrying the edge's bytes of the phase, then adds
//         the latency term (the schedule's longest chain of step latencies).
// Both start with the protocol's fixed latency (launch + base). Every message / flow is capped at
// the plan's rate (channel ramp-up, LL bandwidth); links are shared max-min with all other traffic.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "engine/collective_plan.hpp"
#include "engine/sim_platform.hpp"

namespace tpsim::engine {

// One finished message or flow, for link accounting.
struct CommRecord {
  int src = 0, dst = 0;     // fabric endpoints
  double wire_bytes = 0;
  double start = 0, finish = 0;   // platform time
};

struct RunContext {
  SimPlatform* platform = nullptr;
  std::function<void(const CommRecord&)> on_comm;   // optional
  std::exception_ptr error;                          // first exception an actor caught
  long next_id = 0;                                  // unique mailbox prefix per collective
};

// Spawns the collective's actors now; `done` runs inside the simulation once all have finished.
void start_collective(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, Fidelity fidelity,
                      std::function<void()> done);

// Runs `body` and stores the first exception in ctx instead of letting it abort SimGrid.
void guarded(RunContext& ctx, const std::function<void()>& body);

}  // namespace tpsim::engine
