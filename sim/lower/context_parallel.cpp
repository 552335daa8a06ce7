// Context parallelism's attention: ring attention with Megatron's causal load balancing, forward
// and backward side by side. Every sequence of S tokens is cut into 2 cp chunks of c = S / 2cp and
// CP rank i holds chunks i and 2cp-1-i, so the causal work is even over the ring. Shapes per rank:
// T = B S / cp rows, H / K query / kv heads of width d (local heads under TP).
//
//   kv_0 [T, 2Kd] = this rank's keys and values; kv_s = kv_{s-1} shifted one step round the ring
//   (send_recv over the CP group, on the comm stream: shift s+1 runs while block s computes)
//   block s: this rank's queries against kv_s (rank i-s's tokens) -> out_s, lse_s
//   out = online-softmax merge of the blocks (flash attention's rescaling by exp(lse_s - lse))
//
// Backward: each block's dq adds up here; its dk, dv belong to rank i-s and travel home in one
// accumulator per owner, shifted round the same ring and added to at every rank it passes.
#include <fmt/core.h>

#include <stdexcept>

#include "lower/program_builder.hpp"

namespace tpsim::lowering {

namespace {

// Query-key pairs a causal mask allows between a query chunk and a key chunk of c tokens.
double chunk_pairs(int64_t query_chunk, int64_t key_chunk, int64_t c) {
  if (key_chunk < query_chunk) return double(c) * double(c);
  return key_chunk == query_chunk ? double(c) * double(c + 1) / 2 : 0.0;
}

// Allowed pairs per sequence between CP rank q's tokens and rank k's.
double block_pairs(int q, int k, int cp, int64_t seq) {
  const int64_t c = seq / (2 * cp);
  double pairs = 0;
  for (int64_t qc : {int64_t(q), int64_t(2 * cp - 1 - q)})
    for (int64_t kc : {int64_t(k), int64_t(2 * cp - 1 - k)}) pairs += chunk_pairs(qc, kc, c);
  return pairs;
}

}  // namespace

Value ProgramBuilder::ring_attention_forward(const std::string& aname, const Value& qkv_in, Tape& tape) {
  const ModelSpec& model = scenario_.model;
  const auto [qkv, local, heads, kv_heads] = attention_input(aname, qkv_in, tape);
  const int64_t d = model.head_dim(), seq = scenario_.workload.seq;
  const int64_t batch = tokens_ * cp_ / seq;
  const int me = coords_.cp_index;
  // Captured by value: the backward step runs them after this function returns.
  auto attrs = [=, this](int kv_rank) {
    return std::map<std::string, double>{{"heads", double(heads)}, {"kv_heads", double(kv_heads)},
                                         {"head_dim", double(d)},  {"batch", double(batch)},
                                         {"seq", double(seq)},     {"cp", double(cp_)},
                                         {"q_rank", double(me)},   {"kv_rank", double(kv_rank)}};
  };
  // QK^T and PV: 4 d FLOPs per allowed pair and head.
  auto flops = [=, this](int kv_rank) { return 4.0 * double(d) * double(heads) * double(batch) * block_pairs(me, kv_rank, cp_, seq); };
  auto owner = [=, this](int step) { return (me - step % cp_ + cp_) % cp_; };   // whose tokens block `step` sees
  const int64_t kv_cols = 2 * kv_heads * d;
  // A sum of the blocks' partial results: a reassociation over the sequence's keys (tolerance.cpp).
  const std::map<std::string, double> reassociates{{"reassociates", double(seq)}};

  std::vector<std::string> kv(static_cast<size_t>(cp_));
  kv[0] = new_tensor(mb(aname + ".kv"), tokens_, kv_cols);
  // qkv [T, (H+2K)d] -> kv [T, 2Kd]: the key and value columns
  kernel(aname + ".kv", "attention_kv", {qkv.tensor}, {kv[0]}, 0, attrs(me));
  for (int s = 1; s < cp_; ++s) {
    kv[size_t(s)] = new_tensor(mb(fmt::format("{}.kv_from{}", aname, owner(s))), tokens_, kv_cols);
    // kv [T, 2Kd] to the next rank of the ring, the previous rank's in
    axis_collective(fmt::format("{}.kv_shift{}", aname, s), CollectiveOp::send_recv, kv[size_t(s - 1)], kv[size_t(s)],
                    GroupAxis::cp);
  }
  const Value out = activation(mb(aname + ".out"), model.heads * d, local ? Layout::feat : Layout::full);
  std::string acc_out, acc_lse;
  for (int s = 0; s < cp_; ++s) {
    const bool last = s == cp_ - 1;
    const std::string o = new_tensor(mb(fmt::format("{}.block{}.out", aname, s)), tokens_, heads * d);
    const std::string l = new_tensor(mb(fmt::format("{}.block{}.lse", aname, s)), tokens_, heads);
    // qkv [T, (H+2K)d], kv [T, 2Kd] -> out [T, Hd] = softmax(q k^T / sqrt(d), causal by position) v, lse [T, H]
    kernel(fmt::format("{}.block{}", aname, s), "attention_block", {qkv.tensor, kv[size_t(s)]}, {o, l}, flops(owner(s)),
           attrs(owner(s)));
    if (s == 0) {
      acc_out = o, acc_lse = l;
      continue;
    }
    const std::string mo = last ? out.tensor : new_tensor(mb(fmt::format("{}.merge{}.out", aname, s)), tokens_, heads * d);
    const std::string ml = new_tensor(mb(fmt::format("{}.merge{}.lse", aname, s)), tokens_, heads);
    // (out, lse) of two key sets -> of their union: lse = log(e^lse_a + e^lse_b), out = sum e^(lse_x - lse) out_x
    std::map<std::string, double> merge = reassociates;
    merge["heads"] = double(heads);
    kernel(fmt::format("{}.merge{}", aname, s), "attention_merge", {acc_out, acc_lse, o, l}, {mo, ml},
           6.0 * double(tokens_) * double(heads * d), merge);
    acc_out = mo, acc_lse = ml;
  }
  const std::string lse = acc_lse;

  record(tape, [this, aname, qkv, out, lse, kv, attrs, flops, owner, kv_cols, heads, d, reassociates] {
    const std::string dy = take_grad(out);
    if (dy.empty()) return;
    // qkv, kv_s [T, 2Kd], out, lse, dout -> dq [T, Hd], dkv_s [T, 2Kd] (probabilities from the final lse)
    auto block_backward = [&](int s) {
      const std::string dq = new_tensor(mb(fmt::format("{}.block{}.dq", aname, s)), tokens_, heads * d);
      const std::string dkv = new_tensor(mb(fmt::format("{}.block{}.dkv", aname, s)), tokens_, kv_cols);
      kernel(fmt::format("{}.block{}.bwd", aname, s), "attention_block_backward", {qkv.tensor, kv[size_t(s)], out.tensor, lse, dy},
             {dq, dkv}, 2.5 * flops(owner(s)), attrs(owner(s)));
      return std::pair{dq, dkv};
    };
    // [T, c] + [T, c]: one more block's share of a sum over keys (or queries)
    auto add = [&](const std::string& name, const std::string& a, const std::string& b) {
      const TensorDesc& t = desc(a);
      const std::string sum = new_tensor(mb(name), t.rows, t.cols);
      kernel(name, "add", {a, b}, {sum}, double(t.rows) * double(t.cols), reassociates);
      return sum;
    };
    // The accumulator for rank me-1's keys starts here; after t shifts it holds owner me-1-t's,
    // to which this rank adds block t+1 (block 0, its own, when it is home).
    auto [dq, dkv_acc] = block_backward(1);
    for (int t = 1; t < cp_; ++t) {
      const std::string shifted = new_tensor(mb(fmt::format("{}.dkv_for{}", aname, owner(t + 1))), tokens_, kv_cols);
      axis_collective(fmt::format("{}.dkv_shift{}", aname, t), CollectiveOp::send_recv, dkv_acc, shifted, GroupAxis::cp);
      const auto [dq_s, dkv_s] = block_backward((t + 1) % cp_);
      dq = add(fmt::format("{}.dq_sum{}", aname, t), dq, dq_s);
      dkv_acc = add(fmt::format("{}.dkv_sum{}", aname, t), shifted, dkv_s);
    }
    const TensorDesc& dd = desc(qkv.tensor);
    const std::string dqkv = grad_tensor(qkv, dd.rows, dd.cols, qkv.grad_partial);
    // dq [T, Hd], dkv [T, 2Kd] -> dqkv [T, (H+2K)d]
    kernel(aname + ".bwd", "attention_kv_backward", {dq, dkv_acc}, {dqkv}, 0, attrs(coords_.cp_index));
    add_grad(qkv.grad_key, dqkv);
  });
  return out;
}

}  // namespace tpsim::lowering
