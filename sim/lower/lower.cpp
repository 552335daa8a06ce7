// lower(): one Program per rank for a scope (block, layer, stack), forward and optionally backward;
// unsharded() and proxy_scale() derive the scenarios the numerics compares.
#include "tpsim/step_lowering.hpp"
#include "tpsim/lower.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "lower/program_builder.hpp"

namespace tpsim {

const char* to_string(Stream s) {
  switch (s) {
    case Stream::compute: return "compute";
    case Stream::tp_comm: return "tp_comm";
    case Stream::dp_comm: return "dp_comm";
    case Stream::pp_comm: return "pp_comm";
  }
  return "?";
}

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::gemm: return "gemm";
    case OpKind::kernel: return "kernel";
    case OpKind::collective: return "collective";
    case OpKind::send: return "send";
    case OpKind::recv: return "recv";
  }
  return "?";
}

const char* to_string(Pass p) {
  switch (p) {
    case Pass::forward: return "forward";
    case Pass::backward: return "backward";
    case Pass::optimizer: return "optimizer";
  }
  return "?";
}

namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

void check_divisions(const Scenario& s, LowerScope scope) {
  const ModelSpec& m = s.model;
  const PlanSpec& p = s.plan;
  require(m.hidden > 0 && m.heads > 0 && m.kv_heads > 0 && m.ffn > 0, "model: hidden, heads, kv_heads, ffn must be positive");
  require(m.hidden % m.heads == 0, fmt::format("model.hidden {} is not divisible by model.heads {}", m.hidden, m.heads));
  require(m.heads % m.kv_heads == 0, fmt::format("model.heads {} is not divisible by model.kv_heads {}", m.heads, m.kv_heads));
  require(p.tp >= 1 && p.pp >= 1 && p.dp >= 1, "plan: tp, pp, dp must be >= 1");
  require(m.heads % p.tp == 0, fmt::format("model.heads {} is not divisible by plan.tp {}", m.heads, p.tp));
  require(m.kv_heads % p.tp == 0, fmt::format("model.kv_heads {} is not divisible by plan.tp {}", m.kv_heads, p.tp));
  require(m.ffn % p.tp == 0, fmt::format("model.ffn {} is not divisible by plan.tp {}", m.ffn, p.tp));
  require(m.hidden % p.tp == 0, fmt::format("model.hidden {} is not divisible by plan.tp {}", m.hidden, p.tp));
  if (m.moe.enabled()) {
    const int ep = std::max(1, p.ep);
    require(m.moe.top_k >= 1 && m.moe.top_k <= m.moe.experts, "model.moe.top_k must be in [1, experts]");
    require(m.moe.experts % ep == 0, fmt::format("model.moe.experts {} is not divisible by plan.ep {}", m.moe.experts, ep));
    require(p.dp % ep == 0, fmt::format("plan.dp {} is not divisible by plan.ep {}", p.dp, ep));
    require(m.moe.expert_ffn > 0 && m.moe.expert_ffn % p.tp == 0,
            fmt::format("model.moe.expert_ffn {} is not divisible by plan.tp {}", m.moe.expert_ffn, p.tp));
    require(p.tp == 1 || p.sp, "a mixture-of-experts model with plan.tp > 1 needs plan.sp (sequence parallelism)");
    require(m.moe.shared_expert_ffn % p.tp == 0,
            fmt::format("model.moe.shared_expert_ffn {} is not divisible by plan.tp {}", m.moe.shared_expert_ffn, p.tp));
  } else {
    require(p.ep <= 1, "plan.ep > 1 needs a mixture-of-experts model (model.moe)");
  }
  if (p.cp > 1) {
    require(s.workload.kind == WorkloadKind::training, "plan.cp > 1: context parallelism is modelled for training only");
    require(!m.moe.enabled(), "plan.cp > 1 with a mixture-of-experts model is not modelled yet");
    require(s.workload.seq % (2 * p.cp) == 0,
            fmt::format("workload.seq {} is not divisible by 2 x plan.cp = {} (each rank holds two chunks of every "
                        "sequence)", s.workload.seq, 2 * p.cp));
  }
  if (scope == LowerScope::stack || scope == LowerScope::step) {
    require(m.layers > 0, "model.layers must be positive");
    require(m.vocab > 0 && m.vocab % p.tp == 0, fmt::format("model.vocab {} is not divisible by plan.tp {}", m.vocab, p.tp));
    if (const std::string why = stage_split_problem(m, p); !why.empty()) require(false, why);
  }
}

