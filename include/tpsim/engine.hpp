// Timing engine: the topology becomes a SimGrid platform (GPUs as hosts, NVLink / PCIe / NIC /
// switch ports as full-duplex links), each rank's Program becomes an actor, collectives move their
// Schedule's bytes over the links. Latency is added per round by the engine, not by SimGrid links,
// so max-min sharing stays fair (../shared/SIMGRID_NOTES.md).
#pragma once

#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/program.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/timeline.hpp"

namespace tpsim {

enum class Fidelity { step, flow };

struct EngineOptions {
  Fidelity fidelity = Fidelity::step;
};

// Simulates every rank's Program on the topology; the timeline starts at 0.
Timeline simulate(const Topology& topology, const ProgramSet& programs, const EngineOptions& options);

// One collective over `group` (global GPU indices) on an otherwise idle topology: seconds.
struct CollectiveTiming {
  double seconds = 0;
  double algbw = 0;   // bytes / seconds
  double busbw = 0;   // algbw * busbw_factor
  Algorithm algorithm = Algorithm::ring;   // the one used (resolves `automatic`)
  std::string protocol;                    // NCCL protocol chosen ("LL", "LL128", "Simple"; "ideal" if none)
  int channels = 1;                        // parallel rings (one per NIC across nodes)
};
CollectiveTiming time_collective(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                 const std::vector<int>& group, double bytes, const EngineOptions& options);

}  // namespace tpsim
