// Recursive halving / doubling (Thakur-Rabenseifner), power-of-two groups only. S = nccl-tests
// size, p = ranks = 2^k, chunk j is rank j's share:
//   reduce_scatter  k rounds of recursive halving; round s, d = p >> (s+1): rank i and partner
//                   i^d split their common aligned block of 2d chunks; i adds the d chunks of the
//                   partner's half into the partner.                    (p-1)/p * S per rank
//   all_gather      k rounds of recursive doubling; round s, d = 1 << s: rank i copies its aligned
//                   block of d chunks to partner i^d.                   (p-1)/p * S
//   all_reduce      reduce_scatter then all_gather: 2k rounds.          2(p-1)/p * S
#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {

int log2_exact(int p) {
  int k = 0;
  while ((1 << k) < p) ++k;
  return k;
}

int halving(Schedule& s, int p, int round0) {
  const int k = log2_exact(p);
  for (int step = 0; step < k; ++step) {
    const int d = p >> (step + 1);
    for (int i = 0; i < p; ++i) {
      const int partner = i ^ d, half = (i & ~(2 * d - 1)) + (partner & d);   // first chunk of partner's half
      for (int c = half; c < half + d; ++c) add_transfer(s, round0 + step, i, partner, c, c, true);
    }
  }
  return k;
}

int doubling(Schedule& s, int p, int round0) {
  const int k = log2_exact(p);
  for (int step = 0; step < k; ++step) {
    const int d = 1 << step;
    for (int i = 0; i < p; ++i) {
      const int block = i & ~(d - 1);
      for (int c = block; c < block + d; ++c) add_transfer(s, round0 + step, i, i ^ d, c, c, false);
    }
  }
  return k;
}

}  // namespace

Schedule halving_doubling_schedule(const ScheduleRequest& r) {
  const int p = r.ranks;
  if ((p & (p - 1)) != 0)
    unsupported(r, "recursive halving-doubling needs a power-of-two group, got " + std::to_string(p) +
                       " ranks (use ring or tree)");
  Schedule s = empty_schedule(r, p, p);
  switch (r.op) {
    case CollectiveOp::all_reduce: {
      doubling(s, p, halving(s, p, 0));
      for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(p);
      return s;
    }
    case CollectiveOp::all_gather:
      doubling(s, p, 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = {i}, s.output_chunks[i] = iota(p);
      return s;
    case CollectiveOp::reduce_scatter:
      halving(s, p, 0);
      for (int i = 0; i < p; ++i) s.input_chunks[i] = iota(p), s.output_chunks[i] = {i};
      return s;
    default:
      unsupported(r, "halving_doubling implements all_reduce, all_gather and reduce_scatter only");
  }
}

}  // namespace tpsim::coll
