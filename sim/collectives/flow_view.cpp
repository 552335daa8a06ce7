// flow_view: the per-edge totals and latency term of a schedule, in closed form where the
// algorithm has one (ring all-reduce / all-gather / reduce-scatter, hierarchical all-reduce, tree,
// direct all-to-all) so that a view of thousands of ranks never builds millions of transfers;
// otherwise derived from the built schedule. (The timing engine plans from its own closed forms,
// engine/collective_plan.hpp.)
#include <algorithm>

#include "collectives/builder.hpp"

namespace tpsim {

namespace {

// Ring of `members` in which each edge member[i] -> member[i+1] carries `chunks`.
void ring_edges(std::vector<Edge>& edges, const std::vector<int>& members, double chunks) {
  const int m = static_cast<int>(members.size());
  if (m < 2) return;
  for (int i = 0; i < m; ++i) edges.push_back(Edge{members[i], members[(i + 1) % m], chunks});
}

void sort_edges(std::vector<Edge>& edges) {
  std::sort(edges.begin(), edges.end(),
            [](const Edge& a, const Edge& b) { return a.src != b.src ? a.src < b.src : a.dst < b.dst; });
}

// Ring all-reduce: 2(p-1) chunks per channel per edge, 2(p-1) rounds; AG / RS: half of that.
FlowView ring_view(const ScheduleRequest& r) {
  const int p = r.ranks, steps = r.op == CollectiveOp::all_reduce ? 2 * (p - 1) : p - 1;
  FlowView f;
  ring_edges(f.edges, coll::iota(p), double(steps) * r.channels);
  sort_edges(f.edges);
  f.rounds = steps;
  f.participants = p;
  f.chunks = f.size_chunks = p * r.channels;
  return f;
}

// Hierarchical all-reduce (N nodes x L): intra-node ring edges carry a shard (N chunks) per step
// over 2(L-1) steps; rail ring edges one chunk per step over 2(N-1) steps.
FlowView hierarchical_view(const ScheduleRequest& r) {
  const int p = r.ranks, per = r.ranks_per_node;
  if (per < 1 || p % per != 0) (void)coll::hierarchical_schedule(r);   // throws make_schedule's message
  const int nodes = p / per;
  FlowView f;
  for (int n = 0; n < nodes; ++n) ring_edges(f.edges, coll::iota(per, n * per), 2.0 * (per - 1) * nodes * r.channels);
  for (int l = 0; l < per; ++l) {
    std::vector<int> rail;
    for (int n = 0; n < nodes; ++n) rail.push_back(n * per + l);
    ring_edges(f.edges, rail, 2.0 * (nodes - 1) * r.channels);
  }
  sort_edges(f.edges);
  f.rounds = 2 * (per - 1) + 2 * (nodes - 1);
  f.participants = p;
  f.chunks = f.size_chunks = p * r.channels;
  return f;
}

// Direct all-to-all: one round, one chunk per channel from every rank to every other rank.
FlowView all_to_all_view(const ScheduleRequest& r) {
  const int p = r.ranks;
  FlowView f;
  f.edges.reserve(size_t(p) * (p - 1));
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < p; ++j)
      if (i != j) f.edges.push_back(Edge{i, j, double(r.channels)});
  f.rounds = p > 1 ? 1 : 0;
  f.participants = p;
  f.chunks = 2 * p * r.channels;
  f.size_chunks = p * r.channels;
  return f;
}

}  // namespace

FlowView flow_view(const ScheduleRequest& request) {
  const ScheduleRequest r = coll::validated(request);
  const bool ring_closed = r.algorithm == Algorithm::ring &&
                           (r.op == CollectiveOp::all_reduce || r.op == CollectiveOp::all_gather ||
                            r.op == CollectiveOp::reduce_scatter);
  if (ring_closed) return ring_view(r);
  if (r.algorithm == Algorithm::hierarchical && r.op == CollectiveOp::all_reduce) return hierarchical_view(r);
  if (r.algorithm == Algorithm::tree) return coll::tree_flow_view(r);
  if (r.algorithm == Algorithm::direct && r.op == CollectiveOp::all_to_all) return all_to_all_view(r);
  const Schedule s = make_schedule(r);
  FlowView f;
  f.edges = schedule_edges(s);
  f.rounds = critical_rounds(s);
  f.participants = s.participants;
  f.chunks = s.chunks;
  f.size_chunks = coll::size_chunks(s);
  return f;
}

}  // namespace tpsim
