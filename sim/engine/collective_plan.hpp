// CollectivePlan: one resolved collective instance made ready to run on a Fabric. It chooses
// nothing (select.hpp does, before): it builds each channel's Schedule from the instance, maps
// participants to fabric endpoints, cuts the rounds into phases for `flow` fidelity and prices the
// instance's protocol (caps, latency term, static estimate).
//
// Phases: a maximal run of consecutive rounds whose transfers use the same (channel, src, dst)
// edges with the same chunk counts (an edge: between two schedule participants, on the fabric
// endpoints they stand on). Both backends receive the same rounds: `step` sends every
// transfer as a message; `flow` sends each phase as one comm per edge carrying the phase's bytes.
//
// Latency is a data dependency, as with NCCL's pipelined steps (up to 8 in flight per channel): a
// hop's latency delays the data that crossed it, not the receiver's next receive. `step` tracks,
// per participant and chunk, when the chunk's data is ready (receive finish + hop latency; its
// input at the start); a round's sends start together at the latest ready time of the chunks they
// read (waiting only for the receives that write those chunks), never before the participant's
// previous round's sends finished; receives are posted up to 8 rounds ahead of the participant's
// own round; the collective ends when every output chunk is ready. `flow` applies the rule at
// phase granularity: a participant posts its receives of phase k once its comms of phase k-1 are done
// and starts its sends once, too, the data it received is ready, i.e. each received comm's finish
// plus the edge's path latency. That is the step rule run over the phase's rounds with static
// message times (the edge's phase time / rounds), bounded by its two extremes: the edge's data is
// ready at the later of its last message's finish + its hop latency (a bottleneck hop streams, its
// data arriving early over faster hops) and the chained data path (message time + hop latency per
// hop it crossed); path_latency is that less the edge's phase time (>= its hop latency; a one-round
// phase: the hop latency, as in step). So a uniform ring pays message time + latency every round,
// while a ring held by its NIC hops exposes about one hop latency. A ring all-reduce / all-gather /
// reduce-scatter is one phase, so at `flow` fidelity its edges and path latencies come in closed
// form (a 4096-rank ring never materialises 33M transfers); tested equal to the materialised schedule.
//
// A direct all-to-all is one round in which every rank sends S/p to every other rank: p(p-1)
// transfers, 4.2M at 2048 GPUs, each of which SimGrid would hold as a comm (memory, and a share of
// every max-min solve). At `flow` fidelity it comes in closed form instead: each transfer is cut
// where it passes a switch (the node's NVSwitch for NVLink, the network for NICs: the fabric's
// switch and network endpoints, fabric.hpp) into the half through its sender's port and the half
// through its receiver's port, and the halves that cross the same links merge into one flow of
// `pairs` transfers. A GPU then sends one NVLink half and one network half per class of route
// (same leaf, other leaves) and receives as many: O(p) flows, every link carrying exactly the
// bytes it carried before. Under a dragonfly's minimal routing a transfer between groups is cut
// in three, at its group's gateway and the peer's (fabric.hpp): the global link between two
// groups carries one flow for all their pairs, O(p + groups^2) flows. The time is the same because
// the switches are non-blocking (the spine is one aggregated link per leaf), so a transfer is held
// only by its two ports (and the spine or global link);
// the most loaded port is busy from the start until the end in both forms, and each transfer's
// data is ready its pair's step latency after its halves are through. Tested equal to the
// materialised schedule on even and uneven groups. Nodes without an NVSwitch endpoint (NVLink
// mesh, PCIe) keep one flow per intra-node pair; `step` fidelity always sends every transfer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/fabric.hpp"
#include "tpsim/collective.hpp"
#include "tpsim/engine.hpp"

