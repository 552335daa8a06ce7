// Capacity search for serving: for each replica layout (TP) and engine setting (scheduler, max
// batch, token budget), the fewest replicas that serve the stream within the SLO, found by
// bisection over the replica count (attainment rises with replicas: each gets a smaller share of
// the same stream). Ranked by GPUs needed, then by goodput.
#include "serve/capacity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "serve/replica_model.hpp"

namespace tpsim::serving {
namespace {

// TP sizes that split the model's heads and fit one node (a replica across nodes puts its TP
// all-reduces on the network: not a serving layout anyone books).
std::vector<int> tp_sizes(const Scenario& s) {
  std::vector<int> out;
  for (int tp = 1; tp <= std::max(1, s.topology.gpus_per_node); tp *= 2)
    if (s.model.heads % tp == 0 && s.model.kv_heads % tp == 0 && s.model.ffn % tp == 0 && s.model.vocab % tp == 0)
      out.push_back(tp);
  return out;
}

}  // namespace

std::vector<CapacityRow> capacity_search(const Scenario& base, const CapacitySpec& c) {
  const ServingSpec& stream = *base.serving;
  const std::vector<Request> requests = make_requests(stream);
  check_context(base, requests);
  std::vector<CapacityRow> rows;
  ServeOptions summary_only;   // the bisection reads percentiles, not the iterations
  summary_only.record_iterations = false;
  for (int tp : tp_sizes(base)) {
    Scenario s = base;
    s.plan.tp = tp;
    s.plan.pp = 1;
    s.plan.sp = false;
    std::unique_ptr<SimulatedTimer> timer;   // one per TP: the schedulers share its shapes
    for (const std::string& scheduler : c.schedulers)
      for (int64_t max_batch : c.max_batches)
        for (int64_t budget : scheduler == "sarathi" ? c.token_budgets : std::vector<int64_t>{0}) {
          CapacityRow row;
          row.tp = tp;
          row.scheduler = scheduler;
          row.max_batch = max_batch;
          ServingSpec spec = stream;
          spec.scheduler = scheduler;
          spec.max_batch = max_batch;
          spec.token_budget = budget;
          row.token_budget = token_budget_of(spec);
          if (row.token_budget > 0 && row.token_budget < max_batch && scheduler != "orca") continue;
          const int64_t most = s.topology.total_gpus() / tp;
          ReplicaCapacity capacity;
          try {
            capacity = replica_capacity(s, spec);
            for (const Request& r : requests)
              if (r.prompt + r.output > capacity.kv_tokens)
                throw std::invalid_argument(fmt::format("a request of {} tokens exceeds the {}-token KV cache",
                                                        r.prompt + r.output, capacity.kv_tokens));
          } catch (const std::invalid_argument& e) {
            row.why = e.what();
            rows.push_back(row);
            continue;
          }
          if (!timer) timer = std::make_unique<SimulatedTimer>(s);
          auto attempt = [&](int64_t replicas) {
            spec.replicas = replicas;
            const ServeResult r = serve(spec, requests, capacity, *timer, summary_only);
            return summarize(r, spec.slo, int(replicas) * tp);
          };
          // Bisection for the fewest replicas that meet the SLO.
          ServeSummary at_most = attempt(most);
          if (!at_most.slo_met) {
            row.replicas = most;
            row.gpus = int(most) * tp;
            row.summary = at_most;
            row.why = fmt::format("misses the SLO even with all {} GPUs ({} replicas)", row.gpus, most);
            rows.push_back(row);
            continue;
          }
          int64_t lo = 0, hi = most;   // lo fails (0 replicas serve nothing), hi meets
          ServeSummary best = at_most;
          while (hi - lo > 1) {
            const int64_t mid = lo + (hi - lo) / 2;
            const ServeSummary m = attempt(mid);
            if (m.slo_met) {
              hi = mid;
              best = m;
            } else {
              lo = mid;
            }
          }
          row.replicas = hi;
          row.gpus = int(hi) * tp;
          row.summary = best;
          row.meets = true;
          rows.push_back(row);
        }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const CapacityRow& a, const CapacityRow& b) {
    if (a.meets != b.meets) return a.meets;
    if (a.gpus != b.gpus) return a.gpus < b.gpus;
    return a.summary.goodput > b.summary.goodput;
  });
  return rows;
}

std::string capacity_table(const Scenario& base, const std::vector<CapacityRow>& rows, int top) {
  const ServingSpec& spec = *base.serving;
  std::string out = fmt::format(
      "{} on {}: serving capacity search, the fewest replicas per layout that meet TTFT p{:g} <= {:g} s and TPOT p{:g} "
      "<= {:g} ms\n(each row: bisection over replicas; every count tried serves the same {} requests)\n\n",
      base.model.name, base.topology.name, spec.slo.ttft_percentile, spec.slo.ttft, spec.slo.tpot_percentile,
      spec.slo.tpot * 1e3, rows.empty() ? 0 : rows.front().summary.requests);
  out += fmt::format("{:>4} {:>3} {:<8} {:>9} {:>7} {:>8} {:>5} {:>10} {:>10} {:>10} {:>9}  {}\n", "rank", "tp", "sched",
                     "max_batch", "budget", "replicas", "GPUs", "TTFT p90 s", "TPOT p99", "goodput/s", "tok/s/GPU", "verdict");
  int n = 0;
  const double price = base.topology.price_per_gpu_hour;
  for (const CapacityRow& r : rows) {
    if (++n > top) break;
    const std::string budget = r.token_budget > 0 ? std::to_string(r.token_budget) : "-";
    if (!r.why.empty() && r.replicas == 0) {
      out += fmt::format("{:>4} {:>3} {:<8} {:>9} {:>7} {:>8} {:>5} {:>10} {:>10} {:>10} {:>9}  {}\n", n, r.tp, r.scheduler,
                         r.max_batch, budget, "-", "-", "-", "-", "-", "-", r.why);
      continue;
    }
    out += fmt::format("{:>4} {:>3} {:<8} {:>9} {:>7} {:>8} {:>5} {:>10.3f} {:>7.1f} ms {:>10.2f} {:>9.0f}  {}\n", n, r.tp,
                       r.scheduler, r.max_batch, budget, r.replicas, r.gpus, r.summary.ttft.p90, r.summary.tpot.p99 * 1e3,
                       r.summary.goodput, r.summary.output_tokens_per_s_per_gpu,
                       !r.meets ? r.why
                       : price > 0 ? fmt::format("meets; {:.2f}/hour, {:.3f} per million output tokens", r.gpus * price,
                                                 r.gpus * price / (r.summary.output_tokens_per_s * 3600) * 1e6)
                                   : "meets");
  }
  if (price <= 0) out += "(cost: set topology.price_per_gpu_hour to rank by it; the GPU count ranks it the same way)\n";
  if (int(rows.size()) > top) out += fmt::format("({} more rows: --top)\n", int(rows.size()) - top);
  return out;
}

}  // namespace tpsim::serving
