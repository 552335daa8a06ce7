// NVLS-tree all-reduce (NCCL's NVLS_TREE): NVLink SHARP inside each node, a double binary tree
// between nodes. The group is N nodes x L ranks, node-major (rank n*L + l). Each rank's buffer is
// cut into L parts, one per head (local rank j, i.e. NIC rail j, carries part j across nodes), each
// part into the two trees' halves, each half into K pipeline chunks: chunk (j, t, k) = (2j + t)K + k,
// 2LK chunks in all. For chunk (j, t, k), with H = the inter-node tree's height and d = the depth
// of the node in tree t:
//   round k          every rank of node n adds the chunk into switch n (the node's first rank
//                    copies, the others add in rank order): the in-switch reduction
//   round k+1        switch n hands the node's sum to its head n*L + j
//   round k+2+h      the head at height h in tree t adds its partial into its parent's head
//   round k+2+H+d    the head at depth d copies the total to its child heads and to switch n
//   round k+3+H+d    switch n multicasts it to the node's L ranks
// K + 2H + 3 rounds. NCCL runs each of these roles on warps of its own, each with its own FIFO of
// 8 steps in flight, so a role forwards chunk k while chunk k+1 is still on its way to it: the
// latencies of a chunk's path add once, not once per round. A participant starts a round's sends
// together (collective_plan.hpp), so each role is a participant of its own, standing on the same
// fabric endpoint as the GPU or switch that runs it (nvls_tree_helper, tpsim/collective.hpp):
//   p + n                   switch n, reducing (ranks in, node sum to the heads)
//   p + N + n               switch n, multicasting (total in from the heads, out to the ranks)
//   p + 2N + t*p + g        head g going up tree t (the root's also sends the total down)
//   p + 2N + 2p + t*p + g   head g coming down tree t (not the root's)
// Merged into one participant, a head of both trees or of both directions waits every round for
// the chunk the other tree's (or direction's) round before delivered, and the two trees' roots
// feed each other: one network latency per round, and a 128-chunk pipeline over EFA ran at ~1/8
// of the NICs' rate at 128 MiB. The switches need no split by tree: the ranks feed the reducing
// one from their inputs, and nothing that feeds the multicasting one waits for it.
// Timing (collective_price.cpp): every edge to or from a switch is one of the kernel's NVLink
// roles and takes the pipeline's step time in each round; the network hops keep the NIC's rate.
// Per rank on NVLink: S into the switch and S back (as NVLS on one node); per head S/L to and
// from the switch; per head across nodes S/(2L) per tree edge and direction, so each NIC rail
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
  auto reducing_switch = [&](int n) { return p + n; };
  auto multicasting_switch = [&](int n) { return p + nodes + n; };
  auto head_up = [&](int t, int g) { return p + 2 * nodes + t * p + g; };
  auto head_down = [&](int t, int g) { return p + 2 * nodes + 2 * p + t * p + g; };
  Schedule s = empty_schedule(r, 2 * per * k, p + 2 * nodes + 4 * p);
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
          const int head = n * per + j;
          // The root's up role holds the total; every other head's down role receives it.
          const int down_from = n == tree.root ? head_up(t, head) : head_down(t, head);
          for (int l = 0; l < per; ++l) add_transfer(s, c, n * per + l, reducing_switch(n), chunk, chunk, l != 0);
          add_transfer(s, c + 1, reducing_switch(n), head_up(t, head), chunk, chunk, false);
          if (tree.parent[n] >= 0)
            add_transfer(s, c + 2 + tree.height[n], head_up(t, head), head_up(t, tree.parent[n] * per + j), chunk, chunk, true);
          const int down = c + 2 + height + tree.depth[n];
          for (int child : tree.children[n]) add_transfer(s, down, down_from, head_down(t, child * per + j), chunk, chunk, false);
          add_transfer(s, down, down_from, multicasting_switch(n), chunk, chunk, false);
          for (int l = 0; l < per; ++l) add_transfer(s, down + 1, multicasting_switch(n), n * per + l, chunk, chunk, false);
        }
      }
    }
  for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(2 * per * k);
  return s;
}

}  // namespace tpsim::coll

namespace tpsim {

HelperPlace nvls_tree_helper(int ranks, int ranks_per_node, int participant) {
  const int nodes = ranks / ranks_per_node, q = participant - ranks;
  if (q < 2 * nodes) return {q % nodes, -1};
  return {-1, (q - 2 * nodes) % ranks};
}

}  // namespace tpsim
