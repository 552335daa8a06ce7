// Timing engine: the topology becomes a SimGrid platform (GPUs as hosts, NVLink / PCIe / NIC /
// switch ports as full-duplex links), each rank's Program becomes an actor, collectives move their
// Schedule's bytes over the links. Latency is added per round by the engine, not by SimGrid links,
// so max-min sharing stays fair (SimGrid's CM02/LV08 weight a flow's share by its route latency).
#pragma once

#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/program.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/timeline.hpp"

namespace tpsim {

enum class Fidelity { step, flow };

struct EngineOptions {
  EngineOptions() = default;
  explicit EngineOptions(Fidelity f) : fidelity(f) {}
  Fidelity fidelity = Fidelity::step;
  ProgressFn progress;   // (ops done, ops in every simulated rank's program); a 1024-GPU step takes a while
};

// The one collective selector, modelled on NCCL's tuner: makes a collective concrete before either
// interpreter runs. `requested` may be `automatic`: with topology.collectives.nccl_version set, what
// that NCCL's tuning model picks (nccl_selection's `followed`); otherwise tpsim's own rule (NVLS
// inside one NVLS node above 4 GPUs, ring inside a node, ring or tree across nodes by least
// predicted time, the op's default otherwise).
// The result names the algorithm, the protocol with the least predicted time, the channels (as
// NCCL: one ring per NIC across nodes; each a permutation of positions 0..p-1 into `group`), the
// pipeline chunks of pipelined algorithms (about 1 MiB each, 1..64) and, for hierarchical, the
// ranks per node. Rooted ops (broadcast, reduce): channel c's schedule is rooted at the position j
// with channel_orders[c][j] == root. Throws std::invalid_argument when the algorithm does not fit.
CollectiveInstance resolve_collective(const Topology& topology, CollectiveOp op, Algorithm requested,
                                      const std::vector<int>& group, double bytes, int root = 0);

// Fills op.collective.instance of every collective op of every rank that is not resolved yet,
// through resolve_collective, memoised by (op, requested algorithm, group, bytes, root): identical
// collectives get identical instances and a big step program resolves each shape once.
void resolve_collectives(const Topology& topology, ProgramSet& programs);

// Simulates every rank's Program on the topology; the timeline starts at 0. A collective op runs
// its resolved instance; an unresolved one is resolved first, through resolve_collective.
Timeline simulate(const Topology& topology, const ProgramSet& programs, const EngineOptions& options);

// One collective over `group` (global GPU indices) on an otherwise idle topology: seconds.
struct CollectiveTiming {
  double seconds = 0;
  double algbw = 0;   // bytes / seconds
  double busbw = 0;   // algbw * busbw_factor
  Algorithm algorithm = Algorithm::ring;   // the one used (resolves `automatic`)
  std::string protocol;                    // NCCL protocol chosen ("LL", "LL128", "Simple"; "ideal" if none)
  int channels = 1;                        // parallel rings (one per NIC across nodes)
  CollectiveInstance instance;             // exactly what was timed (resolve_collective)
};
// Resolves through resolve_collective, then times that instance.
CollectiveTiming time_collective(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                 const std::vector<int>& group, double bytes, const EngineOptions& options);

// What NCCL would pick, by its own tuning model of the version topology.collectives.nccl_version
// names (a model of NCCL's model: sim/engine/nccl_tuner.hpp). With the key set, `automatic`
// resolves to `followed`; the engine times that instance with its own physical model.
struct NcclCandidate {
  std::string algorithm;    // NCCL's name: "Tree", "Ring", "NVLS", "NVLSTree", "PAT", "CollNetDirect", ...
  std::string protocol;     // "LL", "LL128", "Simple"
  int channels = 0;         // the channels of the graph NCCL's bandwidth assumes
  double latency = 0;       // s: NCCL's latency term
  double bandwidth = 0;     // B/s: NCCL's algorithm bandwidth (before the tree correction factor)
  double seconds = 0;       // NCCL's predicted time for the size
  Algorithm modelled = Algorithm::automatic;   // the tpsim algorithm that runs it; automatic: none
};
struct NcclSelection {
  std::string version;                   // "" when the topology names none (nothing else is filled)
  std::vector<NcclCandidate> candidates; // every (algorithm, protocol) NCCL enables, tuning.cc's order
                                         // (protocols: those the topology lists, as NCCL_PROTO)
  int pick = -1;       // NCCL's choice: least predicted time; -1 when NCCL does not tune the op
                       // (all-to-all, send/recv are point-to-point) or the group is one GPU
  int followed = -1;   // what `automatic` runs: `pick`, or, when tpsim cannot run it (CollNet, NVLS
                       // all-gather), the candidate of least NCCL time that it can; -1: none,
                       // tpsim's own selector decides
};
NcclSelection nccl_selection(const Topology& topology, CollectiveOp op, const std::vector<int>& group, double bytes);

}  // namespace tpsim
