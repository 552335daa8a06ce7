// NCCL's tuning model (nccl_tuner.hpp). The table per version holds NCCL's constants as
// data/reference/nccl_model_constants_and_statements.md lists them; the code below follows
// ncclTopoTuneModel and ncclTopoGetAlgoTime term by term, in their order.
#include "engine/nccl_tuner.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

namespace tpsim::engine::nccl {

namespace {

enum Hw { kNvlinkHw, kPciHw, kNetHw, kNumHw };
enum Gen { kVolta, kAmpere, kHopper, kBlackwell, kNumGens };   // compute-capability index

// One NCCL version's tuning constants (us, GB/s).
struct Constants {
  const char* version;
  double base_lat[kNumAlgos][kNumProtos];
  double hw_lat[kNumHw][kNumAlgos][kNumProtos];
  double ll_max_bw[kNumGens][3];               // [generation on one node / CPU row across nodes][nNodes 1, 2, >2]
  double per_ch_max_ring_ll128_bw[kNumGens][3];
  double per_ch_max_tree_ll128_bw[kNumGens][3];
  double per_ch_max_tree_bw[kNumGens][3];
  double tree_correction[kNumProtos][23];      // [protocol][log2(bytes / 64)]
  // search.cc / topo.h: speed arrays (per channel, highest first) and NVLink per link.
  std::vector<double> speeds_intra, speeds_inter, sm90_intra, sm90_inter, sm100_intra, sm100_inter;
  double nvlink_per_link_sm70, nvlink_per_link_sm80, nvlink_per_link_sm86, nvlink_per_link_sm90,
      nvlink_per_link_sm100;
};

// NCCL 2.23: src/graph/tuning.cc of the PAT era (2.2x), src/graph/search.cc, src/graph/topo.h.
const Constants kNccl223 = {
    "2.23",
    // baseLat: Tree, Ring, CollNetDirect, CollNetChain, NVLS, NVLSTree, PAT x {LL, LL128, Simple}
    {{6.8, 14.0, 8.4}, {6.6, 14.0, 8.4}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}},
    // hwLat: NVLink, PCI, NET
    {{{.6, 1.25, 4.0}, {.6, 1.9, 3.4}, {0, 0, 3.7}, {0, 0, 2.8}, {0, 0, 25}, {0, 0, 25}, {0, 0, 0}},
     {{1.0, 1.9, 4.0}, {1.0, 2.5, 5.7}, {0, 0, 3.7}, {0, 0, 2.8}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}},
     {{5.0, 8.5, 14}, {2.7, 4.0, 14.0}, {0, 0, 31}, {0, 0, 30}, {0, 0, 18}, {0, 0, 14}, {0, 0, 0}}},
    // llMaxBws: Volta / Intel, Ampere / AMD, Hopper, Blackwell
    {{39.0, 39.0, 20.4}, {87.7, 22.5, 19.0}, {141.0, 45.0, 35.0}, {282.0, 90.0, 70.0}},
    {{20.0, 20.0, 20.0}, {20.0, 20.0, 20.0}, {36.7, 36.7, 36.7}, {73.4, 73.4, 73.4}},
    {{20.0, 20.0, 20.0}, {20.0, 20.0, 20.0}, {36.7, 36.7, 29.0}, {73.4, 73.4, 58.0}},
    {{26.5, 18.5, 10.0}, {24.0, 23.6, 17.8}, {38.7, 41.4, 36.0}, {77.4, 82.8, 72.0}},
    {{1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0},
     {1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0},
     {.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9}},
    {40.0, 30.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0},
    {48.0, 30.0, 28.0, 24.0, 20.0, 18.0, 15.0, 12.0, 10.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.4, 1.2, 0.24, 0.12},
    {60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 15.0, 12.0, 11.0, 6.0, 3.0},
    {48.0, 45.0, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12},
    {90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 24.0, 20.0, 19.0, 18.0},
    {96.0, 48.0, 45.1, 42.0, 40.0, 30.0, 24.0, 22.0, 20.0, 17.5, 15.0, 12.0, 6.0, 3.0, 2.4, 1.2, 0.24, 0.12},
    20.0, 20.0, 12.0, 20.6, 40.1,
};

const Constants& constants(const std::string& version) {
  if (version == kNccl223.version) return kNccl223;
  throw std::invalid_argument("no NCCL tuning model for version '" + version + "'");
}

