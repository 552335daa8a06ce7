// Direct collectives: every rank talks to every other rank in one round. S = nccl-tests
// size, p = ranks:
//   reduce_scatter  1 round: rank i adds chunk j into rank j for every j != i. Rank j's sum is
//                   x_j + x_0 + x_1 + ... (ascending senders).            (p-1)/p * S per rank
//   all_gather      1 round: rank i copies chunk i to every other rank.   (p-1)/p * S
//   all_reduce      reduce_scatter then all_gather: 2 rounds.             2(p-1)/p * S
//   broadcast       1 round: the root copies its buffer to every rank.    root sends (p-1) * S
//   reduce          1 round: every rank adds its buffer into the root's, ascending.      S
//   all_to_all      1 round: rank i copies input slot j to rank j's output slot p+i (chunks 0..p-1
//                   in, p..2p-1 out; the rank's own slot stays where it is). (p-1)/p * S
//   send_recv       rank i -> rank i+1 (nccl-tests' sendrecv).            S
#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {

// Round `round`: rank i adds chunk j into rank j for every pair i != j (grouped by destination,
// senders ascending, so each sum's order is fixed).
void direct_reduce_scatter(Schedule& s, int p, int round) {
  for (int j = 0; j < p; ++j)
    for (int i = 0; i < p; ++i)
      if (i != j) add_transfer(s, round, i, j, j, j, true);
}

void direct_all_gather(Schedule& s, int p, int round) {
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < p; ++j)
      if (i != j) add_transfer(s, round, i, j, i, i, false);
}

}  // namespace

Schedule direct_schedule(const ScheduleRequest& r) {
  const int p = r.ranks;
  switch (r.op) {
    case CollectiveOp::all_reduce: {
      Schedule s = empty_schedule(r, p, p);
      direct_reduce_scatter(s, p, 0);
      direct_all_gather(s, p, p > 1 ? 1 : 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(p);
      return s;
    }
    case CollectiveOp::all_gather: {
      Schedule s = empty_schedule(r, p, p);
      direct_all_gather(s, p, 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = {i}, s.output_chunks[i] = iota(p);
      return s;
    }
    case CollectiveOp::reduce_scatter: {
      Schedule s = empty_schedule(r, p, p);
      direct_reduce_scatter(s, p, 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = iota(p), s.output_chunks[i] = {i};
      return s;
    }
    case CollectiveOp::broadcast:
    case CollectiveOp::reduce: {
      Schedule s = empty_schedule(r, 1, p);
      const bool bcast = r.op == CollectiveOp::broadcast;
      for (int i = 0; i < p; ++i) {
        if (i != r.root) add_transfer(s, 0, bcast ? r.root : i, bcast ? i : r.root, 0, 0, !bcast);
        if (!bcast || i == r.root) s.input_chunks[i] = {0};
        if (bcast || i == r.root) s.output_chunks[i] = {0};
      }
      return s;
    }
    case CollectiveOp::all_to_all: {
      Schedule s = empty_schedule(r, 2 * p, p);
      for (int i = 0; i < p; ++i)
        for (int j = 0; j < p; ++j)
          if (i != j) add_transfer(s, 0, i, j, j, p + i, false);
      for (int i = 0; i < p; ++i) {
        s.input_chunks[i] = iota(p);
        for (int o = 0; o < p; ++o) s.output_chunks[i].push_back(o == i ? i : p + o);
      }
      return s;
    }
    case CollectiveOp::send_recv: return send_recv_schedule(r);
  }
  unsupported(r, "unknown op");
}

}  // namespace tpsim::coll
