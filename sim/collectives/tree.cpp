// Double binary tree (NCCL): two binary trees over the group, each carrying half of the data, so
// that a rank that is a leaf in one tree is an inner node in the other and the send/receive load
// evens out. Tree 0 hangs from a root with a single child, below which is the in-order binary tree
// over positions 1..p-1 (position v with lowest set bit b has children v -+ b/2: odd positions
// are the leaves, even ones inner nodes). Tree 1 relabels tree 0's
// positions as NCCL does: all-reduce mirrors them (v -> p-1-v) when p is even and shifts them
// (v -> v+1 mod p) when odd, which moves the root too and makes the two trees' leaf sets disjoint;
// broadcast / reduce need both trees rooted at R, so only positions 1..p-1 are mirrored (p-1 even)
// or shifted within 1..p-1 (p-1 odd), which leaves at most one rank a leaf in both.
// Across nodes (all_reduce with ranks_per_node L > 1, as NCCL builds its tree): the same two
// trees over the N = p/L nodes, each node's L ranks a chain hanging from the node's head (see
// chain_tree); H = the combined height, L-1 + 1 + floor(log2(N-1)), and the same pipeline.
// Flat: H = tree height = 1 + floor(log2(p-1)). Each tree's half is cut into K chunks and pipelined:
//   reduce      a node of height h adds chunk k into its parent in round k+h.   K+H-1 rounds
//   broadcast   a node of depth d copies chunk k to its children in round k+d.  K+H-1 rounds
//   all_reduce  reduce, then broadcast shifted by H rounds (chunk k leaves the root in round
//               k+H, as soon as it is reduced).                                 K+2H-1 rounds
// Bytes per rank (all-reduce): in each tree S/2 up (unless root) and S/2 per child down. A rank
// inner with two children in one tree and a leaf in the other sends S/2 + S + S/2 = 2S, against the
// ring's 2(p-1)/p S; broadcast / reduce: half of that.
#include <algorithm>
#include <map>
#include <utility>

#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {

struct TreeShape {
  std::vector<int> parent, depth, height;   // by position; parent[0] = -1
  std::vector<std::vector<int>> children;
};

// The node in the open range (lo, hi) with the largest lowest set bit: the root of that range in
// the in-order binary tree over positions 1..p-1 (position v with lowest bit b spans v-b..v+b).
int range_root(int lo, int hi) {
  int best = -1;
  for (int v = lo + 1; v < hi; ++v)
    if (best < 0 || (v & -v) > (best & -best)) best = v;
  return best;
}

// Position 0 is the root with one child; below it the in-order tree over 1..p-1, truncated at p:
// odd positions are leaves, even ones have a left child v - b/2 and a right child if any
// position in (v, min(v+b, p)) exists.
TreeShape shape(int p) {
  TreeShape t;
  t.parent.assign(p, -1);
  t.depth.assign(p, 0);
  t.height.assign(p, 0);
  t.children.assign(p, {});
  auto link = [&](int up, int child) {
    if (child < 0) return;
    t.parent[child] = up;
    t.children[up].push_back(child);
  };
  link(0, range_root(0, p));
  for (int v = 2; v < p; v += 2) {
    const int b = v & -v;
    link(v, v - b / 2);
    link(v, range_root(v, std::min(v + b, p)));
  }
  // Depth top-down from the root, height bottom-up (children are visited after their parent).
  std::vector<int> order = {0};
  for (size_t i = 0; i < order.size(); ++i)
    for (int c : t.children[order[i]]) t.depth[c] = t.depth[order[i]] + 1, order.push_back(c);
  for (size_t i = order.size(); i-- > 0;)
    for (int c : t.children[order[i]]) t.height[order[i]] = std::max(t.height[order[i]], t.height[c] + 1);
  return t;
}

// Rank at each position of tree 0 or 1 (see the mirror / shift rules at the top).
std::vector<int> tree_ranks(const ScheduleRequest& r, int tree) {
  const int p = r.ranks, m = p - 1, root = r.op == CollectiveOp::all_reduce ? 0 : r.root;
  std::vector<int> rank(p);
  for (int v = 0; v < p; ++v) {
    if (tree == 0) {
      rank[v] = (v + root) % p;
    } else if (r.op == CollectiveOp::all_reduce) {   // root moves too
      rank[v] = p % 2 == 0 ? p - 1 - v : (v + 1) % p;
    } else {                                         // root stays R
      const int pos = v == 0 ? 0 : (m % 2 == 0 ? p - v : v % m + 1);
      rank[v] = (pos + root) % p;
    }
  }
  return rank;
}

// The flat tree `tree` of the request in rank space: the position shape relabelled by tree_ranks.
RankTree flat_tree(const ScheduleRequest& r, int tree) {
  const int p = r.ranks;
  const TreeShape t = shape(p);
  const std::vector<int> rank = tree_ranks(r, tree);
  RankTree out;
  out.root = rank[0];
  out.parent.assign(p, -1);
  out.depth.assign(p, 0);
  out.height.assign(p, 0);
  out.children.assign(p, {});
  for (int v = 0; v < p; ++v) {
    out.parent[rank[v]] = t.parent[v] < 0 ? -1 : rank[t.parent[v]];
    out.depth[rank[v]] = t.depth[v];
    out.height[rank[v]] = t.height[v];
    for (int c : t.children[v]) out.children[rank[v]].push_back(rank[c]);
  }
  return out;
}