// One layer (or the first block pair) on every rank; each rank reads an input in the residual
// stream's layout and, for backward, a seeded gradient of its output.
Program lower_layer(const Scenario& s, const lowering::RankCoords& c, int64_t tokens, bool backward,
                    bool shard_grad_reduction) {
  lowering::ProgramBuilder b(s, c, tokens);
  lowering::Tape tape;
  const lowering::Value x = b.input("input", s.model.hidden, b.stream_layout());
  const lowering::Value y = b.layer_forward(0, x, tape);
  if (backward) {
    b.backward(tape, y, b.gradient_seed(y));
    b.gradient(x);
    if (shard_grad_reduction) b.reduce_grads_over_token_shards();
  }
  return b.finish();
}

// Embedding, model.layers layers split over the pipeline stages, final norm, output, loss.
Program lower_stack(const Scenario& s, const lowering::RankCoords& c, int64_t tokens, bool backward, bool head,
                    bool shard_grad_reduction) {
  const PlanSpec& p = s.plan;
  lowering::ProgramBuilder b(s, c, tokens);
  lowering::Tape tape;
  const StageLayers mine = stage_layers(s.model, p, c.pp_index);
  const int64_t first = mine.first, last = mine.first + mine.count;
  const bool first_stage = c.pp_index == 0, last_stage = c.pp_index == p.pp - 1;
  const int prev = first_stage ? -1 : lowering::rank_of(p, c.tp_index, c.dp_index, c.pp_index - 1, c.cp_index);
  const int next = last_stage ? -1 : lowering::rank_of(p, c.tp_index, c.dp_index, c.pp_index + 1, c.cp_index);
  const std::string boundary_in = fmt::format("layer{}.mlp.residual.out", first - 1);

  const lowering::Value x = first_stage ? (head ? b.embedding_forward(tape) : b.input("input", s.model.hidden, b.stream_layout()))
                                     : b.recv(boundary_in, s.model.hidden, b.stream_layout(), prev, int(2 * first));
  lowering::Value y = x;
  for (int64_t l = first; l < last; ++l) y = b.layer_forward(int(l), y, tape);
  if (last_stage && head) {
    const lowering::Value loss = b.output_loss_forward(y, tape);
    if (backward) b.backward(tape, loss, "");
  } else if (last_stage) {
    if (backward) b.backward(tape, y, b.gradient_seed(y));
  } else {
    b.send(y, next, int(2 * last));
    if (backward) {
      const lowering::Value dy = b.recv(y.base + ".grad", s.model.hidden, b.stream_layout(), next, int(2 * last + 1));
      b.backward(tape, y, dy.tensor);
    }
  }
  if (backward) {
    lowering::Value dx = x;
    dx.tensor = b.gradient(x);   // also names the input gradient for the comparison
    if (!first_stage && !dx.tensor.empty()) b.send(dx, prev, int(2 * first + 1));
    if (shard_grad_reduction) b.reduce_grads_over_token_shards();
  }
  return b.finish();
}

}  // namespace

int64_t rank_tokens(const Scenario& s) {
  const WorkloadSpec& w = s.workload;
  if (w.kind == WorkloadKind::inference) return w.batch * (w.prompt > 0 ? w.prompt : w.seq);
  return w.micro_batch * w.seq / std::max(1, s.plan.cp);   // a CP rank's share of every sequence
}

