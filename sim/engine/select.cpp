// The selector (select.hpp): algorithm as NCCL's tuner would pick it, NCCL's channels, pipeline
// chunks, and the protocol with the least static estimate (collective_price.cpp), priced on the
// very plan the engine will time; or, with topology.collectives.nccl_version, the algorithm and
// protocol of that NCCL's own tuning model (nccl_tuner.hpp).
#include "engine/select.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/collective_plan.hpp"
#include "engine/nccl_tuner.hpp"
#include "engine/sm_share.hpp"

namespace tpsim::engine {

namespace {

CollectiveSpec spec_for(CollectiveOp op, const std::vector<int>& group, double bytes, int root) {
  CollectiveSpec spec;
  spec.op = op;
  spec.group = group;
  spec.bytes = bytes;
  spec.root = root;
  return spec;
}

constexpr double kPipelineChunk = 1 << 20;   // bytes per pipeline chunk (NCCL Simple: ~0.5-1 MiB steps)
constexpr int kMaxPipeline = 64;
// NVLS-tree's transfers a schedule may hold (~24 B each): its pipeline is cut coarser past that.
constexpr double kMaxNvlsTreeTransfers = 4e6;

bool single_node(const Fabric& f, const std::vector<int>& group) {
  return std::all_of(group.begin(), group.end(), [&](int g) { return f.node_of(g) == f.node_of(group[0]); });
}

// Leading ranks of the group on the first rank's node.
int ranks_per_node(const Fabric& f, const std::vector<int>& group) {
  int n = 0;
  while (n < static_cast<int>(group.size()) && f.node_of(group[n]) == f.node_of(group[0])) ++n;
  return n;
}

// Algorithms whose schedule cuts each channel's data into ScheduleRequest::pipeline chunks.
bool pipelined(CollectiveOp op, Algorithm a) {
  return a == Algorithm::tree || a == Algorithm::nvls || a == Algorithm::nvls_tree ||
         (a == Algorithm::ring && (op == CollectiveOp::broadcast || op == CollectiveOp::reduce));
}

// True when the group spans several nodes with the same number (> 1) of GPUs on each, node after
// node: the layout NCCL's multi-node rings and trees are built for.
bool node_major(const Fabric& f, const std::vector<int>& g) {
  const int p = static_cast<int>(g.size()), per_node = ranks_per_node(f, g);
  bool ok = per_node > 1 && per_node < p && p % per_node == 0;
  for (int i = 0; ok && i < p; ++i) {
    const int block = i - i % per_node;
    ok = f.node_of(g[i]) == f.node_of(g[block]) && (block == 0 || f.node_of(g[block]) != f.node_of(g[block - 1]));
  }
  return ok;
}

// NCCL's tree across nodes: an all-reduce over a node-major group chains each node's GPUs under
// the inter-node double binary tree; anything else runs the flat double binary tree (0).
int tree_ranks_per_node(const Fabric& f, CollectiveOp op, const std::vector<int>& g) {
  return op == CollectiveOp::all_reduce && node_major(f, g) ? ranks_per_node(f, g) : 0;
}

// NCCL's multi-node rings and trees: one channel per NIC group (the NICs of one GPU, fabric.hpp)
// the group uses; channel c rotates every
// node's block of positions by c, so each channel enters and leaves a node through different GPUs
// and NICs (a tree channel's chain starts at, and its inter-node edges leave from, local rank c).
// A tree channel carries both complementary trees, each on half its data: NCCL's channel c and its
// duplicate c + channels. Single-node groups, other algorithms and groups not laid out node by
// node: one channel.
std::vector<std::vector<int>> channel_orders(const Fabric& f, CollectiveOp op, Algorithm algorithm,
                                             const std::vector<int>& g) {
  const int p = static_cast<int>(g.size());
  std::vector<int> identity(p);
  for (int i = 0; i < p; ++i) identity[i] = i;
  const int per_node = ranks_per_node(f, g);
  const bool rotated = (algorithm == Algorithm::ring && op != CollectiveOp::all_to_all && op != CollectiveOp::send_recv) ||
                       (algorithm == Algorithm::tree && tree_ranks_per_node(f, op, g) > 0);
  if (!rotated || !node_major(f, g)) return {identity};
  std::set<int> nics;
  for (int i = 0; i < per_node; ++i) nics.insert(f.nic_link(g[i]));
  std::vector<std::vector<int>> orders;
  for (int c = 0; c < static_cast<int>(nics.size()); ++c) {
    std::vector<int> order(p);
    for (int i = 0; i < p; ++i) order[i] = i - i % per_node + (i % per_node + c) % per_node;
    orders.push_back(std::move(order));
  }
  return orders;
}

struct Priced {
  CollectiveInstance instance;
  double estimate = 0;
};

// NVLS-tree's pipeline as NCCL cuts it (enqueue.cc, 2.2x): every step moves a chunk per channel
// and head, concurrentOps = nvlsChannels x nHeads of them (heads: one per local rank here, one NIC
// rail each); the chunk is NCCL_NVLS_CHUNKSIZE (128 KiB; at most 64 KiB from 4 nodes up), halved
// to 64 KiB below 4 x concurrentOps x chunk bytes and to 32 KiB below 1 x. So a 64 MiB all-reduce
// on 2 H100 nodes runs 4 steps (16 x 8 x 128 KiB = 16 MiB each) through the 2H + 3 stages
// (nvls_tree.cpp): the fill that keeps mid sizes far from the asymptote. Capped so the schedule
// stays near kMaxNvlsTreeTransfers: past that the pipeline is coarser than NCCL's (more fill).
int nvls_tree_pipeline(const Fabric& f, const std::vector<int>& group, double bytes, int per_node) {
  CollectiveInstance nvls;
  nvls.algorithm = Algorithm::nvls_tree;
  const double channels = collective_ctas(f.topology(), CollectiveOp::all_reduce, nvls, group, bytes);
  const int p = static_cast<int>(group.size()), nodes = p / std::max(per_node, 1);
  const double concurrent = channels * per_node;
  double chunk = nodes >= 4 ? 64 * 1024 : 128 * 1024;
  if (bytes < 4 * concurrent * chunk && chunk > 64 * 1024) chunk = 64 * 1024;
  if (bytes < 1 * concurrent * chunk && chunk > 32 * 1024) chunk = 32 * 1024;
  const double steps = std::ceil(bytes / (concurrent * chunk));
  // Transfers per pipeline chunk and tree: L adds into the switch, one to the head, at most one up,
  // two down, one into the switch, L out of it, per node (nvls_tree.cpp).
  const double per_step = 2.0 * per_node * nodes * (2.0 * per_node + 5);
  const double most = std::max(1.0, std::floor(kMaxNvlsTreeTransfers / per_step));
  return static_cast<int>(std::clamp(steps, 1.0, most));
}

// `algorithm` made concrete but for its protocol: channels, pipeline chunks, ranks per node.
CollectiveSpec shaped(const Fabric& f, CollectiveOp op, Algorithm algorithm, const std::vector<int>& group,
                      double bytes, int root) {
  CollectiveSpec spec = spec_for(op, group, bytes, root);
  CollectiveInstance& inst = spec.instance;
  inst.algorithm = algorithm;
  inst.channel_orders = channel_orders(f, op, algorithm, group);
  if (pipelined(op, algorithm)) {
    const double channel_bytes = bytes / inst.channel_orders.size();
    inst.pipeline = algorithm == Algorithm::nvls_tree
                        ? nvls_tree_pipeline(f, group, bytes, ranks_per_node(f, group))
                        : static_cast<int>(std::clamp(std::ceil(channel_bytes / kPipelineChunk), 1.0, double(kMaxPipeline)));
  }
  if (algorithm == Algorithm::hierarchical || algorithm == Algorithm::nvls_tree) inst.ranks_per_node = ranks_per_node(f, group);
  if (algorithm == Algorithm::tree) inst.ranks_per_node = tree_ranks_per_node(f, op, group);
  return spec;
}

// `algorithm` made concrete, with the protocol of least estimate (the first listed on ties).
Priced with_best_protocol(const Fabric& f, CollectiveOp op, Algorithm algorithm, const std::vector<int>& group,
                          double bytes, int root) {
  CollectiveSpec spec = shaped(f, op, algorithm, group, bytes, root);
  CollectiveInstance& inst = spec.instance;
  CollectivePlan plan = plan_shape(f, spec, Fidelity::flow);
  Priced best;
  bool first = true;
  for (const ProtocolCost& proto : candidate_protocols(f.topology(), algorithm)) {
    price(plan, f, proto);
    if (first || plan.estimate < best.estimate) {
      best.estimate = plan.estimate;
      inst.protocol = proto.name;
      first = false;
    }
  }
  best.instance = std::move(inst);
  return best;
}

// NCCL's (algorithm, protocol) as a tpsim instance, when tpsim can run it: an algorithm it has a
// schedule for that fits the group, and a protocol the topology lists (or the ideal one of a
// topology that lists none). Throws std::invalid_argument otherwise.
CollectiveInstance with_protocol(const Fabric& f, CollectiveOp op, Algorithm algorithm, const std::vector<int>& group,
                                 double bytes, int root, const std::string& protocol) {
  if (algorithm == Algorithm::automatic) throw std::invalid_argument("not modelled");
  CollectiveSpec spec = shaped(f, op, algorithm, group, bytes, root);
  plan_shape(f, spec, Fidelity::flow);   // throws when the algorithm does not fit
  const std::vector<ProtocolCost> protocols = candidate_protocols(f.topology(), algorithm);
  const bool ideal = protocols.size() == 1 && protocols.front().name == "ideal";
  if (!ideal && std::none_of(protocols.begin(), protocols.end(), [&](const ProtocolCost& p) { return p.name == protocol; }))
    throw std::invalid_argument("protocol " + protocol + " is not in the topology's collectives.protocols");
  spec.instance.protocol = ideal ? "ideal" : protocol;
  return spec.instance;
}

}  // namespace

NcclSelection nccl_select(const Fabric& f, CollectiveOp op, const std::vector<int>& group, double bytes, int root,
                          CollectiveInstance* followed) {
  NcclSelection out;
  const Topology& t = f.topology();
  out.version = t.collectives.nccl_version;
  if (out.version.empty()) return out;
  const nccl::Tuning tuning = nccl::tune(out.version, nccl::system_of(t, group), op, bytes);
  for (const nccl::Candidate& c : tuning.candidates)
    out.candidates.push_back({nccl::algo_name(c.algo), nccl::proto_name(c.proto), c.channels, c.latency_us * 1e-6,
                              c.bandwidth_gbs * 1e9, c.time_us * 1e-6, nccl::modelled(c.algo)});
  out.pick = tuning.pick;
  if (out.pick < 0) return out;
  // By NCCL's time, NCCL's own order on ties (so its pick first): the first tpsim can run.
  std::vector<int> order(out.candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return out.candidates[a].seconds < out.candidates[b].seconds; });
  for (int i : order) {
    try {
      CollectiveInstance inst = with_protocol(f, op, out.candidates[i].modelled, group, bytes, root, out.candidates[i].protocol);
      out.followed = i;
      if (followed) *followed = std::move(inst);
      break;
    } catch (const std::invalid_argument&) {
    }
  }
  return out;
}

