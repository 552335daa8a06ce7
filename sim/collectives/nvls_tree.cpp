// NVLS-tree all-reduce (NCCL's NVLS_TREE): NVLink SHARP inside each node, a double binary tree
// between nodes. The group is N nodes x L ranks, node-major (rank n*L + l); participant p + n is
// node n's NVSwitch. Each rank's buffer is cut into L parts, one per head (local rank j, i.e. NIC
// rail j, carries part j across nodes), each part into the two trees' halves, each half into K
// pipeline chunks: chunk (j, t, k) = (2j + t)K + k, 2LK chunks in all. For chunk (j, t, k), with
// H = the inter-node tree's height and d = the depth of the node in tree t:
//   round k          every rank of node n adds the chunk into switch n (the node's first rank
//                    copies, the others add in rank order): the in-switch reduction
//   round k+1        switch n hands the node's sum to its head n*L + j
//   round k+2+h      the head at height h in tree t adds its partial into its parent's head
//   round k+2+H+d    the head at depth d copies the total to its child heads and to switch n
//   round k+3+H+d    switch n multicasts it to the node's L ranks
// K + 2H + 3 rounds. A head forwards a chunk the round after it arrived and a round's sends wait
// for every chunk they read, so each round costs a head at least one network latency: NCCL hides
// it (8 steps in flight, up and down trees on separate warps), this schedule does not. One round
// of slack per network hop hides it at `step` fidelity, but `flow` then times 4 nodes 12% slower.
// Per rank on NVLink: S into the switch and S back (as NVLS on one node), plus S/L to and from the
// switch as a head; per head across nodes: S/(2L) per tree edge and direction, so each NIC rail
// carries 1/L of the tree traffic.
#include "collectives/builder.hpp"

namespace tpsim::coll {

Schedule nvls_tree_schedule(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce) unsupported(r, "NVLS-tree implements all_reduce only (as in NCCL)");
  const int p = r.ranks, per = r.ranks_per_node;
  if (per < 1 || p % per != 0)
    unsupported(r, "ranks_per_node must be >= 1 and divide the group size " + std::to_string(p) + " (got " +
                       std::to_string(per) + ")");
  const int nodes = p / per, k = pipeline_chunks(r);
  Schedule s = empty_schedule(r, 2 * per * k, p + nodes);
  // The inter-node double binary tree over the nodes, as NCCL's tree all-reduce builds it.
  ScheduleRequest over_nodes = r;
  over_nodes.algorithm = Algorithm::tree;
  over_nodes.ranks = nodes;
  over_nodes.ranks_per_node = 0;
  const RankTree trees[2] = {double_tree(over_nodes, 0), double_tree(over_nodes, 1)};
  for (int j = 0; j < per; ++j)
    for (int t = 0; t < 2; ++t) {
      const RankTree& tree = trees[t];
      const int height = tree.height[tree.root];
      for (int c = 0; c < k; ++c) {
        const int chunk = (2 * j + t) * k + c;
        for (int n = 0; n < nodes; ++n) {
          const int sw = p + n, head = n * per + j;
          for (int l = 0; l < per; ++l) add_transfer(s, c, n * per + l, sw, chunk, chunk, l != 0);
          add_transfer(s, c + 1, sw, head, chunk, chunk, false);
          if (tree.parent[n] >= 0)
            add_transfer(s, c + 2 + tree.height[n], head, tree.parent[n] * per + j, chunk, chunk, true);
          const int down = c + 2 + height + tree.depth[n];
          for (int child : tree.children[n]) add_transfer(s, down, head, child * per + j, chunk, chunk, false);
          add_transfer(s, down, head, sw, chunk, chunk, false);
          for (int l = 0; l < per; ++l) add_transfer(s, down + 1, sw, n * per + l, chunk, chunk, false);
        }
      }
    }
  for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(2 * per * k);
  return s;
}

}  // namespace tpsim::coll
