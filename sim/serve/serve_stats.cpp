// Latency percentiles, throughput and goodput of a serving run, from its per-request outcomes.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tpsim/serving.hpp"

namespace tpsim {

// numpy.percentile's default ("linear"): rank p/100 x (n - 1), interpolated between neighbours.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const double rank = p / 100 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(lo), v.end());
  const double a = v[lo];
  if (hi == lo) return a;
  const double b = *std::min_element(v.begin() + std::ptrdiff_t(lo) + 1, v.end());
  return a + (b - a) * (rank - double(lo));
}

Percentiles percentiles_of(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  p.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  p.p50 = percentile(v, 50);
  p.p90 = percentile(v, 90);
  p.p99 = percentile(v, 99);
  return p;
}

ServeSummary summarize(const ServeResult& result, const SloSpec& slo, int gpus) {
  ServeSummary s;
  s.gpus = gpus;
  s.requests = int64_t(result.requests.size());
  s.iterations = int64_t(result.iterations.size());
  s.makespan = result.makespan;
  std::vector<double> ttft, tpot, latency, queueing, transfer;
  int64_t good = 0;
  for (const RequestOutcome& o : result.requests) {
    s.input_tokens += o.prompt;
    s.output_tokens += o.output;
    s.preemptions += o.preemptions;
    ttft.push_back(o.ttft());
    if (o.output > 1) tpot.push_back(o.tpot());
    latency.push_back(o.latency());
    queueing.push_back(o.queueing());
    if (o.decode_replica >= 0) transfer.push_back(o.kv_transfer);
    if (o.ttft() <= slo.ttft && o.tpot() <= slo.tpot) ++good;
  }
  s.ttft = percentiles_of(ttft);
  s.tpot = percentiles_of(tpot);
  s.latency = percentiles_of(latency);
  s.queueing = percentiles_of(queueing);
  s.kv_transfer = percentiles_of(transfer);
  s.slo_ttft = percentile(ttft, slo.ttft_percentile);
  s.slo_tpot = percentile(tpot, slo.tpot_percentile);
  s.slo_met = s.slo_ttft <= slo.ttft && s.slo_tpot <= slo.tpot;
  if (s.makespan > 0) {
    s.requests_per_s = double(s.requests) / s.makespan;
    s.output_tokens_per_s = double(s.output_tokens) / s.makespan;
    s.input_tokens_per_s = double(s.input_tokens) / s.makespan;
    s.output_tokens_per_s_per_gpu = gpus > 0 ? s.output_tokens_per_s / gpus : 0;
    s.goodput = double(good) / s.makespan;
    // Little's law's L: the integral of the requests in the system over time, over the time.
    s.mean_in_system = s.latency.mean * double(s.requests) / s.makespan;
  }
  s.good_fraction = s.requests > 0 ? double(good) / double(s.requests) : 0;
  // KV occupancy while each iteration runs; idle time counts as empty.
  const double capacity = double(result.capacity.kv_tokens);
  if (capacity > 0) {
    double area = 0;
    int replicas = 0;
    for (const IterationRecord& it : result.iterations) {
      s.kv_peak = std::max(s.kv_peak, double(it.kv_tokens_used) / capacity);
      area += double(it.kv_tokens_used) * (it.end - it.start);
      replicas = std::max(replicas, it.replica + 1);
    }
    if (s.makespan > 0 && replicas > 0) s.kv_mean = area / (capacity * s.makespan * replicas);
  }
  return s;
}

}  // namespace tpsim
