// Durations of fused ops and of collectives run alone (unit_times.hpp).
#include "engine/unit_times.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fmt/format.h>

#include "tpsim/cost.hpp"

namespace tpsim::engine {

UnitTime UnitTimes::fused(const Op& op, double tail) {
  const Key key{op.parts.get(), tail};
  if (auto it = fused_.find(key); it != fused_.end()) return it->second;
  UnitTime t;
  t.tp_free = tail;
  if (op.parts) run(*op.parts, tail, t);
  // A pure function of (parts, tail): the cap only bounds memory, never changes a result.
  if (tail == 0 || fused_.size() < kMemoLimit) fused_.emplace(key, t);
  return t;
}

// Each part on its stream in list order, after its deps (indices into the list). The compute
// stream may go on once every compute part and every part something waits for has ended.
void UnitTimes::run(const std::vector<Op>& parts, double tail, UnitTime& t) {
  std::vector<double> end(parts.size(), 0.0);
  std::vector<char> awaited(parts.size(), 0);
  for (const Op& part : parts)
    for (int d : part.deps) awaited.at(size_t(d)) = 1;
  double compute_free = 0, tp_free = tail;
  std::vector<SmHold> holds;   // this list's collectives so far: [start, end) and SM share
  // Runs by the pass each part's time counts to: a recomputed forward is backward time (Megatron
  // counts it so, as do the per-layer figures), so a full-recompute backward (recompute, backward,
  // per layer) is one run, not two a layer.
  auto phase = [](const Op& op) { return op.recompute ? Pass::backward : op.pass; };
  std::vector<PassRun> runs;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Op& part = parts[i];
    if (runs.empty() || phase(part) != phase(parts[runs.back().first])) {
      if (!runs.empty()) runs.back().end = compute_free;
      runs.push_back({.first = i, .count = 0, .end = 0, .name = {}, .pass = part.pass, .recompute = part.recompute, .layer = part.layer});
    }
    PassRun& r = runs.back();
    if (r.count++ > 0) {
      if (r.layer != part.layer) r.layer = -1;
      if (r.pass != part.pass || r.recompute != part.recompute) r.pass = Pass::backward, r.recompute = false;   // mixed: backward
    }
    const bool on_tp = part.stream != Stream::compute;
    double start = on_tp ? tp_free : compute_free;
    for (int d : part.deps) start = std::max(start, end[size_t(d)]);
    if (part.kind == OpKind::collective) {
      const auto [seconds, share] = alone_with_share(part.collective);
      t.collectives += seconds;
      end[i] = start + seconds;
      if (share > 0) holds.push_back({start, end[i], share});
    } else if (part.parts) {   // a merged run of pieces: each continues the TP tail of the last
      const UnitTime inner = fused(part, std::max(0.0, tp_free - start));
      t.collectives += inner.collectives;
      end[i] = on_tp ? start + inner.seconds : stretched_end(start, inner.seconds, holds);
      if (inner.tp_free > 0) tp_free = std::max(tp_free, start + inner.tp_free);
    } else {
      const double seconds = op_cost(topology_.gpu, part).seconds;
      end[i] = on_tp ? start + seconds : stretched_end(start, seconds, holds);
    }
    (on_tp ? tp_free : compute_free) = std::max(on_tp ? tp_free : compute_free, end[i]);
    if (!on_tp || awaited[i]) t.seconds = std::max(t.seconds, end[i]);
  }
  t.tp_free = std::max(t.tp_free, tp_free);
  if (runs.size() < 2) return;
  // A run ends when the compute stream is through its parts; the last at the op's end, which may
  // also wait for a collective something awaits.
  runs.back().end = t.seconds;
  for (PassRun& r : runs) {
    r.end = std::min(r.end, t.seconds);
    const std::string& first = parts[r.first].name;
    r.name = r.count == 1 ? first : fmt::format("{} .. {} ({} pieces)", first, parts[r.first + r.count - 1].name, r.count);
  }
  t.runs = std::make_shared<const std::vector<PassRun>>(std::move(runs));
}

namespace {

// Whether any local GPU index may stand for any other: one fabric where all GPU pairs are alike, each
// GPU with a NIC of its own, and no sockets that would set some GPUs apart.
bool local_gpus_interchangeable(const Topology& t) {
  if (t.intra.fabric != IntraFabric::nvswitch || !t.nic.sockets.empty() || !t.nic.gpu_sockets.empty()) return false;
  const std::vector<std::vector<int>> nics = nics_of_gpus(t.nic, t.gpus_per_node);
  std::vector<int> served(size_t(std::max(t.nic.count, 0)), 0);
  for (const auto& mine : nics) {
    if (mine.size() != 1 || mine[0] < 0 || mine[0] >= t.nic.count || served[size_t(mine[0])]++) return false;
  }
  return true;
}

}  // namespace

std::vector<int> canonical_group(const Topology& t, const std::vector<int>& group) {
  if (group.empty() || t.gpus_per_node <= 0 || *std::min_element(group.begin(), group.end()) < 0) return group;
  const int gpn = t.gpus_per_node;
  const bool leaves = t.network.kind != NetworkKind::single_switch && t.network.nodes_per_leaf > 0;   // or groups
  const int per_leaf = leaves ? t.network.nodes_per_leaf : std::max(t.nodes, 1);
  int min_leaf = INT32_MAX, min_in_leaf = INT32_MAX, min_local = INT32_MAX;
  for (int g : group) {
    const int node = g / gpn;
    min_leaf = std::min(min_leaf, node / per_leaf);
    min_in_leaf = std::min(min_in_leaf, node % per_leaf);
    min_local = std::min(min_local, g % gpn);
  }
  if (!local_gpus_interchangeable(t)) min_local = 0;
  // Whole leaves move as one, and within its leaf every node moves back by the same count no
  // node has to spare: which members share a node or a leaf is unchanged.
  std::vector<int> out;
  out.reserve(group.size());
  for (int g : group) {
    const int node = g / gpn, leaf = node / per_leaf - min_leaf, in_leaf = node % per_leaf - min_in_leaf;
    out.push_back((leaf * per_leaf + in_leaf) * gpn + (g % gpn - min_local));
  }
  return out;
}

std::pair<double, double> UnitTimes::alone_with_share(const CollectiveInfo& original) {
  // Every translation of a group on the homogeneous topology takes the same time: time one
  // representative (canonical_group). DP groups of one replica's 128 GPUs are then one collective
  // to time, not 128, each on a platform of the whole cluster.
  CollectiveInfo c = original;
  c.group = canonical_group(topology_, original.group);
  const auto key = std::make_tuple(int(c.op), int(c.algorithm), c.group, c.bytes, c.root);
  auto it = alone_.find(key);
  if (it != alone_.end()) return it->second;
  std::pair<double, double> t{0.0, 0.0};
  if (c.group.size() > 1) {
    const CollectiveTiming timing = time_collective(topology_, c.op, c.algorithm, c.group, double(c.bytes), options_);
    t = {timing.seconds, collective_sm_share(topology_, c.op, timing.instance, c.group, double(c.bytes))};
  }
  return alone_.emplace(key, t).first->second;
}

}  // namespace tpsim::engine