namespace tpsim::engine {

struct CollectiveSpec {
  CollectiveOp op = CollectiveOp::all_reduce;
  std::vector<int> group;   // global GPU indices, in ring order
  double bytes = 0;         // nccl-tests size
  int root = 0;             // index into group (broadcast, reduce)
  CollectiveInstance instance;   // must be resolved (resolve() in select.hpp)
  bool closed_form = true;  // flow fidelity may use the ring's or all-to-all's closed form (tests turn it off)
};

// The protocol a collective runs with, resolved from Topology::collectives.
struct ProtocolCost {
  std::string name = "ideal";
  double fixed_latency = 0;          // s: launch + protocol base latency, once per collective
  double intra_extra = 0, inter_extra = 0;   // s added per intra-/inter-node step
  double efficiency = 1;             // payload bytes per wire byte
  double max_bandwidth = 0;          // B/s payload cap per rank (LL); 0 = none
  double min_time = 0;               // s floor of the bandwidth term (channel ramp-up); 0 = none
  double intra_floor = 0;            // s an intra-node step costs at least (set by price())
};
// One step from src to dst: the route's latency plus the protocol's term for an intra- or
// inter-node step, an intra-node step at least protocol.intra_floor. Both backends time steps so.
double step_latency(const Fabric& fabric, const ProtocolCost& protocol, int src, int dst);
// The protocols `algorithm` may run with on the topology, in file order, or one "ideal" protocol
// when it lists none. NVLS, NVLS-tree and PAT are Simple-only, as in NCCL (its tuner gives LL and
// LL128 no bandwidth there), unless the topology names no Simple protocol. One-shot and two-shot
// run "custom": the kernel launch (gpu.launch_overhead) once, intra.latency more per step (the
// flag each step waits for), no NCCL terms.
std::vector<ProtocolCost> candidate_protocols(const Topology& t, Algorithm algorithm);

// Chunks one (channel, src, dst) edge moves; payload in bytes once multiplied by chunk_payload.
struct FlowEdge {
  int src = 0, dst = 0;          // fabric endpoints
  double payload = 0;            // bytes
  int channel = 0;
  double rate_cap = 0;           // wire B/s cap on this edge's messages / flow; 0 = none
  double latency = 0;            // s per round: route + protocol step latency (set by price)
  int width = 1;                 // equal parallel comms it runs as: a step round's messages on the
                                 // edge, so max-min shares links as it does among those messages
  double path_latency = 0;       // s: after the edge's comm finishes, until its data is ready (see
                                 // top; set by price; merged flows: the largest)
  int pairs = 1;                 // (src, dst) transfers it stands for: > 1 for a closed-form
                                 // all-to-all half that merges the transfers through one port (top)
  int from = -1, to = -1;        // phase edges of a built plan: the schedule participants it runs
                                 // between (-1: closed forms, whose ends are src and dst)
};
// The ends a phase edge waits on and feeds: its participants, so roles that share a GPU or switch
// (NVLS-tree's) progress apart as in `step`; a closed form's endpoints.
inline int from_actor(const FlowEdge& e) { return e.from >= 0 ? e.from : e.src; }
inline int to_actor(const FlowEdge& e) { return e.to >= 0 ? e.to : e.dst; }

// Rounds [first, first + rounds) of every channel, moving the same edges each round.
struct Phase {
  int first = 0, rounds = 0;
  std::vector<FlowEdge> edges;   // per (channel, from_actor, to_actor): the phase's bytes, sorted
  std::vector<FlowEdge> flows;   // the same merged over channels per (src, dst), caps summed
};
// The phase's edge (channel, from_actor, to_actor), or null when the phase has none.
const FlowEdge* phase_edge(const Phase& ph, int channel, int from, int to);
inline FlowEdge* phase_edge(Phase& ph, int channel, int from, int to) {
  return const_cast<FlowEdge*>(phase_edge(static_cast<const Phase&>(ph), channel, from, to));
}

// NCCL runs a multi-node ring as several channels, each entering and leaving every node through a
// different GPU (and so a different NIC); each channel carries its share of the bytes.
struct ChannelPlan {
  std::shared_ptr<const Schedule> schedule;   // null when the edges came in closed form
  std::vector<int> endpoint;                  // participant -> fabric endpoint
};

struct CollectivePlan {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  CollectiveInstance instance;
  int ranks = 0;
  double bytes = 0;
  std::vector<ChannelPlan> channels;
  double chunk_payload = 0;                   // bytes per schedule chunk (of one channel)
  std::vector<FlowEdge> edges;                // per (channel, src, dst) over the whole collective
  std::vector<Phase> phases;                  // flow fidelity: rounds grouped (see top)
  int rounds = 0;                             // rounds of the schedule
  bool closed_form = false;                   // edges from the ring's or all-to-all's closed form
  ProtocolCost protocol;
  double path_latency = 0;   // s: latency-only data path through all rounds (empty collectives)
  double wire_scale = 1;     // wire bytes per payload byte (1 / protocol efficiency)
  double estimate = 0;       // s: predicted uncontended time (phases, static link loads)
};

// Validates the group and size against the fabric (std::invalid_argument).
void check_collective(const Fabric& fabric, const CollectiveSpec& spec);

// The plan of spec.instance, protocol not yet priced. Throws std::invalid_argument for a group,
// size or algorithm that does not fit, std::logic_error for an unresolved instance.
CollectivePlan plan_shape(const Fabric& fabric, const CollectiveSpec& spec, Fidelity fidelity);

// Prices `plan` with `protocol`: per-edge caps, the latency term and the static estimate.
void price(CollectivePlan& plan, const Fabric& fabric, const ProtocolCost& protocol);

// plan_shape, then price with the instance's protocol.
CollectivePlan plan_collective(const Fabric& fabric, const CollectiveSpec& spec, Fidelity fidelity);

// `step` fidelity holds every message a participant has posted as a SimGrid comm: a round's sends
// and its receives up to 8 rounds ahead (step_backend.cpp). Messages a plan's schedules hold at
// once, at most: per channel, the transfers of its 9 busiest consecutive rounds. A direct
// all-to-all holds all of its p(p-1) transfers (4.2M over 2048 GPUs), a ring a few per rank.
double step_messages_in_flight(const CollectivePlan& plan);
// Bytes SimGrid takes per message in flight (its comm, network action, max-min variable and
// mailbox): 2.9 KiB, measured from peak RSS with step all-to-alls over 64-512 GPUs on Debian's
// SimGrid 3.32 (65,280 messages 219 MB, 261,632 messages 782 MB).
constexpr double kStepBytesPerMessage = 2.9 * 1024;
// Throws std::invalid_argument, in one line, when a `step` plan's messages in flight would take
// more than `memory` bytes: refused before it runs rather than thrashing. plan_collective checks
// every step plan against the machine's physical memory.
void check_step_memory(const CollectivePlan& plan, double memory);

// SimGrid actors a plan runs at `fidelity` (collective_run.hpp): step, one per channel and
// participant; flow, for a one-phase plan one driver plus a sender and a receiver per
// kCommsPerSender comms (flow_backend.cpp), else one per channel and participant with an edge.
constexpr long kCommsPerSender = 128;
long collective_actors(const CollectivePlan& plan, Fidelity fidelity);
// Each actor's stack is its own memory mapping plus a guard page's, and Linux caps a process at
// vm.max_map_count mappings (65,530 by default): past it SimGrid aborts ("Failed to protect
// stack"), 33k actors for a 4096-GPU tree. Mappings kept for the process's own libraries and heap.
constexpr long kMappingsPerActor = 2, kMappingsReserved = 4000;
// Throws std::invalid_argument, in one line, when a plan needs more actors than `max_mappings`
// allows. plan_collective checks every plan against this machine's vm.max_map_count.
void check_actor_budget(const CollectivePlan& plan, Fidelity fidelity, long max_mappings);

}  // namespace tpsim::engine
