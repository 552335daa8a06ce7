// Hierarchical all-reduce for groups of N nodes x L ranks per node (node-major: rank = n*L + l).
// Chunk l*N + m is piece m of shard l. S = nccl-tests size:
//   1. intra-node ring reduce-scatter of the L shards: local rank l ends with shard l summed over
//      its node.                                     L-1 rounds, (L-1)/L * S per rank (NVLink)
//   2. inter-node ring all-reduce of shard l among the N ranks with local index l (one ring per
//      local index, i.e. per rail).                  2(N-1) rounds, 2(N-1)/N * S/L per rank (NIC)
//   3. intra-node ring all-gather of the shards.     L-1 rounds, (L-1)/L * S per rank
// 2(L-1) + 2(N-1) rounds in all; every node runs each phase in the same rounds.
#include "collectives/builder.hpp"

namespace tpsim::coll {

Schedule hierarchical_schedule(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce) unsupported(r, "hierarchical is modelled for all_reduce only");
  const int p = r.ranks, l_per = r.ranks_per_node;
  if (l_per < 1 || p % l_per != 0)
    unsupported(r, "ranks_per_node must be >= 1 and divide the group size " + std::to_string(p) + " (got " +
                       std::to_string(l_per) + ")");
  const int nodes = p / l_per;
  Schedule s = empty_schedule(r, p, p);
  std::vector<std::vector<int>> shards(l_per), pieces(nodes);
  for (int l = 0; l < l_per; ++l) shards[l] = iota(nodes, l * nodes);

  auto intra = [&](int n) { return iota(l_per, n * l_per); };
  auto rail = [&](int l) {
    std::vector<int> m;
    for (int n = 0; n < nodes; ++n) m.push_back(n * l_per + l);
    return m;
  };
  int round = 0, used = 0;
  for (int n = 0; n < nodes; ++n) used = ring_reduce_scatter(s, intra(n), shards, round);
  round += used;
  for (int l = 0; l < l_per; ++l) {
    for (int m = 0; m < nodes; ++m) pieces[m] = {l * nodes + m};
    used = ring_reduce_scatter(s, rail(l), pieces, round);
    used += ring_all_gather(s, rail(l), pieces, round + used);
  }
  round += used;
  for (int n = 0; n < nodes; ++n) ring_all_gather(s, intra(n), shards, round);
  for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(p);
  return s;
}

}  // namespace tpsim::coll