// NCCL's tree across nodes (ncclTopoPreset + connectTrees): in every node the ranks form a chain
// n*L -> n*L+1 -> ... -> n*L+L-1 whose head n*L is the node's vertex in the inter-node double
// binary tree (the all-reduce trees over N = p/L nodes above); the head reduces its chain child
// first, then its child nodes' heads (NCCL's TREE pattern: all of a node's network traffic through
// the head's NIC).
RankTree chain_tree(const ScheduleRequest& r, int tree) {
  const int p = r.ranks, per = r.ranks_per_node, nodes = p / per;
  ScheduleRequest over_nodes = r;
  over_nodes.ranks = nodes;
  const RankTree node = flat_tree(over_nodes, tree);
  RankTree out;
  out.root = node.root * per;
  out.parent.assign(p, -1);
  out.depth.assign(p, 0);
  out.height.assign(p, 0);
  out.children.assign(p, {});
  for (int x = 0; x < p; ++x) {
    const int n = x / per, l = x % per;
    out.parent[x] = l > 0 ? x - 1 : (node.parent[n] < 0 ? -1 : node.parent[n] * per);
    if (l + 1 < per) out.children[x].push_back(x + 1);
    if (l == 0)
      for (int c : node.children[n]) out.children[x].push_back(c * per);
  }
  // Depth top-down from the root, height bottom-up (children are visited after their parent).
  std::vector<int> order = {out.root};
  for (size_t i = 0; i < order.size(); ++i)
    for (int c : out.children[order[i]]) out.depth[c] = out.depth[order[i]] + 1, order.push_back(c);
  for (size_t i = order.size(); i-- > 0;)
    for (int c : out.children[order[i]]) out.height[order[i]] = std::max(out.height[order[i]], out.height[c] + 1);
  return out;
}

bool chained(const ScheduleRequest& r) { return r.ranks_per_node > 1; }

void check_op(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce && r.op != CollectiveOp::reduce && r.op != CollectiveOp::broadcast)
    unsupported(r, "the double binary tree implements all_reduce, broadcast and reduce only");
  if (r.ranks_per_node < 0 || (chained(r) && r.ranks % r.ranks_per_node != 0))
    unsupported(r, "ranks_per_node must divide the group size " + std::to_string(r.ranks) + " (got " +
                       std::to_string(r.ranks_per_node) + ")");
  if (chained(r) && r.op != CollectiveOp::all_reduce)
    unsupported(r, "the chain + inter-node tree (ranks_per_node > 1) is NCCL's all_reduce tree; broadcast and "
                   "reduce run the flat double binary tree (ranks_per_node 0)");
}

}  // namespace

RankTree double_tree(const ScheduleRequest& r, int tree) { return chained(r) ? chain_tree(r, tree) : flat_tree(r, tree); }

// Two trees, each carrying K chunks (its half of the channel), pipelined as described at the top.
Schedule tree_schedule(const ScheduleRequest& r) {
  check_op(r);
  const bool up = r.op == CollectiveOp::all_reduce || r.op == CollectiveOp::reduce;
  const bool down = r.op == CollectiveOp::all_reduce || r.op == CollectiveOp::broadcast;
  const int p = r.ranks, k = pipeline_chunks(r);
  const int root = r.op == CollectiveOp::all_reduce ? 0 : r.root;
  Schedule s = empty_schedule(r, 2 * k, p);
  for (int tree = 0; tree < 2; ++tree) {
    const RankTree t = double_tree(r, tree);
    const int base = tree * k;
    const int offset = up ? t.height[t.root] : 0;   // round the broadcast of chunk 0 leaves the root
    for (int x = 0; x < p; ++x)
      for (int c = 0; c < k; ++c) {
        if (up && t.parent[x] >= 0) add_transfer(s, c + t.height[x], x, t.parent[x], base + c, base + c, true);
        if (down)
          for (int child : t.children[x]) add_transfer(s, offset + c + t.depth[x], x, child, base + c, base + c, false);
      }
  }
  for (int i = 0; i < p; ++i) {
    if (up || i == root) s.input_chunks[i] = iota(2 * k);
    if (down || i == root) s.output_chunks[i] = iota(2 * k);
  }
  return s;
}

// Every tree edge carries K chunks per channel in each direction it is used; the pipeline's
// critical path is its round count (K+2H-1 or K+H-1).
FlowView tree_flow_view(const ScheduleRequest& r) {
  check_op(r);
  const bool both = r.op == CollectiveOp::all_reduce, up = both || r.op == CollectiveOp::reduce;
  const int p = r.ranks, k = pipeline_chunks(r);
  std::map<std::pair<int, int>, double> total;
  int height = 0;
  for (int tree = 0; tree < 2; ++tree) {
    const RankTree t = double_tree(r, tree);
    height = std::max(height, t.height[t.root]);
    for (int x = 0; x < p; ++x) {
      if (t.parent[x] < 0) continue;
      const int a = x, b = t.parent[x];
      if (up) total[{a, b}] += double(k) * r.channels;
      if (both || !up) total[{b, a}] += double(k) * r.channels;
    }
  }
  FlowView f;
  for (const auto& [key, chunks] : total) f.edges.push_back(Edge{key.first, key.second, chunks});
  f.rounds = p < 2 ? 0 : k + (both ? 2 : 1) * height - 1;
  f.participants = p;
  f.chunks = f.size_chunks = 2 * k * r.channels;
  return f;
}

}  // namespace tpsim::coll