ProgramSet lower(const Scenario& scenario, const LowerOptions& options) {
  check_divisions(scenario, options.scope);
  // A whole step is composed from the same layer pieces by the step lowering (pipeline order, DP
  // buckets, optimizer); an inference request's step is its prefill (decode steps: see
  // lowering::lower_inference_step).
  if (options.scope == LowerScope::step)
    return scenario.workload.kind == WorkloadKind::training
               ? lowering::lower_training_step(scenario)
               : lowering::lower_inference_step(scenario, false, scenario.workload.prompt);
  const int64_t tokens = options.tokens > 0 ? options.tokens : rank_tokens(scenario);
  const PlanSpec& p = scenario.plan;
  ProgramSet set;
  set.tp = p.tp;
  set.pp = p.pp;
  set.dp = p.dp;
  for (int r = 0; r < p.world(); ++r) {
    const lowering::RankCoords c = lowering::rank_coords(p, r);
    set.ranks.push_back(options.scope == LowerScope::block || options.scope == LowerScope::layer
                            ? lower_layer(scenario, c, tokens, options.backward, options.token_shard_grad_reduction)
                            : lower_stack(scenario, c, tokens, options.backward, options.embedding_and_loss,
                                          options.token_shard_grad_reduction));
  }
  return set;
}

Scenario unsharded(const Scenario& scenario) {
  Scenario s = scenario;
  s.plan.tp = 1;
  s.plan.sp = false;
  s.plan.cp = 1;   // every sequence whole on one rank
  // Expert parallelism: one rank with every expert runs the EP group's tokens (its replicas'
  // micro-batches side by side), so each EP rank's tokens are a block of its rows.
  if (const int ep = s.plan.ep; ep > 1) {
    s.plan.ep = 1;
    s.plan.dp /= ep;
    s.workload.micro_batch *= ep;
    s.workload.batch *= ep;
  }
  return s;
}

// The proxy keeps the model's shape (heads per kv head, ffn / hidden, vocab / hidden, layers) and
// the plan, and shrinks by r = hidden / hidden': heads' = tp * heads/kv_heads query heads over
// kv_heads' = tp kv heads (the fewest every TP rank can hold), head_dim' <= 8, then ffn, vocab
// and seq divided by r and rounded up to multiples of tp, so every split stays exact.
Scenario proxy_scale(const Scenario& scenario) {
  Scenario s = scenario;
  ModelSpec& m = s.model;
  const int64_t tp = s.plan.tp;
  if (m.heads <= 0 || m.kv_heads <= 0 || m.hidden <= 0) return s;
  const int64_t group = std::max<int64_t>(1, m.heads / m.kv_heads);
  const int64_t kv = std::min<int64_t>(m.kv_heads, tp);
  const int64_t heads = kv * group;
  const int64_t head_dim = std::min<int64_t>(m.head_dim(), 8);
  const int64_t hidden = heads * head_dim;
  if (hidden >= m.hidden) return s;
  const double r = double(m.hidden) / double(hidden);
  auto shrink = [&](int64_t v, int64_t multiple) {
    const int64_t x = std::max<int64_t>(multiple, int64_t(double(v) / r + 0.5));
    return (x + multiple - 1) / multiple * multiple;
  };
  m.ffn = shrink(m.ffn, tp);
  if (m.moe.enabled()) m.moe.expert_ffn = shrink(m.moe.expert_ffn, tp);
  if (m.moe.shared_expert_ffn > 0) m.moe.shared_expert_ffn = shrink(m.moe.shared_expert_ffn, tp);
  if (m.vocab > 0) m.vocab = shrink(m.vocab, tp);
  m.heads = heads;
  m.kv_heads = kv;
  m.hidden = hidden;
  // Enough tokens for causal attention to matter; whole sequences, split evenly under SP.
  // Under CP: two chunks per rank of every sequence (2 cp), each rank's share split over SP (cp tp).
  const int64_t cp = std::max(1, s.plan.cp);
  int64_t seq_multiple = std::lcm<int64_t>(tp, 8);
  if (cp > 1) seq_multiple = std::lcm(seq_multiple, std::lcm<int64_t>(2 * cp, cp * tp));
  s.workload.seq = std::min<int64_t>(shrink(s.workload.seq, seq_multiple), 4 * seq_multiple);
  s.workload.micro_batch = std::min<int64_t>(s.workload.micro_batch, 2);
  s.workload.prompt = s.workload.prompt > 0 ? s.workload.seq : 0;
  m.max_seq = std::max(m.max_seq, s.workload.seq);
  return s;
}

}  // namespace tpsim
