// Serving: a stream of requests through model replicas, each run by an inference engine that
// batches at iteration level. Layers, as in the rest of tpsim: the request stream (requests.cpp),
// an iteration's time on one replica (IterationTimer: SimGrid-simulated steps of the same lowering
// `tpsim run` times), the schedulers that choose each iteration's batch (replica.cpp), and the
// event loop that routes arrivals and advances replicas (serve_loop.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim {

struct Request {
  int64_t id = 0;        // position in the stream (arrival order)
  double arrival = 0;    // s from the stream's start
  int64_t prompt = 0;    // tokens
  int64_t output = 0;    // tokens to generate, the first made by the prefill
};

// The request stream a ServingSpec describes: its trace (sorted by arrival, times made relative
// to the first), or seeded synthetic arrivals, bit for bit the same for the same spec. Throws
// InputError naming the file, line and column of a bad trace row.
std::vector<Request> make_requests(const ServingSpec& spec);

// The work of one iteration on one replica, in the aggregates its time depends on.
struct IterationShape {
  int64_t prefill_tokens = 0;      // prompt tokens prefilled this iteration (whole prompts or chunks)
  int64_t prefill_sequences = 0;   // sequences with a prefill chunk
  // Query-key pairs of the prefill chunks' causal attention: a chunk of c tokens after k cached
  // ones contributes c*k + c*(c+1)/2.
  double prefill_pairs = 0;
  int64_t prefill_kv_read = 0;     // cached tokens the chunks attend to (their KV read from HBM)
  int64_t decodes = 0;             // sequences decoding one token each
  int64_t decode_context = 0;      // KV tokens the decodes read, summed over them
  int64_t sampled = 0;             // sequences that make a token (their logits are computed)
  double swap_bytes = 0;           // KV cache moved between a GPU and host memory (per GPU)
  int64_t tokens() const { return prefill_tokens + decodes; }
};

// How long one iteration of a replica takes.
class IterationTimer {
 public:
  virtual ~IterationTimer() = default;
  virtual double seconds(const IterationShape& shape) = 0;
  virtual std::string describe() const = 0;   // one line for reports: what it simulated, how
};

// What a scheduler needs to know about the replica it runs on.
struct ReplicaCapacity {
  int64_t kv_tokens = 0;     // KV cache the engine's memory share holds, in tokens (per replica)
  double kv_bytes_per_token = 0;   // per GPU, for swap traffic
  std::string basis;         // how kv_tokens was counted, for reports
};

struct RequestOutcome {
  int64_t id = 0;
  int replica = -1;          // where it was routed (under disaggregation: its prefill replica)
  int decode_replica = -1;   // disaggregation: where its KV cache went
  double kv_transfer = 0;    // disaggregation: s its KV cache took between them
  double arrival = 0, first_scheduled = -1, first_token = -1, finished = -1;   // s; -1 = never
  int64_t prompt = 0, output = 0;
  int preemptions = 0;
  double ttft() const { return first_token - arrival; }
  // Mean time between output tokens after the first (0 for a one-token output).
  double tpot() const { return output > 1 ? (finished - first_token) / double(output - 1) : 0; }
  double latency() const { return finished - arrival; }
  double queueing() const { return first_scheduled - arrival; }
};

struct IterationRecord {
  int replica = 0;
  double start = 0, end = 0;
  int64_t prefill_tokens = 0, decodes = 0;
  int64_t running = 0;           // sequences holding KV (or a static batch's slot) while it runs
  int64_t kv_tokens_used = 0;    // KV tokens allocated while it runs (blocks x block size when paged)
  int64_t preempted = 0;         // sequences preempted to make room for it
  std::vector<int64_t> members;  // request ids in the batch (only with ServeOptions::record_members)
};

struct ServeOptions {
  bool record_members = false;   // tests: batch membership per iteration
  bool record_iterations = true;
  // Disaggregation: s to move `kv_tokens` tokens of KV cache from replica `from` to replica `to`
  // (replicas 0 .. prefill_replicas-1 prefill, the rest decode). Required when prefill_replicas > 0.
  std::function<double(int from, int to, int64_t kv_tokens)> kv_transfer;
};

struct ServeResult {
  std::vector<RequestOutcome> requests;     // by id
  std::vector<IterationRecord> iterations;  // in start order per replica, replicas interleaved by time
  ReplicaCapacity capacity;
  int64_t token_budget = 0, max_batch = 0;  // as the scheduler applied them (defaults resolved)
  double makespan = 0;                      // s until the last request finished
};

// Runs the stream through `spec.replicas` identical replicas, each iteration timed by `timer`.
// Throws std::invalid_argument when a request can never fit a replica's KV cache.
ServeResult serve(const ServingSpec& spec, const std::vector<Request>& requests, const ReplicaCapacity& capacity,
                  IterationTimer& timer, const ServeOptions& options = {});


// ---------------------------------------------------------------------------------------------
// What a serving run achieved.

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;   // linear interpolation between order statistics (numpy's default)
};
Percentiles percentiles_of(std::vector<double> values);
double percentile(std::vector<double> values, double p);   // p in [0, 100]

struct ServeSummary {
  int64_t requests = 0, input_tokens = 0, output_tokens = 0, preemptions = 0, iterations = 0;
  double makespan = 0;                          // s from the first arrival to the last token
  Percentiles ttft, tpot, latency, queueing;    // s (TPOT over requests of more than one output token)
  Percentiles kv_transfer;                      // s, disaggregation only (else zeros)
  double requests_per_s = 0, output_tokens_per_s = 0, input_tokens_per_s = 0, output_tokens_per_s_per_gpu = 0;
  double goodput = 0;                           // requests/s that met both per-request objectives
  double good_fraction = 0;
  double slo_ttft = 0, slo_tpot = 0;            // the percentiles the SLO names, as achieved
  bool slo_met = false;
  double mean_in_system = 0;                    // time-average requests between arrival and last token
  double kv_peak = 0, kv_mean = 0;              // fraction of a replica's KV capacity (mean: over time and replicas)
  int gpus = 0;
};
ServeSummary summarize(const ServeResult& result, const SloSpec& slo, int gpus);

}  // namespace tpsim