CollectiveInstance resolve(const Fabric& f, CollectiveOp op, Algorithm requested, const std::vector<int>& group,
                           double bytes, int root) {
  check_collective(f, spec_for(op, group, bytes, root));
  const Topology& t = f.topology();
  const int p = static_cast<int>(group.size());
  Algorithm a = requested;
  if (a == Algorithm::automatic && !t.collectives.nccl_version.empty()) {
    CollectiveInstance inst;
    if (nccl_select(f, op, group, bytes, root, &inst).followed >= 0) return inst;
  }
  if (a == Algorithm::automatic) {
    const bool one_node = single_node(f, group);
    if (op != CollectiveOp::all_reduce) a = default_algorithm(op);
    else if (p == 1) a = Algorithm::ring;
    // NCCL uses NVLink SHARP for all-reduce when the switch supports it and more than 4 GPUs of
    // one node take part (datasheets.md: "used at >4 GPUs").
    // NVLS is Simple-only, so the tuner compares it with the ring's best protocol: LL rings win
    // small messages, NVLS the large ones.
    else if (one_node && t.intra.fabric == IntraFabric::nvswitch && t.intra.nvls && p > 4) {
      Priced ring = with_best_protocol(f, op, Algorithm::ring, group, bytes, root);
      Priced nvls = with_best_protocol(f, op, Algorithm::nvls, group, bytes, root);
      return nvls.estimate <= ring.estimate ? nvls.instance : ring.instance;
    } else if (one_node) a = Algorithm::ring;
    else {
      // Across nodes the tuner takes whichever of ring and tree it predicts faster: the tree's
      // log-depth latency wins for small messages, the ring's bandwidth for large ones.
      // Where every node's switch reduces (NVLS) the tuner also weighs NVLS-tree, which NCCL
      // picks for large multi-node all-reduces: the switch sums each node, the NICs carry 1/L each.
      Priced best = with_best_protocol(f, op, Algorithm::ring, group, bytes, root);
      std::vector<Algorithm> others = {Algorithm::tree};
      if (t.intra.fabric == IntraFabric::nvswitch && t.intra.nvls) others.push_back(Algorithm::nvls_tree);
      for (Algorithm other : others) try {
          Priced o = with_best_protocol(f, op, other, group, bytes, root);
          if (o.estimate < best.estimate) best = std::move(o);
        } catch (const std::invalid_argument&) {
        }
      return best.instance;
    }
  }
  return with_best_protocol(f, op, a, group, bytes, root).instance;
}

}  // namespace tpsim::engine
