// Hierarchical collectives for groups of N nodes x L ranks per node (node-major: rank = n*L + l),
// one ring inside each node (NVLink) and one ring per local index across nodes (a rail: the ranks
// n*L + l for all n, i.e. the same NIC rail). S = nccl-tests size.
// all_reduce (chunk l*N + m is piece m of shard l):
//   1. intra-node ring reduce-scatter of the L shards: local rank l ends with shard l summed over
//      its node.                                  L-1 rounds, (L-1)/L * S per rank (NVLink)
//   2. ring all-reduce of shard l along rail l.   2(N-1) rounds, 2(N-1)/N * S/L per rank (NIC)
//   3. intra-node ring all-gather of the shards.  L-1 rounds, (L-1)/L * S per rank
//   2(L-1) + 2(N-1) rounds in all; every node runs each phase in the same rounds.
// all_gather (chunk r is rank r's shard):
//   1. ring all-gather along each rail: rank n*L+l collects chunks {m*L + l}.   N-1 rounds, (N-1)/p * S
//   2. intra-node ring all-gather of those rail blocks.                          L-1 rounds, (L-1)/L * S
// reduce_scatter (chunk r is rank r's output shard): the mirror image.
//   1. intra-node ring reduce-scatter of rail blocks {m*L + l}.                  L-1 rounds, (L-1)/L * S
//   2. ring reduce-scatter along each rail of single chunks.                     N-1 rounds, (N-1)/p * S
#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {

struct Grid {
  int nodes = 0, per = 0;
  std::vector<int> node(int n) const { return iota(per, n * per); }
  std::vector<int> rail(int l) const {
    std::vector<int> m;
    for (int n = 0; n < nodes; ++n) m.push_back(n * per + l);
    return m;
  }
};

// Ring all-reduce phases 1-3 above.
void all_reduce(Schedule& s, const Grid& g) {
  std::vector<std::vector<int>> shards(g.per), pieces(g.nodes);
  for (int l = 0; l < g.per; ++l) shards[l] = iota(g.nodes, l * g.nodes);
  int round = 0, used = 0;
  for (int n = 0; n < g.nodes; ++n) used = ring_reduce_scatter(s, g.node(n), shards, round);
  round += used;
  for (int l = 0; l < g.per; ++l) {
    for (int m = 0; m < g.nodes; ++m) pieces[m] = {l * g.nodes + m};
    used = ring_reduce_scatter(s, g.rail(l), pieces, round);
    used += ring_all_gather(s, g.rail(l), pieces, round + used);
  }
  round += used;
  for (int n = 0; n < g.nodes; ++n) ring_all_gather(s, g.node(n), shards, round);
}

}  // namespace

Schedule hierarchical_schedule(const ScheduleRequest& r) {
  const int p = r.ranks;
  if (r.op != CollectiveOp::all_reduce && r.op != CollectiveOp::all_gather && r.op != CollectiveOp::reduce_scatter)
    unsupported(r, "hierarchical implements all_reduce, all_gather and reduce_scatter only");
  if (r.ranks_per_node < 1 || p % r.ranks_per_node != 0)
    unsupported(r, "ranks_per_node must be >= 1 and divide the group size " + std::to_string(p) + " (got " +
                       std::to_string(r.ranks_per_node) + ")");
  const Grid g{p / r.ranks_per_node, r.ranks_per_node};
  Schedule s = empty_schedule(r, p, p);
  // Rail blocks: local index l's chunks {m*L + l}; single chunks of each rail member.
  std::vector<std::vector<int>> rail_blocks(g.per);
  for (int l = 0; l < g.per; ++l) rail_blocks[l] = g.rail(l);
  auto singles = [&](int l) {
    std::vector<std::vector<int>> b;
    for (int m : g.rail(l)) b.push_back({m});
    return b;
  };
  switch (r.op) {
    case CollectiveOp::all_reduce:
      all_reduce(s, g);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(p);
      break;
    case CollectiveOp::all_gather: {
      int used = 0;
      for (int l = 0; l < g.per; ++l) used = ring_all_gather(s, g.rail(l), singles(l), 0);
      for (int n = 0; n < g.nodes; ++n) ring_all_gather(s, g.node(n), rail_blocks, used);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = {i}, s.output_chunks[i] = iota(p);
      break;
    }
    default: {   // reduce_scatter
      int used = 0;
      for (int n = 0; n < g.nodes; ++n) used = ring_reduce_scatter(s, g.node(n), rail_blocks, 0);
      for (int l = 0; l < g.per; ++l) ring_reduce_scatter(s, g.rail(l), singles(l), used);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = iota(p), s.output_chunks[i] = {i};
      break;
    }
  }
  return s;
}

}  // namespace tpsim::coll
