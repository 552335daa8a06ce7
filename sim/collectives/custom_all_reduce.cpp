// Inference engines' custom all-reduce inside one NVLink node (TensorRT-LLM's ONESHOT / TWOSHOT,
// vLLM's custom all-reduce, PyTorch's symmetric-memory one_shot / two_shot): every GPU reads its
// peers' buffers directly through peer memory, in one kernel, instead of running NCCL's pipelined
// protocol. S = size, p = ranks:
//   one_shot   1 round: every rank reads every rank's whole buffer and sums them in rank order
//              0..p-1 into its output (rank 0's copy starts the sum; its own buffer is a local
//              read in its place), so every rank holds the same bits.   (p-1) * S in per rank
//   two_shot   2 rounds: reduce-scatter then all-gather by direct reads, direct's all-reduce:
//              rank j sums shard j (its own first, then the others ascending; each shard is
//              summed once, so every rank again holds the same bits), then every rank reads
//              every reduced shard.                                    2(p-1)/p * S per rank
// Both are all-reduce only. one_shot's chunks: 0 the input (what peers read), 1 the output.
#include "collectives/builder.hpp"

namespace tpsim::coll {

Schedule one_shot_schedule(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce)
    unsupported(r, "one-shot is an all-reduce (every rank reads and sums all of its peers' buffers)");
  const int p = r.ranks;
  Schedule s = empty_schedule(r, 2, p);
  for (int i = 0; i < p; ++i) {
    for (int j = 0; j < p; ++j) add_transfer(s, 0, j, i, 0, 1, j != 0);
    s.input_chunks[i] = {0};
    s.output_chunks[i] = {1};
  }
  return s;
}

Schedule two_shot_schedule(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce)
    unsupported(r, "two-shot is an all-reduce (a direct reduce-scatter, then a direct all-gather)");
  return direct_schedule(r);
}

}  // namespace tpsim::coll
