// A replica of the scenario's plan as the serving loop sees it: how long an iteration takes and how
// many tokens of KV cache it holds. Both come from the models `tpsim run` uses for an inference
// step: the iteration is lowered and simulated on SimGrid; the KV cache is what the memory model
// leaves of the engine's share of HBM.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <stdexcept>

#include "serve/replica_model.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/partition.hpp"
#include "tpsim/step_lowering.hpp"
#include "tpsim/wall_clock.hpp"

namespace tpsim::serving {
namespace {

// Used for swap preemption when the topology names no GPU-host path: a PCIe Gen5 x16 link's
// measured host-to-device rate (topologies/aws-p5-efa.yaml).
constexpr double kDefaultHostLink = 55e9;

// Batch shapes the SimGrid model is run at: 1, 2, 3, 4, 6, 8, 12, ... (powers of two and their
// halfway 1.5x), at most 1.5x apart; shapes between two are interpolated linearly.
int64_t grid_above(int64_t g) { return g < 2 ? 2 : (g & (g - 1)) == 0 ? g + g / 2 : g / 3 * 4; }   // 2^k -> 1.5 x 2^k -> 2^(k+1)
int64_t grid_below(int64_t tokens) {
  int64_t g = 1;
  while (grid_above(g) <= tokens) g = grid_above(g);
  return g;
}

// The replica alone: its tp x pp GPUs, one data-parallel copy, on as many nodes as it needs.
Scenario replica_scenario(const Scenario& s) {
  Scenario r = s;
  r.plan.dp = 1;
  r.serving.reset();
  r.workload.kind = WorkloadKind::inference;
  const int gpus = r.plan.tp * r.plan.pp;
  const int per_node = std::max(1, r.topology.gpus_per_node);
  r.topology.nodes = std::min(r.topology.nodes, (gpus + per_node - 1) / per_node);
  return r;
}

}  // namespace

SimulatedTimer::SimulatedTimer(const Scenario& s) : s_(replica_scenario(s)) {
  const Precision p = precision_of(s_);
  const double t = s_.plan.tp, hd = double(s_.model.head_dim());
  heads_ = double(s_.model.heads) / t;
  kv_heads_ = double(s_.model.kv_heads) / t;
  head_dim_ = hd;
  kv_bytes_ = dtype_bytes(p.kv_cache);
  act_bytes_ = dtype_bytes(p.activations);
  act_dtype_ = p.activations;
  host_link_ = s_.topology.nic.pcie_bandwidth > 0 ? s_.topology.nic.pcie_bandwidth : kDefaultHostLink;
  host_link_given_ = s_.topology.nic.pcie_bandwidth > 0;
  // The output head [rows, h] x [h, V] as the plan splits it (by columns: V/t; by rows: h/t).
  const int split = tp_split_dim(s_.plan, "output");
  output_ = GemmInfo{0, split == 1 ? s_.model.vocab / s_.plan.tp : s_.model.vocab,
                     split == 0 ? s_.model.hidden / s_.plan.tp : s_.model.hidden};
  gemm_dtype_ = gemm_compute_dtype(p.weights, p.activations);
}

// The output head's GEMM for `rows` rows.
double SimulatedTimer::logits(int64_t rows) const {
  GemmInfo g = output_;
  g.m = rows;
  return gemm_cost(s_.topology.gpu, g, gemm_dtype_).seconds;
}

// The whole replica's forward for `tokens` rows, each a sequence decoding at context 1: every
// GEMM, norm, TP collective and pipeline send at that shape, attention as good as free.
double SimulatedTimer::base(int64_t tokens) {
  auto it = base_.find(tokens);
  if (it != base_.end()) return it->second;
  const WallClock wall;
  Scenario s = s_;
  s.workload.batch = tokens;
  s.workload.prompt = 1;
  s.workload.generate = 1;
  ProgramSet programs = lowering::lower_inference_step(s, true, 1);
  resolve_collectives(s.topology, programs);
  EngineOptions engine;
  engine.fidelity = Fidelity::flow;
  const double seconds = simulate(s.topology, programs, engine).makespan;
  wall_s_ += wall.lap();
  spdlog::debug("serving: {} tokens per iteration simulated: {:.6f} s ({:.3f} s of wall time so far)", tokens, seconds, wall_s_);
  base_.emplace(tokens, seconds);
  return seconds;
}

// Per layer: [tokens, heads/t, hd] queries against their keys, one launch for the prefill chunks
// (4 * pairs * heads * hd FLOPs; Q, O and the chunks' and cached K, V read) and one for the decodes
// (4 * context * heads * hd FLOPs; the cached K, V streamed), as vLLM runs them.
double SimulatedTimer::attention(double pairs, double prefill_tokens, double kv_read, double decodes, double context) const {
  // One attention kernel of `fn` on this replica's GPU: its FLOPs and the HBM bytes it moves.
  auto kernel = [&](const char* fn, double flops, double bytes) {
    Op op;
    op.kind = OpKind::kernel;
    op.kernel.fn = fn;
    op.dtype = act_dtype_;
    op.kernel.attrs["head_dim"] = head_dim_;
    op.flops = flops;
    op.hbm_bytes = bytes;
    return op_cost(s_.topology.gpu, op).seconds;
  };
  double seconds = 0;
  if (prefill_tokens > 0)
    seconds += kernel("attention", 4 * pairs * heads_ * head_dim_,
                      2 * prefill_tokens * heads_ * head_dim_ * act_bytes_ +
                          2 * (prefill_tokens + kv_read) * kv_heads_ * head_dim_ * kv_bytes_);
  if (decodes > 0)
    seconds += kernel("decode_attention", 4 * context * heads_ * head_dim_,
                      2 * context * kv_heads_ * head_dim_ * kv_bytes_ + 2 * decodes * heads_ * head_dim_ * act_bytes_);
  return seconds;
}

double SimulatedTimer::forward(int64_t tokens) {
  // From one GEMM tile of rows up to vLLM's prefill budget, GEMM time steps with whole 128-row
  // tiles, which interpolating across steps would smooth away (7% low at 700 tokens between 512 and
  // 768); the rest (norms, element-wise kernels, TP collectives) grows with the rows. Within one
  // step the tiles are the same, so the time is linear there: simulate the step's first and last
  // shape and interpolate between them. Below a tile the GEMMs stream their weights and the time is
  // near linear; above 8192 tokens, the 1.5x grid.
  constexpr int64_t kTile = 128, kTiledUpTo = 8192;
  if (tokens > kTile && tokens <= kTiledUpTo) {
    const int64_t last = (tokens + kTile - 1) / kTile * kTile, first = last - kTile + 1;
    if (tokens == last) return base(last);
    const double at_first = base(first);
    return at_first + (base(last) - at_first) * double(tokens - first) / double(last - first);
  }
  const int64_t lo = grid_below(tokens), hi = lo == tokens ? lo : grid_above(lo);
  const double at_lo = base(lo);
  return hi == lo ? at_lo : at_lo + (base(hi) - at_lo) * double(tokens - lo) / double(hi - lo);
}

double SimulatedTimer::seconds(const IterationShape& shape) {
  const int64_t tokens = shape.tokens();
  const double forward = this->forward(tokens);
  // The base timed `tokens` decodes at context 1; the iteration's attention replaces theirs.
  const double t = double(tokens), layers = double(s_.model.layers);
  const double real = attention(shape.prefill_pairs, double(shape.prefill_tokens), double(shape.prefill_kv_read),
                                double(shape.decodes), double(shape.decode_context));
  const double timed = attention(0, 0, 0, t, t);
  // It also computed logits for every token; only the sequences that make a token need them.
  const double sampled = shape.sampled > 0 ? logits(shape.sampled) : 0;
  return forward + layers * (real - timed) + sampled - logits(tokens) + shape.swap_bytes / host_link_;
}

std::string SimulatedTimer::describe() const {
  return fmt::format("iterations timed on SimGrid (flow fidelity) at {} batch shapes of {} to {} tokens "
                     "(linear between them: up to 128 tokens and past 8192 between shapes 1.5x apart, in between within "
                     "each 128-row GEMM tile step); attention per iteration from its prefill chunks and decode "
                     "contexts, logits only for the sequences that make a token; swap over a {:g} GB/s host link{}",
                     base_.size(), base_.empty() ? 0 : base_.begin()->first, base_.empty() ? 0 : base_.rbegin()->first,
                     host_link_ / 1e9, host_link_given_ ? "" : " (assumed: the topology names none)");
}

KvTransferTimer::KvTransferTimer(const Scenario& scenario, int replicas, double kv_bytes_per_token)
    : s_(scenario), gpus_per_replica_(scenario.plan.tp * scenario.plan.pp), bytes_per_token_(kv_bytes_per_token) {
  const int per_node = std::max(1, s_.topology.gpus_per_node);
  s_.topology.nodes = std::min(s_.topology.nodes, (replicas * gpus_per_replica_ + per_node - 1) / per_node);
}

double KvTransferTimer::simulate_transfer(int from, int to, int64_t tokens) const {
  ProgramSet set;
  const int n = s_.topology.total_gpus();
  set.dp = n;
  set.ranks.resize(size_t(n));
  for (int r = 0; r < n; ++r) set.ranks[size_t(r)].rank = r;
  const int64_t bytes = int64_t(std::ceil(double(tokens) * bytes_per_token_));
  for (int i = 0; i < gpus_per_replica_; ++i) {
    const int src = from * gpus_per_replica_ + i, dst = to * gpus_per_replica_ + i;
    for (const auto& [rank, peer, kind] : {std::tuple{src, dst, OpKind::send}, std::tuple{dst, src, OpKind::recv}}) {
      Op op;
      op.kind = kind;
      op.name = "kv_cache.transfer";
      op.stream = Stream::pp_comm;
      op.p2p.peer = peer;
      op.p2p.bytes = bytes;
      set.ranks[size_t(rank)].ops.push_back(op);
    }
  }
  EngineOptions engine;
  engine.fidelity = Fidelity::flow;
  return simulate(s_.topology, set, engine).makespan;
}

double KvTransferTimer::operator()(int from, int to, int64_t tokens) {
  const int per_node = std::max(1, s_.topology.gpus_per_node);
  const bool same_node = (from * gpus_per_replica_) / per_node == (to * gpus_per_replica_) / per_node &&
                         gpus_per_replica_ <= per_node;
  auto at = [&](int64_t size) {
    auto [it, fresh] = memo_.try_emplace({same_node, size}, 0.0);
    if (fresh) it->second = simulate_transfer(from, to, size);
    return it->second;
  };
  const int64_t lo = grid_below(tokens), hi = lo == tokens ? lo : grid_above(lo);
  const double a = at(lo);
  return hi == lo ? a : a + (at(hi) - a) * double(tokens - lo) / double(hi - lo);
}

std::string KvTransferTimer::describe() const {
  return fmt::format("KV caches sent GPU to GPU between replicas on SimGrid ({} transfer shapes), each alone on the "
                     "links (transfers do not contend with each other or with TP traffic)",
                     memo_.size());
}

void check_context(const Scenario& s, const std::vector<Request>& requests) {
  for (const Request& r : requests)
    if (r.prompt + r.output > s.model.max_seq)
      throw std::invalid_argument(fmt::format(
          "request {} (prompt {} + output {} tokens) exceeds model.max_seq {} of '{}'; clip the stream's lengths "
          "(serving.prompt.max, serving.output.max) or shorten the trace's requests",
          r.id, r.prompt, r.output, s.model.max_seq, s.model.name));
}

ReplicaCapacity replica_capacity(const Scenario& scenario, const ServingSpec& spec) {
  Scenario s = replica_scenario(scenario);
  // The working set of the largest iteration the scheduler forms (vLLM sizes its KV cache after
  // a profiling run at max_num_batched_tokens); static and orca batches are not capped in tokens:
  // sized at 8192.
  const int64_t budget = token_budget_of(spec);
  const int64_t work = budget > 0 ? budget : 8192;
  s.workload.batch = 1;
  s.workload.prompt = work;
  s.workload.generate = 1;
  s.workload.prefill_chunk = 0;
  ReplicaCapacity c;
  double tokens = std::numeric_limits<double>::infinity();
  for (int stage = 0; stage < s.plan.pp; ++stage) {
    const MemoryBreakdown m = memory_per_gpu(s, stage);
    const double per_token = m.kv_cache / double(work + 1);
    const double other = m.total - m.kv_cache;
    const double free = spec.memory_utilization * m.capacity - other;
    if (free <= 0)
      throw std::invalid_argument(fmt::format(
          "serving: the model leaves no room for a KV cache on stage {}: {:.1f} GiB of weights, activations and "
          "runtime reserve against {:.0f}% of {:.1f} GiB HBM (serving.memory_utilization); use more GPUs per "
          "replica (plan.tp)",
          stage, other / double(1 << 30), spec.memory_utilization * 100, m.capacity / double(1 << 30)));
    if (free / per_token < tokens) {
      tokens = free / per_token;
      c.kv_bytes_per_token = per_token;
      c.basis = fmt::format("{:.0f}% of {:.1f} GiB HBM less {:.1f} GiB of weights, activations for a {}-token "
                            "iteration and runtime reserve, at {:.0f} KiB per token per GPU",
                            spec.memory_utilization * 100, m.capacity / double(1 << 30), other / double(1 << 30), work,
                            per_token / 1024);
    }
  }
  c.kv_tokens = int64_t(std::floor(tokens));
  return c;
}

}  // namespace tpsim::serving
