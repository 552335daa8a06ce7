// Ring collectives, NCCL style: ranks 0 -> 1 -> ... -> p-1 -> 0, one ring per channel (the channels
// are laid on by replicate_channels). S = the collective's nccl-tests size, p = ranks, per channel:
//   reduce_scatter  p-1 rounds; round s: rank i adds chunk (i-s-1) mod p into rank i+1, so rank r
//                   ends with chunk r.                               (p-1)/p * S sent per rank
//   all_gather      p-1 rounds; round s: rank i copies chunk (i-s) mod p to rank i+1.  (p-1)/p * S
//   all_reduce      reduce_scatter then all_gather: 2(p-1) rounds.                    2(p-1)/p * S
//   broadcast       chain root -> root+1 -> ... -> root-1, pipelined in K chunks: round t, chain
//                   position j sends chunk t-j. K+p-2 rounds; every rank but the last sends S.
//   reduce          chain root+1 -> ... -> root-1 -> root adding, pipelined the same way. K+p-2.
//   all_to_all      relay: round s, rank i forwards to i+1 the slots of rank i-s that still have
//                   to travel further (p-1-s of them). p-1 rounds; (p-1)/2 * S per rank. Chunks:
//                   input slots 0..p-1, output p..2p-1, transit 2p..4p-1 (two banks indexed by
//                   destination, alternating by round so no chunk is read and written in a round).
//   send_recv       rank i sends its buffer (chunk 0) to rank i+1's chunk 1: 1 round, S.
#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {

std::vector<std::vector<int>> single_chunks(int n) {
  std::vector<std::vector<int>> blocks(n);
  for (int i = 0; i < n; ++i) blocks[i] = {i};
  return blocks;
}

// Pipelined chain over ranks in `order` (order[0] first), K chunks; reduce adds along the way.
void chain(Schedule& s, const std::vector<int>& order, int k, bool reduce) {
  const int p = static_cast<int>(order.size());
  for (int t = 0; t < k + p - 2; ++t)
    for (int j = 0; j + 1 < p; ++j) {
      const int chunk = t - j;
      if (chunk >= 0 && chunk < k) add_transfer(s, t, order[j], order[j + 1], chunk, chunk, reduce);
    }
}

Schedule ring_all_to_all(const ScheduleRequest& r) {
  const int p = r.ranks;
  Schedule s = empty_schedule(r, 4 * p, p);
  auto transit = [p](int bank, int dest) { return 2 * p + bank * p + dest; };
  for (int step = 0; step < p - 1; ++step)
    for (int i = 0; i < p; ++i) {
      const int origin = positive_mod(i - step, p), next = positive_mod(i + 1, p);
      for (int hop = step + 1; hop < p; ++hop) {   // destinations still hop..p-1 away from origin
        const int dest = positive_mod(origin + hop, p);
        const int src_chunk = step == 0 ? dest : transit((step - 1) % 2, dest);
        const int dst_chunk = dest == next ? p + origin : transit(step % 2, dest);
        add_transfer(s, step, i, next, src_chunk, dst_chunk, false);
      }
    }
  for (int i = 0; i < p; ++i) {
    s.input_chunks[i] = iota(p);
    for (int o = 0; o < p; ++o) s.output_chunks[i].push_back(o == i ? i : p + o);
  }
  return s;
}

}  // namespace

Schedule send_recv_schedule(const ScheduleRequest& r) {
  const int p = r.ranks;
  Schedule s = empty_schedule(r, 2, p);
  for (int i = 0; i < p; ++i) {
    if (p > 1) add_transfer(s, 0, i, positive_mod(i + 1, p), 0, 1, false);
    s.input_chunks[i] = {0};
    s.output_chunks[i] = {p > 1 ? 1 : 0};
  }
  return s;
}

Schedule ring_schedule(const ScheduleRequest& r) {
  const int p = r.ranks;
  const std::vector<int> ranks = iota(p);
  switch (r.op) {
    case CollectiveOp::all_reduce: {
      Schedule s = empty_schedule(r, p, p);
      const int rs = ring_reduce_scatter(s, ranks, single_chunks(p), 0);
      ring_all_gather(s, ranks, single_chunks(p), rs);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(p);
      return s;
    }
    case CollectiveOp::all_gather: {
      Schedule s = empty_schedule(r, p, p);
      ring_all_gather(s, ranks, single_chunks(p), 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = {i}, s.output_chunks[i] = iota(p);
      return s;
    }
    case CollectiveOp::reduce_scatter: {
      Schedule s = empty_schedule(r, p, p);
      ring_reduce_scatter(s, ranks, single_chunks(p), 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = iota(p), s.output_chunks[i] = {i};
      return s;
    }
    case CollectiveOp::broadcast:
    case CollectiveOp::reduce: {
      const int k = pipeline_chunks(r);
      Schedule s = empty_schedule(r, k, p);
      const bool bcast = r.op == CollectiveOp::broadcast;
      std::vector<int> order;   // broadcast: root first; reduce: root last
      for (int j = 0; j < p; ++j) order.push_back(positive_mod(r.root + (bcast ? j : j + 1), p));
      chain(s, order, k, !bcast);
      for (int i = 0; i < p; ++i) {
        if (!bcast || i == r.root) s.input_chunks[i] = iota(k);
        if (bcast || i == r.root) s.output_chunks[i] = iota(k);
      }
      return s;
    }
    case CollectiveOp::all_to_all: return ring_all_to_all(r);
    case CollectiveOp::send_recv: return send_recv_schedule(r);
  }
  unsupported(r, "unknown op");
}

}  // namespace tpsim::coll
