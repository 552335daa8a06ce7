// PAT, Parallel Aggregated Trees (NCCL 2.23+, all-gather and reduce-scatter with one GPU per
// node): a Bruck algorithm with its dimensions reversed, i.e. p binomial trees, the one of block q
// rooted at rank q and shifted by q, all run at once with the far dimension first, so the long
// hops carry one block and the many blocks of the last rounds go to the next rank. (NCCL bounds the
// blocks aggregated per step by its staging buffer; with the buffer large enough, as modelled here,
// PAT is exactly this.) D = ceil(log2 p) rounds; chunk q = rank q's shard; offsets are mod p.
//   all_gather      round s, dimension d = D-1-s: a rank holding block q at offset o = r-q, a
//                   multiple of 2^(d+1), copies it to rank r + 2^d if o + 2^d < p
//   reduce_scatter  the mirror: round s, dimension d = s: a rank at offset o = r-q = 2^d mod
//                   2^(d+1) from block q's root adds its partial sum of q into rank r - 2^d
// Each rank sends and receives (p-1)/p S in all, as the ring, in log2 p steps instead of p-1.
#include "collectives/builder.hpp"

namespace tpsim::coll {

namespace {
int dimensions(int p) {
  int d = 0;
  while ((1 << d) < p) ++d;
  return d;
}
}  // namespace

Schedule pat_schedule(const ScheduleRequest& r) {
  const bool gather = r.op == CollectiveOp::all_gather;
  if (!gather && r.op != CollectiveOp::reduce_scatter)
    unsupported(r, "PAT implements all_gather and reduce_scatter only (as in NCCL)");
  const int p = r.ranks, dims = dimensions(p);
  Schedule s = empty_schedule(r, p, p);
  for (int step = 0; step < dims; ++step) {
    const int d = gather ? dims - 1 - step : step, half = 1 << d;
    // Offsets a sender holds at this step: multiples of 2^(d+1) (gather) or 2^d past one (scatter).
    for (int x = 0; x < p; ++x)
      for (int o = gather ? 0 : half; o + (gather ? half : 0) < p; o += 2 * half) {
        const int q = positive_mod(x - o, p);
        if (gather) add_transfer(s, step, x, positive_mod(x + half, p), q, q, false);
        else add_transfer(s, step, x, positive_mod(x - half, p), q, q, true);
      }
  }
  for (int i = 0; i < p; ++i) {
    s.input_chunks[i] = gather ? std::vector<int>{i} : iota(p);
    s.output_chunks[i] = gather ? iota(p) : std::vector<int>{i};
  }
  return s;
}

}  // namespace tpsim::coll
