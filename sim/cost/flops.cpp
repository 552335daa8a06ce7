// Model FLOPs, counted as Narayanan et al. 2021 count them (the numerator of TFLOP/s per GPU and MFU).
#include "tpsim/memory.hpp"

namespace tpsim {

double layer_forward_flops(const ModelSpec& m, int64_t tokens, int64_t seq) {
  const double h = double(m.hidden), hd = double(m.head_dim()), n = double(tokens);
  // Linears: 2 FLOPs per weight per token. GPT: qkv 3h^2 + proj h^2 + fc1, fc2 8h^2 = 12h^2 -> 24h^2.
  // A mixture of experts counts the experts a token is routed to (top_k) and the router.
  // and its shared expert (with its gate).
  const double mlp = m.moe.enabled() ? double(m.moe.top_k) * double(m.moe.expert_ffn) + double(m.moe.shared_expert_ffn)
                                     : double(m.ffn);
  const double weights = h * double(m.heads + 2 * m.kv_heads) * hd + double(m.heads) * hd * h +
                         double(m.activation == Activation::swiglu ? 3 : 2) * h * mlp +
                         (m.moe.enabled() ? h * double(m.moe.experts) + (m.moe.shared_expert_gate ? h : 0.0) : 0.0);
  // QK^T and AV over the whole sequence (no causal halving, as Narayanan counts): 2 * 2*s*h per token.
  const double attention = 4 * double(seq) * double(m.heads) * hd;
  return n * (2 * weights + attention);
}

double model_flops_per_step(const ModelSpec& m, int64_t global_batch, int64_t seq) {
  return model_flops_per_step(m, global_batch, seq, Recompute::full);
}

double model_flops_per_step(const ModelSpec& m, int64_t global_batch, int64_t seq, Recompute recompute) {
  const double tokens = double(global_batch) * double(seq);
  // Every layer: forward + backward (2x) [+ recomputed forward under full recomputation].
  const double passes = recompute == Recompute::full ? 4 : 3;
  const double layers = passes * double(m.layers) * layer_forward_flops(m, tokens, seq);
  // Logits [tokens, h] x [h, V]: forward + backward = 3 x 2*h*V per token (not recomputed).
  const double logits = 3 * 2 * tokens * double(m.hidden) * double(m.vocab);
  return layers + logits;
}

}  // namespace tpsim