Gen generation(int cc) { return cc >= 100 ? kBlackwell : cc >= 90 ? kHopper : cc >= 80 ? kAmpere : kVolta; }

int log2i(long long n) {   // NCCL's log2i: floor(log2(n)), -1 for n <= 0
  int l = -1;
  while (n > 0) n >>= 1, ++l;
  return l;
}

constexpr int kMaxChannels = 32;          // MAXCHANNELS
constexpr int kMaxNvlsArity = 32;         // NCCL_MAX_NVLS_ARITY (NCCL > 2.20)

enum Pattern { kRingPattern, kTreePattern, kNvlsPattern };

// ncclTopoCompute, counting capacities: the most channels at speeds (s_intra, s_inter).
struct Search {
  const System& s;
  Pattern pattern;
  int min_ch, max_ch;
  const std::vector<double>& speeds;
  bool net;
  double total;

  int fit(double s_intra, double s_inter) const {
    int n = max_ch;
    if (s.local_ranks > 1) n = std::min(n, static_cast<int>(std::floor(s.gpu_bw / s_intra + 1e-9)));
    if (net) n = std::min(n, s.nics * static_cast<int>(std::floor(s.nic_bw / s_inter + 1e-9)));
    return n;
  }
  // ncclTopoCompareGraphs: NVLS wants more channels (up to the GPU count), then more inter bandwidth.
  bool better(const Graph& g, const Graph& best) const {
    if (best.channels == 0) return true;
    if (pattern == kNvlsPattern)
      return (g.channels > best.channels && g.channels <= s.local_ranks) ||
             g.channels * g.bw_inter > best.channels * best.bw_inter;
    return g.channels * g.bw_intra > best.channels * best.bw_intra;
  }

  Graph run(int cc) const {
    const int count = static_cast<int>(speeds.size());
    const double max_bw = net ? s.nic_bw : s.path_bw;
    int i = 0;
    while (i < count - 1 && (speeds[i] > max_bw || speeds[i] * min_ch > total)) ++i;
    // Pass 1: lower the speed until a graph reaches maxChannels or the total bandwidth, or the next
    // speed is below 0.49 of the best graph's.
    Graph best;
    for (;;) {
      const int n = fit(speeds[i], speeds[i]);
      const Graph g{n, speeds[i], speeds[i]};
      if (n >= min_ch && better(g, best)) best = g;
      if (n >= min_ch && n == max_ch) break;
      if (best.channels > 0 && best.channels * best.bw_inter >= total) break;
      if (i < count - 1 && (best.channels == 0 || speeds[i + 1] / best.bw_inter > .49)) {
        ++i;
        continue;
      }
      break;
    }
    if (best.channels == 0) return pattern == kNvlsPattern ? Graph{} : Graph{1, 0.1, 0.1};
    // ncclTopoDupChannels.
    if (pattern != kNvlsPattern && best.bw_intra >= 25.0 && !(cc > 80 && best.bw_intra < 50.0 && best.channels > 4)) {
      const int dup = std::min(best.channels * 2, max_ch);
      const int div = (dup + best.channels - 1) / best.channels;
      best = {dup, best.bw_intra / div, best.bw_inter / div};
    }
    // Pass 2: raise the speed while the channels still fit.
    int j = 0;
    while (j < count - 1 && speeds[j] > best.bw_inter) ++j;
    while (j > 0) {
      const double up = speeds[j - 1];
      Graph g = best;
      if (pattern == kRingPattern) g = {fit(up, up), up, up};
      else if (pattern == kNvlsPattern && best.bw_inter < 2 * best.bw_intra) g.bw_inter = up;
      else if (pattern == kTreePattern && best.bw_intra < 2 * best.bw_inter) g.bw_intra = up;
      else break;
      if (fit(g.bw_intra, g.bw_inter) < best.channels || !better(g, best)) break;
      best = g;
      --j;
    }
    return best;
  }
};

