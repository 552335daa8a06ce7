// The two collective backends start_collective dispatches to (collective_run.hpp), and what they
// share: placeholder payloads, wire sizes, a rate-capped put, the countdown that fires `done`.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "engine/collective_run.hpp"

namespace tpsim::engine::backend {

// Rounds (step backend) or phases (flow backend) ahead an endpoint posts its receives: NCCL keeps
// up to 8 steps in flight per channel (NCCL_STEPS). A sender is held back only when its receiver is
// this far behind. One constant, so both fidelities pace a collective alike.
constexpr int kRecvWindow = 8;

// Messages carry no data: their size is declared, the pointer is a placeholder.
inline int token = 0;
inline int* sink = nullptr;

// Bytes on the wire for `payload` bytes under a protocol that sends `scale` wire bytes per byte.
inline uint64_t wire_size(double payload, double scale) {
  return static_cast<uint64_t>(std::max(1.0, std::llround(payload * scale) * 1.0));
}

// Sleeps until simulated time `t` if that is at least SimGrid's timing precision (1 ns) away.
// SimGrid stretches any shorter positive sleep to 1 ns, and `t` computed as a finish time plus a
// latency is often a rounding error past now: that ns would be an artifact of where the clock
// stood (exactly 0 or not), not of the schedule.
inline void sleep_until_ready(double t) {
  constexpr double kSimgridTimingPrecision = 1e-9;   // SimGrid's precision/timing default
  if (t - simgrid::s4u::Engine::get_clock() >= kSimgridTimingPrecision) simgrid::s4u::this_actor::sleep_until(t);
}

// A mailbox put, rate-capped when rate > 0 (SimGrid caps only mailbox comms, not sendto).
inline simgrid::s4u::CommPtr start_put(simgrid::s4u::Mailbox* box, uint64_t bytes, double rate) {
  simgrid::s4u::CommPtr c = box->put_init(&token, bytes);
  if (rate > 0) c->set_rate(rate);
  c->start();
  return c;
}

// Flow actors only post comms and wait (their deepest frame is a comm record): a 32 KiB stack
// instead of the default 64 KiB, because SimGrid clears every new stack and a 4096-GPU one-phase
// flow with rate caps creates one actor per GPU (clearing 64 KiB stacks was ~30% of its run).
template <class F>
void spawn_small(const std::string& name, simgrid::s4u::Host* host, F code) {
  simgrid::s4u::Actor::init(name, host)->set_stacksize(32 * 1024)->start(std::move(code));
}

// Shared by a collective's actors: when the last one leaves, `done` runs.
struct Completion {
  int remaining = 0;
  std::function<void()> done;
  void leave() {
    if (--remaining == 0 && done) done();
  }
};

void start_step(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, const std::string& prefix,
                std::shared_ptr<Completion> completion);
void start_flow(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, const std::string& prefix,
                std::shared_ptr<Completion> completion);

}  // namespace tpsim::engine::backend
