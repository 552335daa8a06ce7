// NVLS (NVLink SHARP) all-reduce: the NVSwitch reduces in the fabric. The switch is participant
// `ranks`. The buffer is cut into K chunks so the switch pipelines: round t, every rank sends chunk
// t to the switch (the first rank's copy starts the sum, the others add in rank order) while the
// switch multicasts the reduced chunk t-1 back to every rank. K+1 rounds; each rank sends S and
// receives S, the switch sends p*S (one copy per port). Other ops: NCCL uses NVLS for all-reduce
// (and its all-gather / reduce-scatter variants need multicast objects we do not model) — throw.
#include "collectives/builder.hpp"

namespace tpsim::coll {

Schedule nvls_schedule(const ScheduleRequest& r) {
  if (r.op != CollectiveOp::all_reduce)
    unsupported(r, "in-switch reduction (NVLS) is modelled for all_reduce only");
  const int p = r.ranks, k = pipeline_chunks(r), sw = p;
  Schedule s = empty_schedule(r, k, p + 1);
  for (int t = 0; t <= k; ++t) {
    if (t < k)
      for (int i = 0; i < p; ++i) add_transfer(s, t, i, sw, t, t, i != 0);
    if (t > 0)
      for (int i = 0; i < p; ++i) add_transfer(s, t, sw, i, t - 1, t - 1, false);
  }
  for (int i = 0; i < p; ++i) s.input_chunks[i] = s.output_chunks[i] = iota(k);
  return s;
}

}  // namespace tpsim::coll
