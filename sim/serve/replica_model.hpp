// A replica of a scenario's plan for the serving loop: its iteration time (SimulatedTimer) and its
// KV capacity (replica_capacity). See replica_model.cpp.
#pragma once

#include <map>
#include <string>
#include <tuple>

#include "tpsim/program.hpp"
#include "tpsim/serving.hpp"

namespace tpsim::serving {

// Iteration time = the replica's forward for the iteration's tokens (SimGrid, memoised at batch
// shapes at most 1.5x apart, linear between) + per layer the attention its prefill chunks and
// decode contexts need, less the attention the simulated shape already had; the output head's
// GEMM for the sequences that make a token instead of every token; + swap traffic.
class SimulatedTimer : public IterationTimer {
 public:
  explicit SimulatedTimer(const Scenario& scenario);
  double seconds(const IterationShape& shape) override;
  std::string describe() const override;
  int simulations() const { return int(base_.size()); }
  // The replica's forward for `tokens` rows (attention at context 1): as seconds() takes it,
  // interpolated between simulated shapes, or simulated at exactly that shape (for checking the
  // interpolation).
  double forward(int64_t tokens);
  double forward_simulated(int64_t tokens) { return base(tokens); }

 private:
  double base(int64_t tokens);
  double logits(int64_t rows) const;
  double attention(double pairs, double prefill_tokens, double kv_read, double decodes, double context) const;
  Scenario s_;
  std::map<int64_t, double> base_;
  double heads_ = 0, kv_heads_ = 0, head_dim_ = 0, kv_bytes_ = 0, act_bytes_ = 0, host_link_ = 0;
  DType act_dtype_ = DType::bf16, gemm_dtype_ = DType::bf16;
  GemmInfo output_;
  bool host_link_given_ = false;
  double wall_s_ = 0;
};

// KV caches between replicas under disaggregation, over the topology's links: each of a replica's
// tp x pp GPUs sends its shard to its counterpart on the other replica, all at once, simulated on
// SimGrid. Replica r holds GPUs [r g, (r + 1) g), g = tp x pp. Memoised per pair class (the
// replicas share a node or not: on the symmetric presets every such pair takes the same time) and
// per size at sizes 1.5x apart, linear between.
class KvTransferTimer {
 public:
  KvTransferTimer(const Scenario& scenario, int replicas, double kv_bytes_per_token);
  double operator()(int from, int to, int64_t tokens);
  std::string describe() const;

 private:
  double simulate_transfer(int from, int to, int64_t tokens) const;
  Scenario s_;
  int gpus_per_replica_ = 1;
  double bytes_per_token_ = 0;
  std::map<std::tuple<bool, int64_t>, double> memo_;
};

// Every request's prompt + output within the model's context (model.max_seq); else
// std::invalid_argument naming the first that is not.
void check_context(const Scenario& scenario, const std::vector<Request>& requests);

// KV tokens one replica holds: serving.memory_utilization of each GPU's HBM less its weights, the
// largest iteration's activations and the runtime reserve, over the KV bytes a token takes there
// (the least over pipeline stages). Throws std::invalid_argument when nothing is left.
ReplicaCapacity replica_capacity(const Scenario& scenario, const ServingSpec& spec);

}  // namespace tpsim::serving