Graph search(const Constants& c, const System& s, Pattern pattern, int min_ch, int max_ch) {
  const bool net = s.nodes > 1;
  const bool sm100 = s.compute_capability >= 100, sm90 = s.compute_capability >= 90;
  const std::vector<double>& speeds = net ? (sm100 ? c.sm100_inter : sm90 ? c.sm90_inter : c.speeds_inter)
                                          : (sm100 ? c.sm100_intra : sm90 ? c.sm90_intra : c.speeds_intra);
  double total = s.local_ranks > 1 ? s.gpu_bw : s.nics * s.nic_bw;
  if (s.local_ranks > 1 && pattern != kRingPattern) total *= double(s.local_ranks) / (s.local_ranks - 1);
  return Search{s, pattern, min_ch, max_ch, speeds, net, total}.run(s.compute_capability);
}

bool nvls_supported(const System& s) { return s.nvls && s.nvlink && s.compute_capability >= 90 && s.local_ranks > 2; }

enum Func { kBroadcast, kReduce, kAllGather, kReduceScatter, kAllReduce, kNoFunc };

Func func_of(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::broadcast: return kBroadcast;
    case CollectiveOp::reduce: return kReduce;
    case CollectiveOp::all_gather: return kAllGather;
    case CollectiveOp::reduce_scatter: return kReduceScatter;
    case CollectiveOp::all_reduce: return kAllReduce;
    default: return kNoFunc;
  }
}

}  // namespace

const char* algo_name(Algo a) {
  static const char* names[] = {"Tree", "Ring", "CollNetDirect", "CollNetChain", "NVLS", "NVLSTree", "PAT"};
  return names[a];
}

const char* proto_name(Proto p) {
  static const char* names[] = {"LL", "LL128", "Simple"};
  return names[p];
}

Algorithm modelled(Algo a) {
  switch (a) {
    case kTree: return Algorithm::tree;
    case kRing: return Algorithm::ring;
    case kNvls: return Algorithm::nvls;
    case kNvlsTree: return Algorithm::nvls_tree;
    case kPat: return Algorithm::pat;
    default: return Algorithm::automatic;
  }
}

System system_of(const Topology& t, const std::vector<int>& group) {
  System s;
  s.compute_capability = t.gpu.compute_capability;
  s.ranks = static_cast<int>(group.size());
  const int gpn = std::max(1, t.gpus_per_node);
  std::set<int> nodes;
  for (int g : group) nodes.insert(g / gpn);
  s.nodes = static_cast<int>(nodes.size());
  for (int g : group) s.local_ranks += g / gpn == group.front() / gpn;
  s.host_cpu = t.nic.host_cpu;
  if (!t.collectives.protocols.empty())
    for (int p = 0; p < kNumProtos; ++p)
      s.protocols[p] = std::any_of(t.collectives.protocols.begin(), t.collectives.protocols.end(),
                                   [&](const ProtocolSpec& spec) { return spec.name == proto_name(static_cast<Proto>(p)); });
  s.nvlink = t.intra.fabric != IntraFabric::pcie;
  s.nvls = t.intra.nvls && t.intra.fabric == IntraFabric::nvswitch;
  const Constants& c = kNccl223;   // topo.h's per-link figures are the same in every version carried
  const int cc = s.compute_capability;
  if (s.nvlink) {
    const double link_rate = cc >= 100 ? 50.0 : 25.0;   // GB/s per NVLink per direction (datasheets.md)
    const double per_link = cc >= 100  ? c.nvlink_per_link_sm100
                            : cc >= 90 ? c.nvlink_per_link_sm90
                            : cc == 86 ? c.nvlink_per_link_sm86
                            : cc >= 80 ? c.nvlink_per_link_sm80
                                       : c.nvlink_per_link_sm70;
    s.gpu_bw = std::round(t.intra.bandwidth / 1e9 / link_rate) * per_link;
    s.path_bw = t.intra.fabric == IntraFabric::nvlink_mesh && gpn > 1 ? s.gpu_bw / (gpn - 1) : s.gpu_bw;
  } else {
    double line = t.intra.bandwidth;
    if (t.intra.pcie_switches > 1 && t.intra.host_bandwidth > 0) line = std::min(line, t.intra.host_bandwidth);
    s.gpu_bw = s.path_bw = 0.75 * line / 1e9;   // NCCL's PCIe figure: Gen4 x16 24 GB/s of 32
  }
  // NICs serving the communicator's GPUs of the first node (as the fabric assigns them).
  const std::vector<std::vector<int>> of = nics_of_gpus(t.nic, gpn);
  std::set<int> nics;
  for (int g : group) {
    if (g / gpn != group.front() / gpn) continue;
    const int local = g % gpn;
    if (!of[local].empty()) nics.insert(of[local].front());
    else if (t.nic.count > 0) nics.insert(local * t.nic.count / gpn);
  }
  s.nics = static_cast<int>(nics.size());
  // NICs that serve one GPU and nothing else reach NCCL as one network device of their summed
  // speed: aws-ofi-nccl presents a p5's four 100 Gb/s EFA per GPU as one 400 Gb/s device (its
  // multi-rail protocol). Seen one by one, NCCL's graph search would size NVLS-tree's inter-node
  // bandwidth at one card's 12.5 GB/s and pick the tree for every size above 512 MiB. (GPUs that
  // share a NIC share all their NICs: the spec checks it.)
  const std::vector<int>& first = of[group.front() % gpn];
  const bool own = std::count(of.begin(), of.end(), first) == 1;
  s.nic_bw = double(own && !first.empty() ? first.size() : 1) * t.nic.bandwidth / 1e9;
  return s;
}

