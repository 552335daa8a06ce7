// NCCL's CTAs per collective and compute stretched beside them (sm_share.hpp).
#include "engine/sm_share.hpp"

#include <algorithm>
#include <limits>

#include "engine/nccl_tuner.hpp"

namespace tpsim::engine {

int collective_ctas(const Topology& t, CollectiveOp op, const CollectiveInstance& inst, const std::vector<int>& group,
                    double bytes) {
  if (group.size() <= 1 || op == CollectiveOp::all_to_all) return 0;
  // The communicator's channels from NCCL's topology search (nccl_tuner.hpp: the ring graph's
  // channels, duplicated by ncclTopoPostset, at most MAXCHANNELS = 32; DGX A100: 12 -> 24, the
  // "24 coll channels" NCCL logs there). The search is the same in every NCCL version tpsim
  // carries, so a topology naming none searches as 2.23.
  const std::string version = t.collectives.nccl_version.empty() ? "2.23" : t.collectives.nccl_version;
  const nccl::System system = nccl::system_of(t, group);
  if (inst.algorithm == Algorithm::nvls || inst.algorithm == Algorithm::nvls_tree) {
    // NVLS runs comm->nvlsChannels whatever the size (enqueue.cc topoGetAlgoInfo); src/transport/
    // nvls.cc: NVLS_NCHANNELS_SM90 16, SM100 24 on one NVLink domain (NVL) and 32 across nodes.
    if (system.compute_capability >= 100) return system.nodes > 1 ? 32 : 24;
    return 16;
  }
  int nc = nccl::search_graphs(version, system).comm_channels;
  // enqueue.cc topoGetAlgoInfo: channels drop one by one while bytes < nc * nt * threadThreshold.
  // nt = maxThreads (device.h: NCCL_SIMPLE_MAX_NTHREADS 512, NCCL_LL_MAX_NTHREADS 512,
  // NCCL_LL128_MAX_NTHREADS 640); threadThreshold (comm.h: NCCL_LL_THREAD_THRESHOLD 8,
  // NCCL_LL128_THREAD_THRESHOLD 8, NCCL_SIMPLE_THREAD_THRESHOLD 64; tuning.cc multiplies ring
  // LL's by nRanks). tpsim's "ideal" protocol counts as Simple.
  const bool ring = inst.algorithm != Algorithm::tree;
  double nt = 512, threshold = 64;
  if (inst.protocol == "LL") nt = 512, threshold = ring ? 8.0 * double(group.size()) : 8.0;
  else if (inst.protocol == "LL128") nt = 640, threshold = 8;
  while (nc >= 2 && bytes < nc * nt * threshold) --nc;
  return std::max(nc, 1);
}

double collective_sm_share(const Topology& t, CollectiveOp op, const CollectiveInstance& inst, const std::vector<int>& group,
                           double bytes) {
  if (t.gpu.sms <= 0) return 0;
  return std::min(1.0, double(collective_ctas(t, op, inst, group, bytes)) / t.gpu.sms);   // c / S
}

double stretched_end(double start, double seconds, const std::vector<SmHold>& holds) {
  double now = start, left = seconds;
  for (;;) {
    // The shares held at `now` and the next time one starts or ends.
    double held = 0, next = std::numeric_limits<double>::infinity();
    for (const SmHold& h : holds) {
      if (h.start <= now && now < h.end) held += h.share;
      if (h.start > now) next = std::min(next, h.start);
      if (h.end > now) next = std::min(next, h.end);
    }
    const double rate = std::max(0.0, 1.0 - held);   // the SMs left: (S - c) / S
    if (held == 0 && next == std::numeric_limits<double>::infinity()) return now + left;
    if (rate > 0 && now + left / rate <= next) return now + left / rate;
    if (next == std::numeric_limits<double>::infinity()) return next;   // no SM left, none ever freed
    left -= rate * (next - now);
    now = next;
  }
}

}  // namespace tpsim::engine
