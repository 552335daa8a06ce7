// NCCL's own tuning model for a stated NCCL version (topology.collectives.nccl_version): which
// (algorithm, protocol) NCCL would run a collective with, and the time NCCL itself predicts for
// every candidate. A model of NCCL's model, not of the hardware: the engine still times the pick
// with tpsim's physical model, and the two times may disagree.
//
// Two parts, as in NCCL. (1) The inputs NCCL's tuner reads from its topology search (per algorithm a
// graph: channels and per-channel bandwidth inside and between nodes), found here by a simplified
// search over tpsim's topology (search_graphs). (2) ncclTopoTuneModel's latency and bandwidth per
// (function, algorithm, protocol) and ncclTopoGetAlgoTime's time, followed term by term (tune).
// Every constant is in data/reference/nccl_model_constants_and_statements.md with its source line.
//
// The host CPU is nic.host_cpu (NCCL's net post overhead and its llMaxBw row across nodes: AMD's,
// or Intel's for every other host). Assumptions, since tpsim's topology does not say them:
// InfiniBand (no extra graph latency), no CollNet / SHARP (NCCL_COLLNET_ENABLE off, NCCL's
// default), the same channels for every ring (sameChannels), a balanced tree pattern, and the
// GPU-to-NIC PCIe path no slower than the NIC.
#pragma once

#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::engine::nccl {

// NCCL's algorithms and protocols, in tuning.cc's order (the order that breaks ties).
enum Algo { kTree, kRing, kCollNetDirect, kCollNetChain, kNvls, kNvlsTree, kPat, kNumAlgos };
enum Proto { kLL, kLL128, kSimple, kNumProtos };
const char* algo_name(Algo a);     // "Tree", "Ring", ..., "NVLSTree", "PAT" (NCCL's spelling)
const char* proto_name(Proto p);   // "LL", "LL128", "Simple"
// The tpsim algorithm that runs NCCL's; Algorithm::automatic for CollNet (not modelled).
Algorithm modelled(Algo a);

// What NCCL's topology detection sees of one communicator (bandwidths in GB/s, NCCL's unit).
struct System {
  int compute_capability = 0;   // 70, 80, 86, 89, 90, 100
  bool nvlink = true;           // GPUs of a node on NVLink (else PCIe)
  double gpu_bw = 0;            // one GPU's bandwidth into the intra-node fabric, as NCCL counts it
  double path_bw = 0;           // one GPU-to-GPU path (the intra-node search's maxBw)
  int nics = 0;                 // NICs the communicator's GPUs of one node use
  double nic_bw = 0;            // per NIC: the port speed
  bool nvls = false;            // NVSwitch multicast (NVLink SHARP) in the topology
  int ranks = 0, nodes = 0, local_ranks = 0;
  HostCpu host_cpu = HostCpu::unstated;   // the proxy's CPU: net post overhead, LL's row across nodes
  bool protocols[kNumProtos] = {true, true, true};   // LL, LL128, Simple: the topology's protocol list, which
                                                    // stands for NCCL_PROTO (all when it lists none)
};
// The communicator `group` (global GPU indices, node-major) on `topology`. NVLink: the GPU's links
// (intra.bandwidth / 25 GB/s per link, 50 on Blackwell) times NCCL's per-link figure; PCIe: 3/4 of
// the x16 line rate (NCCL's 24 GB/s for Gen4); NICs: the line rate.
System system_of(const Topology& topology, const std::vector<int>& group);

// One graph of NCCL's topology search: channels and the per-channel bandwidth of each.
struct Graph {
  int channels = 0;   // 0: no graph (NVLS unsupported)
  double bw_intra = 0, bw_inter = 0;
};
struct Graphs {
  Graph ring, tree, nvls;
  int comm_channels = 0;   // the communicator's channels: the ring's, duplicated (at most 32)
};
// NCCL's search, simplified: a channel at per-channel speed s costs s of every GPU's fabric
// bandwidth (gpu_bw) and, across nodes, of one NIC's (nic_bw); the search tries NCCL's speed array
// from the highest speed not above maxBw, keeps the most bandwidth, duplicates channels and raises
// the speed as search.cc does (its stop, 0.49 and duplication rules). Real NCCL follows paths
// GPU by GPU; this counts capacities only.
Graphs search_graphs(const std::string& version, const System& system);

// One enabled (algorithm, protocol): ncclTopoTuneModel's latency (us) and algorithm bandwidth
// (GB/s), and ncclTopoGetAlgoTime's time (us) for the size, with the tree correction factor and
// the ring's plateau latency applied.
struct Candidate {
  Algo algo = kRing;
  Proto proto = kSimple;
  int channels = 0;            // the channels of the graph the bandwidth assumes
  double latency_us = 0;       // the tuning table's latency
  double bandwidth_gbs = 0;    // the tuning table's bandwidth
  double time_us = 0;          // the time NCCL predicts for this size
};
struct Tuning {
  std::vector<Candidate> candidates;   // tuning.cc order
  int pick = -1;                       // least time, the first on ties; -1: NCCL does not tune it
};
// NCCL `version`'s choice for `op` of `bytes` (the nccl-tests size) on `system`. All-to-all and
// send/recv are point-to-point in NCCL (no tuning): empty, as for a single rank. Throws
// std::invalid_argument for a version without a table or a system without a compute capability.
Tuning tune(const std::string& version, const System& system, CollectiveOp op, double bytes);

}  // namespace tpsim::engine::nccl
