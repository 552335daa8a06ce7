// CollectivePlan: one collective made ready to run on a Fabric. It resolves `automatic` to the
// algorithm NCCL would use, gets the Schedule (or, for a ring in flow fidelity, its edges in closed
// form, so 4096 GPUs never materialise 33M transfers), maps participants to fabric endpoints and
// picks the protocol with the least predicted time, as NCCL's tuner does.
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
  Algorithm algorithm = Algorithm::automatic;
  std::vector<int> group;   // global GPU indices, in ring order
  double bytes = 0;         // nccl-tests size
  int root = 0;             // index into group (broadcast, reduce)
  int channels = 0;         // rings across nodes; 0 = as NCCL: one per NIC the group's nodes use
};

// The protocol a collective runs with, resolved from Topology::collectives.
struct ProtocolCost {
  std::string name = "ideal";
  double fixed_latency = 0;          // s: launch + protocol base latency, once per collective
  double intra_extra = 0, inter_extra = 0;   // s added per intra-/inter-node step
  double efficiency = 1;             // payload bytes per wire byte
};

// Everything one (src, dst) pair of one channel moves over the whole collective.
struct FlowEdge {
  int src = 0, dst = 0;          // fabric endpoints
  double payload = 0;            // bytes
  int active_rounds = 1;         // rounds in which the pair transfers something
  int channel = 0;
  double rate_cap = 0;           // wire B/s cap on this edge's messages / flow; 0 = none
};

// NCCL runs a multi-node ring as several channels, each entering and leaving every node through a
// different GPU (and so a different NIC); each channel carries its share of the bytes.
struct ChannelPlan {
  std::shared_ptr<const Schedule> schedule;   // null when the edges came in closed form
  std::vector<int> endpoint;                  // participant -> fabric endpoint
};

struct CollectivePlan {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  int ranks = 0;
  double bytes = 0;
  std::vector<ChannelPlan> channels;
  double chunk_payload = 0;                   // bytes per schedule chunk (of one channel)
  std::vector<FlowEdge> edges;                // every channel's edges
  int critical_rounds = 0;
  ProtocolCost protocol;
  double path_latency = 0;   // s: longest chain of step latencies (route + protocol extra)
  double wire_scale = 1;     // wire bytes per payload byte (1 / protocol efficiency)
  double estimate = 0;       // s: predicted uncontended time (static max-min shares)
};

// Throws std::invalid_argument for a bad group, size or algorithm that does not fit.
CollectivePlan plan_collective(const Fabric& fabric, const CollectiveSpec& spec, Fidelity fidelity);

// The algorithm NCCL would pick for this collective on this fabric (never `automatic`).
Algorithm choose_algorithm(const Fabric& fabric, const CollectiveSpec& spec);

}  // namespace tpsim::engine
