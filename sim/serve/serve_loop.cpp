// The serving event loop: arrivals are routed to replicas; a replica with work starts an iteration
// whenever it is idle; an iteration's end applies its tokens. Events at the same instant: ends
// first, then arrivals (so an arrival can join the iteration that starts then), then starts, in
// replica order: the same inputs give the same schedule, bit for bit.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <queue>
#include <stdexcept>
#include <tuple>

#include "serve/replica.hpp"

namespace tpsim {

namespace {

// Every request must fit one replica's KV cache on its own, or a scheduler would wait for it forever.
void check_fits(const ServingSpec& spec, const std::vector<Request>& requests, const ReplicaCapacity& capacity) {
  const bool paged = spec.scheduler == "vllm" || spec.scheduler == "sarathi";
  const int64_t blocks = capacity.kv_tokens / spec.block_size;
  for (const Request& r : requests) {
    // Paged: the cache peaks at prompt + output - 1 tokens (the last token made is never fed);
    // static and orca reserve prompt + output.
    const bool fits = paged ? (r.prompt + r.output - 1 + spec.block_size - 1) / spec.block_size <= blocks
                            : r.prompt + r.output <= capacity.kv_tokens;
    if (!fits)
      throw std::invalid_argument(fmt::format(
          "request {} (prompt {} + output {} tokens) does not fit one replica's KV cache of {} tokens ({}); "
          "use more GPUs per replica (plan.tp) or shorter requests",
          r.id, r.prompt, r.output, capacity.kv_tokens, capacity.basis));
  }
}

// A replica among [first, first + count): round robin over the `nth` request sent there, or the
// one with the fewest outstanding tokens (the lowest index among equals).
int route(const ServingSpec& spec, const std::vector<serving::Replica>& replicas, int first, int count, int64_t nth) {
  if (spec.router == "least_tokens") {
    int best = first;
    for (int r = first + 1; r < first + count; ++r)
      if (replicas[size_t(r)].outstanding_tokens() < replicas[size_t(best)].outstanding_tokens()) best = r;
    return best;
  }
  return first + int(nth % count);
}

}  // namespace

ServeResult serve(const ServingSpec& spec, const std::vector<Request>& requests, const ReplicaCapacity& capacity,
                  IterationTimer& timer, const ServeOptions& options) {
  check_fits(spec, requests, capacity);
  ServeResult result;
  result.capacity = capacity;
  result.token_budget = token_budget_of(spec);
  result.max_batch = spec.max_batch;
  result.requests.resize(requests.size());
  // Disaggregated: replicas [0, P) prefill and hand each request's KV cache to one of [P, P + D).
  const int prefill = int(spec.prefill_replicas), decode = int(spec.replicas);
  if (prefill > 0 && !options.kv_transfer)
    throw std::logic_error("prefill/decode disaggregation needs a KV transfer time (ServeOptions::kv_transfer)");
  std::vector<serving::Replica> replicas;
  for (int r = 0; r < prefill; ++r) replicas.emplace_back(r, spec, capacity, serving::Role::prefill);
  for (int r = prefill; r < prefill + decode; ++r)
    replicas.emplace_back(r, spec, capacity, prefill > 0 ? serving::Role::decode : serving::Role::both);
  const int entry_first = 0, entry_count = prefill > 0 ? prefill : decode;
  // KV caches on the wire: (arrival time, handoff number, decode replica, request).
  struct KvHandoff {
    double at;
    int64_t order;
    int to;
    Request request;
    bool operator>(const KvHandoff& o) const { return std::tie(at, order) > std::tie(o.at, o.order); }
  };
  std::priority_queue<KvHandoff, std::vector<KvHandoff>, std::greater<KvHandoff>> transfers;
  int64_t handoffs = 0;
  struct InFlight {
    serving::Iteration it;
    double start = 0;
    int64_t running = 0, kv = 0;   // while it runs
    bool active = false;
  };
  std::vector<InFlight> flights(replicas.size());
  using End = std::pair<double, int>;   // (end time, replica): the earliest, then the lowest replica
  std::priority_queue<End, std::vector<End>, std::greater<End>> ends;
  constexpr double kNever = std::numeric_limits<double>::infinity();
  size_t next = 0;
  std::vector<int> touched;
  while (true) {
    const double t_arrival = next < requests.size() ? requests[next].arrival : kNever;
    const double t_end = ends.empty() ? kNever : ends.top().first;
    const double t_kv = transfers.empty() ? kNever : transfers.top().at;
    const double t = std::min({t_arrival, t_end, t_kv});
    if (t == kNever) break;
    touched.clear();
    while (!ends.empty() && ends.top().first == t) {
      const int r = ends.top().second;
      ends.pop();
      InFlight& f = flights[size_t(r)];
      replicas[size_t(r)].finish(f.it, f.start, t, result.requests);
      f.active = false;
      if (options.record_iterations) {
        IterationRecord rec;
        rec.replica = r;
        rec.start = f.start;
        rec.end = t;
        rec.prefill_tokens = f.it.shape.prefill_tokens;
        rec.decodes = f.it.shape.decodes;
        rec.running = f.running;
        rec.kv_tokens_used = f.kv;
        rec.preempted = f.it.preempted;
        if (options.record_members)
          for (const serving::Work& w : f.it.work) rec.members.push_back(replicas[size_t(r)].id_of(w.seq));
        result.iterations.push_back(std::move(rec));
      }
      touched.push_back(r);
      for (const Request& q : replicas[size_t(r)].take_handoffs()) {
        const int to = route(spec, replicas, prefill, decode, handoffs);
        RequestOutcome& o = result.requests[size_t(q.id)];
        o.decode_replica = to;
        o.kv_transfer = options.kv_transfer(r, to, q.prompt);
        transfers.push({t + o.kv_transfer, handoffs++, to, q});
      }
    }
    while (!transfers.empty() && transfers.top().at == t) {
      const KvHandoff x = transfers.top();
      transfers.pop();
      replicas[size_t(x.to)].admit_prefilled(x.request);
      touched.push_back(x.to);
    }
    for (; next < requests.size() && requests[next].arrival == t; ++next) {
      const Request& q = requests[next];
      const int r = route(spec, replicas, entry_first, entry_count, int64_t(next));
      replicas[size_t(r)].admit(q);
      RequestOutcome& o = result.requests[size_t(q.id)];
      o.id = q.id;
      o.replica = r;
      o.arrival = q.arrival;
      o.prompt = q.prompt;
      o.output = q.output;
      touched.push_back(r);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (int r : touched) {
      InFlight& f = flights[size_t(r)];
      if (f.active || !replicas[size_t(r)].busy()) continue;
      f.it = replicas[size_t(r)].plan();
      if (f.it.empty()) continue;
      const double seconds = timer.seconds(f.it.shape);
      if (!(seconds > 0) || !std::isfinite(seconds))
        throw std::logic_error(fmt::format("an iteration was timed at {} s ({})", seconds, timer.describe()));
      f.start = t;
      f.running = replicas[size_t(r)].running();
      f.kv = replicas[size_t(r)].kv_tokens_used();
      f.active = true;
      ends.push({t + seconds, r});
    }
  }
  for (const RequestOutcome& o : result.requests) {
    if (o.finished < 0)
      throw std::logic_error(fmt::format("request {} never finished: the {} scheduler stalled", o.id, spec.scheduler));
    result.makespan = std::max(result.makespan, o.finished);
  }
  return result;
}

}  // namespace tpsim