Graphs search_graphs(const std::string& version, const System& s) {
  const Constants& c = constants(version);
  Graphs g;
  g.ring = search(c, s, kRingPattern, 1, kMaxChannels / 2);
  g.tree = search(c, s, kTreePattern, g.ring.channels, g.ring.channels);
  if (nvls_supported(s)) {
    const int max_ch = std::min(kMaxNvlsArity, s.local_ranks);
    g.nvls = search(c, s, kNvlsPattern, s.nodes == 1 ? max_ch : 1, max_ch);
  }
  g.comm_channels = std::min(kMaxChannels, 2 * g.ring.channels);
  return g;
}

Tuning tune(const std::string& version, const System& s, CollectiveOp op, double bytes) {
  const Constants& c = constants(version);
  if (s.compute_capability == 0) throw std::invalid_argument("NCCL's tuning model needs the GPU's compute capability");
  Tuning out;
  const Func func = func_of(op);
  if (func == kNoFunc || s.ranks <= 1) return out;
  const Graphs graphs = search_graphs(version, s);
  const int nodes = s.nodes, ranks = s.ranks;
  const double ppn = double(ranks) / nodes;
  const Gen gen = generation(s.compute_capability);
  const int index2 = nodes <= 2 ? nodes - 1 : 2;
  const bool amd = s.host_cpu == HostCpu::amd;
  const int index1 = nodes == 1 ? gen : amd ? 1 : 0;   // across nodes: the CPU's row (AMD 1, others 0)
  const double ll_max_bw = c.ll_max_bw[index1][index2];
  const double per_ch_tree = c.per_ch_max_tree_bw[gen][index2];
  const double per_ch_ring_ll128 = c.per_ch_max_ring_ll128_bw[gen][index2];
  const double per_ch_tree_ll128 = c.per_ch_max_tree_ll128_bw[gen][index2];
  const Hw intra_hw = s.nvlink ? kNvlinkHw : kPciHw, hw = nodes == 1 ? intra_hw : kNetHw;
  const bool gather = func == kAllGather || func == kReduceScatter;
  const int nsteps = func == kAllReduce ? 2 * (ranks - 1) : gather ? ranks - 1 : ranks;

  for (int ai = 0; ai < kNumAlgos; ++ai) {
    const Algo a = static_cast<Algo>(ai);
    // Which algorithms exist for the function, and which are enabled by default on this system.
    if ((func == kBroadcast || func == kReduce) && a != kRing) continue;
    if (gather && a != kPat && a != kRing && a != kNvls && a != kCollNetDirect) continue;
    if (func == kAllReduce && a == kPat) continue;
    if (a == kCollNetDirect || a == kCollNetChain) continue;   // NCCL_COLLNET_ENABLE off
    if (a == kNvls && (nodes > 1 || !nvls_supported(s))) continue;
    if (a == kNvlsTree && (nodes == 1 || !nvls_supported(s))) continue;
    if (a == kPat && (nodes != ranks || s.compute_capability < 60)) continue;
    const Graph& graph = a == kTree ? graphs.tree : (a == kNvls || a == kNvlsTree) ? graphs.nvls : graphs.ring;
    if (graph.channels == 0) continue;
    for (int pi = 0; pi < kNumProtos; ++pi) {
      const Proto p = static_cast<Proto>(pi);
      if ((a == kNvls || a == kNvlsTree || a == kPat) && p != kSimple) continue;
      // A protocol the topology does not run is one NCCL_PROTO switched off (aws-ofi-nccl: no LL128
      // over EFA): NCCL's tuner never weighs it.
      if (!s.protocols[p]) continue;
      // LL128: NVLink inside the node, compute capability >= 70.
      if (p == kLL128 && (!s.nvlink || s.compute_capability < 70)) continue;

      double bw = nodes <= 2 ? graph.bw_intra : graph.bw_inter;
      if (a == kNvls) bw = std::min(graph.bw_intra, graph.bw_inter);
      if (a == kNvlsTree) bw = std::min(graph.bw_intra, nodes <= 2 ? graph.bw_inter : graph.bw_inter / 2);
      double bus = graph.channels * bw;
      if (a == kRing && p == kLL) bus = std::min(ll_max_bw, bus * .5);
      if (a == kRing && p == kLL128) bus = std::min(bus * .92, graph.channels * per_ch_ring_ll128);
      if (a == kTree && func == kAllReduce) bus = std::min(bus * .92, graph.channels * per_ch_tree);
      if (a == kTree && p == kLL) bus = std::min(bus / 3.8, ll_max_bw);
      if (a == kTree && p == kLL128) bus = std::min(bus * (nodes == 1 ? 7.0 / 9.0 : 120.0 / 128.0), graph.channels * per_ch_tree_ll128);
      if (a == kPat) bus *= .75;
      if (!(a != kRing && gather)) {
        const double ratio = a == kRing ? double(ranks) / nsteps : (a == kNvls || a == kNvlsTree) ? 5.0 / 6.0 : .5;
        bus *= ratio;
      }
      if (!(bus > 0)) continue;

      double lat = c.base_lat[a][p];
      double intra_lat = c.hw_lat[intra_hw][a][p];
      const double inter_lat = ppn == 1 ? c.hw_lat[kNetHw][kTree][p] : c.hw_lat[kNetHw][a][p];
      if (a == kRing) {
        if (func == kReduce || func == kBroadcast) {
          lat += c.hw_lat[hw][a][p];   // the same channels for every ring
        } else {
          const double overhead = nodes > 1 ? net_post_overhead(s.host_cpu, p == kSimple) * 1e6 : 0.0;
          intra_lat = std::max(intra_lat, overhead);
          const int inter_steps = nodes == 1 ? 0 : func == kAllReduce ? 2 * (nodes - 1) : nodes - 1;
          lat += (nsteps - inter_steps) * intra_lat + inter_steps * inter_lat;
        }
      } else if (a == kTree) {
        lat += 2 * ((ranks / nodes - 1) * intra_lat + log2i(nodes) * inter_lat);
      } else if (a == kNvls) {
        lat = intra_lat + (nodes > 1 ? inter_lat : 0.0);
      } else if (a == kNvlsTree) {
        lat += intra_lat + 2 * log2i(nodes) * inter_lat;
      } else if (a == kPat) {
        lat = 8 + log2i(nodes) * (inter_lat / 3.5) + ranks * 2.8;
      }

      // ncclTopoGetAlgoTime.
      Candidate cand{a, p, graph.channels, lat, bus, 0};
      const long long n = static_cast<long long>(bytes);
      const int log_size = log2i(n >> 6);
      double time_bw = bus, time_lat = lat;
      if (a == kTree && func == kAllReduce && log_size >= 0 && log_size < 23) time_bw *= c.tree_correction[p][log_size];
      if (a == kRing && p == kSimple && nodes > 1 && func == kAllReduce &&
          n / (static_cast<long long>(graphs.comm_channels) * ranks) >= 64)
        time_lat *= s.compute_capability >= 80 ? 1.4 : 1.9;
      cand.time_us = time_lat + bytes / (1000 * time_bw);
      out.candidates.push_back(cand);
    }
  }
  for (int i = 0; i < static_cast<int>(out.candidates.size()); ++i)
    if (out.pick < 0 || out.candidates[i].time_us < out.candidates[out.pick].time_us) out.pick = i;
  return out;
}

}  // namespace tpsim::engine::nccl
