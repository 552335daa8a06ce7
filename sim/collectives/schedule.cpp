// make_schedule: validates the request, builds the one-channel schedule of the chosen algorithm and
// lays it on `channels` channels; plus the measures derived from a schedule (bytes per
// participant, bus-bandwidth factor, per-edge totals for flow fidelity, the latency term).
#include <algorithm>
#include <map>

#include "collectives/builder.hpp"

namespace tpsim {

Algorithm default_algorithm(CollectiveOp op) {
  return op == CollectiveOp::all_to_all || op == CollectiveOp::send_recv ? Algorithm::direct : Algorithm::ring;
}

namespace coll {
ScheduleRequest validated(const ScheduleRequest& request) {
  ScheduleRequest r = request;
  if (r.algorithm == Algorithm::automatic) r.algorithm = default_algorithm(r.op);
  if (r.ranks < 1) unsupported(r, "group size must be at least 1 (got " + std::to_string(r.ranks) + ")");
  if (r.channels < 1) unsupported(r, "channels must be at least 1 (got " + std::to_string(r.channels) + ")");
  if (r.pipeline < 0) unsupported(r, "pipeline must be >= 0 (got " + std::to_string(r.pipeline) + ")");
  if (r.root < 0 || r.root >= r.ranks)
    unsupported(r, "root " + std::to_string(r.root) + " is outside the group of " + std::to_string(r.ranks));
  return r;
}
}  // namespace coll

Schedule make_schedule(const ScheduleRequest& request) {
  const ScheduleRequest r = coll::validated(request);
  Schedule s;
  switch (r.algorithm) {
    case Algorithm::ring: s = coll::ring_schedule(r); break;
    case Algorithm::tree: s = coll::tree_schedule(r); break;
    case Algorithm::halving_doubling: s = coll::halving_doubling_schedule(r); break;
    case Algorithm::direct: s = coll::direct_schedule(r); break;
    case Algorithm::nvls: s = coll::nvls_schedule(r); break;
    case Algorithm::hierarchical: s = coll::hierarchical_schedule(r); break;
    case Algorithm::nvls_tree: s = coll::nvls_tree_schedule(r); break;
    case Algorithm::pat: s = coll::pat_schedule(r); break;
    case Algorithm::one_shot: s = coll::one_shot_schedule(r); break;
    case Algorithm::two_shot: s = coll::two_shot_schedule(r); break;
    case Algorithm::automatic: break;
  }
  coll::replicate_channels(s, r.channels);
  return s;
}

// Chunks that make up the nccl-tests size: the largest input or output list of any rank (the
// whole buffer for all-reduce, the gathered output for all-gather, the send buffer for all-to-all).
int coll::size_chunks(const Schedule& s) {
  size_t n = 0;
  for (int r = 0; r < s.ranks; ++r) n = std::max({n, s.input_chunks[r].size(), s.output_chunks[r].size()});
  return static_cast<int>(n);
}

std::vector<double> bytes_sent(const Schedule& s, double bytes) {
  std::vector<double> sent(s.participants, 0.0);
  const int n = coll::size_chunks(s);
  if (n == 0) return sent;
  const double chunk = bytes / n;
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers)
      if (t.src != t.dst) sent[t.src] += chunk;   // a local read (one-shot's own buffer) sends nothing
  return sent;
}

double chunk_bytes(const Schedule& s, double bytes) {
  const std::vector<double> sent = bytes_sent(s, bytes);
  return sent.empty() ? 0.0 : *std::max_element(sent.begin(), sent.end());
}

double busbw_factor(CollectiveOp op, int ranks) {
  if (ranks < 1) return 0.0;
  const double p = ranks;
  switch (op) {
    case CollectiveOp::all_reduce: return 2.0 * (p - 1) / p;
    case CollectiveOp::all_gather:
    case CollectiveOp::reduce_scatter:
    case CollectiveOp::all_to_all: return (p - 1) / p;   // nccl-tests alltoall: the part that leaves the GPU
    default: return 1.0;
  }
}

std::vector<Edge> schedule_edges(const Schedule& s) {
  std::vector<std::map<int, double>> out(s.participants);   // per source, ordered by destination
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers)
      if (t.src != t.dst) out[t.src][t.dst] += 1.0;
  std::vector<Edge> edges;
  for (int src = 0; src < s.participants; ++src)
    for (const auto& [dst, chunks] : out[src]) edges.push_back(Edge{src, dst, chunks});
  return edges;
}

// ready[q] = latency steps after which participant q has finished the rounds seen so far. A
// transfer of round r starts when both ends are ready and takes one step; a participant leaves
// round r when its last transfer of that round ends (or at once if it has none).
int critical_rounds(const Schedule& s) {
  std::vector<int> ready(s.participants, 0), next;
  for (const Round& round : s.rounds) {
    next = ready;
    for (const Transfer& t : round.transfers) {
      const int end = std::max(ready[t.src], ready[t.dst]) + 1;
      next[t.src] = std::max(next[t.src], end);
      next[t.dst] = std::max(next[t.dst], end);
    }
    ready.swap(next);
  }
  return ready.empty() ? 0 : *std::max_element(ready.begin(), ready.end());
}

}  // namespace tpsim
