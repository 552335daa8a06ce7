// The transformer's pieces as ops, forward and backward side by side. Shapes are per rank:
// T tokens (T/tp under sequence parallelism), h hidden, f ffn, H/K query/kv heads of width d,
// V vocab; "/tp" marks a dimension split over the TP group.
#include <fmt/core.h>

#include <stdexcept>

#include "lower/program_builder.hpp"
#include "tpsim/partition.hpp"

namespace tpsim::lowering {

// ---------------------------------------------------------------------------------------------
// Plan resolution: the split each weight gets (tp_split_dim, the rule the memory model counts
// with too), then the preset's and the plan's explicit mapping.
LinearPlan ProgramBuilder::linear_plan(const std::string& key) const {
  const PlanSpec& plan = scenario_.plan;
  LinearPlan lp;
  const int split = tp_split_dim(plan, key);
  lp.kind = split == 1 ? LinearKind::column : split == 0 ? LinearKind::row : LinearKind::replicated;
  if (!has_partition(plan, key) && plan.preset == PlanPreset::naive) lp.gather_output = true;
  if (auto it = plan.mappings.find(key); it != plan.mappings.end()) {
    if (it->second.gather_output) lp.gather_output = *it->second.gather_output;
    lp.input_is_parallel = it->second.input_is_parallel;
    lp.reduce_output = it->second.reduce_output;
  }
  lp.head_interleaved = key == "attn.qkv" && lp.kind == LinearKind::column && !lp.gather_output;
  return lp;
}

// Norm weights are [1, h]: any tp in their spec splits the features.
int ProgramBuilder::norm_split(const std::string& key) const { return tp_split_dim(scenario_.plan, key); }

// The embedding [V, h] is vocab-parallel (rows) unless a partition says otherwise.
int ProgramBuilder::embedding_split() const { return tp_split_dim(scenario_.plan, "embedding"); }

// ---------------------------------------------------------------------------------------------
// Weight gradients
std::pair<std::string, bool> ProgramBuilder::weight_grad(const std::string& w) {
  const std::string g = w + ".grad";
  if (program_.tensors.count(g)) return {g, true};
  const TensorDesc wd = desc(w);
  new_tensor(g, wd.rows, wd.cols);
  TensorDesc& gd = desc(g);
  gd.global_name = g;
  gd.global_rows = wd.global_rows;
  gd.global_cols = wd.global_cols;
  gd.split_dim = wd.split_dim;
  gd.parts = wd.parts;
  gd.part = wd.part;
  gd.interleave = wd.interleave;
  gd.interleave_cols = wd.interleave_cols;
  return {g, false};
}

// A replicated weight used on sequence shards gets a partial gradient on each rank: all-reduce it
// over the TP group (Megatron does this for its sequence-parallel parameters).
void ProgramBuilder::reduce_weight_grad(const std::string& w, const std::string& partial) {
  auto [g, accumulate] = weight_grad(w);
  const MappingScope reduction(mapping_, TpMappingId::weight_grad_reduce);
  if (!accumulate) {
    collective(w + ".grad.all_reduce", CollectiveOp::all_reduce, partial, g, 1);
    return;
  }
  const TensorDesc& d = desc(partial);
  const std::string reduced = new_tensor(w + ".grad.reduced", d.rows, d.cols);
  collective(w + ".grad.all_reduce", CollectiveOp::all_reduce, partial, reduced, 1);
  kernel(w + ".grad.accumulate", "add", {g, reduced}, {g}, double(d.rows) * d.cols);   // [1, h] += [1, h]
}

// ---------------------------------------------------------------------------------------------
// Norm: layernorm y = (x - mean) / sqrt(var + eps) * w + b, rmsnorm y = x / sqrt(mean(x^2) + eps) * w,
// per row over the (local) features. x [T or T/tp, h] (or [T, h/tp] when the weight is sharded).
Value ProgramBuilder::norm_forward(const std::string& nname, const Value& x, Tape& tape) {
  const std::string key = nname.substr(nname.find('.') == std::string::npos ? 0 : nname.rfind('.') + 1);
  const int64_t h = scenario_.model.hidden;
  const bool layernorm = scenario_.model.norm == Norm::layernorm;
  const int split = norm_split(key);
  Value in = split == 1 ? to_layout(x, Layout::feat, tape)
             : x.layout == Layout::full || x.layout == Layout::seq ? x
                                                                   : to_layout(x, stream_layout(), tape);
  const std::string w = weight(nname, 1, h, split);
  const std::string b = layernorm ? weight(nname + ".bias", 1, h, split) : "";
  const Value y = activation(mb(nname + ".out"), h, in.layout);
  const TensorDesc& d = desc(in.tensor);
  const std::map<std::string, double> attrs{{"eps", 1e-5}};
  const char* fn = layernorm ? "layernorm" : "rmsnorm";
  std::vector<std::string> inputs{in.tensor, w};
  if (layernorm) inputs.push_back(b);
  kernel(nname + ".fwd", fn, inputs, {y.tensor}, (layernorm ? 8.0 : 4.0) * d.rows * d.cols, attrs);

  record(tape, [this, nname, in, y, w, b, layernorm, split] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    const TensorDesc& dd = desc(in.tensor);
    const std::string dx = grad_tensor(in, dd.rows, dd.cols, in.grad_partial);
    // Sequence shards see only their rows: the weight gradient is a partial sum over the group.
    const bool partial = split < 0 && in.layout == Layout::seq && tp_ > 1;
    std::string dw, db;
    bool accumulate = false;
    if (partial) {
      dw = new_tensor(w + ".grad.partial", 1, dd.cols);
      if (layernorm) db = new_tensor(b + ".grad.partial", 1, dd.cols);
    } else {
      std::tie(dw, accumulate) = weight_grad(w);
      if (layernorm) db = weight_grad(b).first;
    }
    std::vector<std::string> outputs{dx, dw};
    if (layernorm) outputs.push_back(db);
    // x [r, c], w [1, c], dy [r, c] -> dx [r, c], dw [1, c] (+ db [1, c]); statistics recomputed
    kernel(nname + ".bwd", layernorm ? "layernorm_backward" : "rmsnorm_backward", {in.tensor, w, dy}, outputs,
           (layernorm ? 14.0 : 10.0) * dd.rows * dd.cols, {{"eps", 1e-5}, {"accumulate", accumulate ? 1.0 : 0.0}});
    if (partial) {
      reduce_weight_grad(w, dw);
      if (layernorm) reduce_weight_grad(b, db);
    }
    add_grad(in.grad_key, dx);
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Linear Y = X W under the plan. column: X [T, in] (replicated), W [in, out/tp] -> Y [T, out/tp];
// row: X [T, in/tp], W [in/tp, out] -> partial Y [T, out], reduced (all-reduce, or reduce-scatter
// to [T/tp, out] under SP) unless the plan says reduce_output: false; replicated: W [in, out].
Value ProgramBuilder::linear_forward(const std::string& lname, const std::string& key, const Value& x, int64_t in,
                                     int64_t out, Tape& tape, bool reduce_row_output) {
  const LinearPlan lp = linear_plan(key);
  const ModelSpec& model = scenario_.model;
  std::vector<int64_t> qkv_groups;
  if (lp.head_interleaved)
    qkv_groups = {model.heads * model.head_dim(), model.kv_heads * model.head_dim(), model.kv_heads * model.head_dim()};
  Value xin, y;
  std::string w;
  switch (lp.kind) {
    case LinearKind::column:
      xin = to_layout(x, Layout::full, tape, /*for_column_linear=*/true);
      w = weight(lname, in, out, 1, lp.head_interleaved ? 3 : 1, qkv_groups);
      y = activation(mb(lname + ".out"), out, Layout::feat);
      if (lp.head_interleaved && tp_ > 1) {
        desc(y.tensor).interleave = 3;
        desc(y.tensor).interleave_cols = qkv_groups;
      }
      break;
    case LinearKind::row:
      xin = lp.input_is_parallel.value_or(false) ? x : to_layout(x, Layout::feat, tape);
      w = weight(lname, in, out, 0);
      y = activation(mb(lname + ".out"), out, Layout::partial, mb(lname + ".out.partial"));
      break;
    case LinearKind::replicated:
      xin = to_layout(x, Layout::full, tape);
      w = weight(lname, in, out, -1);
      y = activation(mb(lname + ".out"), out, Layout::full);
      break;
  }
  gemm(lname + ".fwd", xin.tensor, w, y.tensor, false, false);

  record(tape, [this, lname, xin, y, w] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    const TensorDesc& dd = desc(xin.tensor);
    // dX [T, in] = dY [T, out] W^T   (partial over the group for a column-parallel W)
    const std::string dx = grad_tensor(xin, dd.rows, dd.cols, xin.grad_partial);
    gemm(lname + ".bwd_data", dy, w, dx, false, true);
    // dW [in, out] = X^T dY, added into the fp32 main gradient (by the GEMM or a kernel after it);
    // with plan.tp_grad_overlap emitted after dX's TP reduction is issued, so both run at once.
    auto weight_gradient = [this, lname, xin, dy, w] {
      auto [dw, accumulate] = weight_grad(w);
      gemm(lname + ".bwd_weight", xin.tensor, dy, dw, true, false, accumulate).gemm.main_grad =
          scenario_.plan.grad_accumulation_fusion ? MainGrad::fused : MainGrad::separate;
    };
    if (scenario_.plan.tp_grad_overlap) defer(weight_gradient);
    else weight_gradient();
    add_grad(xin.grad_key, dx);
  });

  if (lp.kind == LinearKind::column && lp.gather_output) return to_layout(y, Layout::full, tape);
  if (lp.kind == LinearKind::row && tp_ > 1) {
    if (!reduce_row_output) return y;
    if (lp.reduce_output.value_or(true)) return to_layout(y, stream_layout(), tape);
    // Obeyed as written: the partial sum is used as if it were the whole output.
    Value as_full = y;
    as_full.layout = Layout::full;
    set_global(as_full.tensor, as_full.base, Layout::full);
    return as_full;
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Causal attention over the local heads. qkv [T, (H+2K)d] laid out [q heads | k heads | v heads]
// (a TP shard takes H/tp q heads and K/tp kv heads: the strided qkv shard) -> out [T, H d];
// out_h = softmax(q_h k_g^T / sqrt(d) + causal mask) v_g, g = h / (H/K), per sequence of the batch.
ProgramBuilder::AttentionInput ProgramBuilder::attention_input(const std::string& aname, const Value& qkv_in,
                                                               Tape& tape) {
  const ModelSpec& model = scenario_.model;
  AttentionInput a;
  a.qkv = qkv_in.layout == Layout::feat ? qkv_in : to_layout(qkv_in, Layout::full, tape);
  a.local = a.qkv.layout == Layout::feat && tp_ > 1;
  if (a.local && desc(a.qkv.tensor).interleave_cols.empty())
    throw std::invalid_argument(fmt::format(
        "op {}: attention got a column shard of qkv that is not split by heads", aname + ".fwd"));
  a.heads = a.local ? model.heads / tp_ : model.heads;
  a.kv_heads = a.local ? model.kv_heads / tp_ : model.kv_heads;
  return a;
}

Value ProgramBuilder::attention_forward(const std::string& aname, const Value& qkv_in, Tape& tape) {
  if (cp_ > 1) return ring_attention_forward(aname, qkv_in, tape);
  const ModelSpec& model = scenario_.model;
  const auto [qkv, local, heads, kv_heads] = attention_input(aname, qkv_in, tape);
  const int64_t d = model.head_dim();
  int64_t seq = scenario_.workload.seq;
  if (seq <= 0 || tokens_ % seq != 0) seq = tokens_;
  const int64_t batch = tokens_ / seq;
  const Value out = activation(mb(aname + ".out"), model.heads * d, local ? Layout::feat : Layout::full);
  const std::map<std::string, double> attrs{{"heads", double(heads)}, {"kv_heads", double(kv_heads)},
                                            {"head_dim", double(d)}, {"seq", double(seq)}, {"batch", double(batch)}};
  const double flops = 2.0 * batch * seq * seq * heads * d;   // QK^T and PV, causal half of 4 b s^2 H d
  kernel(aname + ".fwd", "attention", {qkv.tensor}, {out.tensor}, flops, attrs);

  record(tape, [this, aname, qkv, out, attrs, flops] {
    const std::string dy = take_grad(out);
    if (dy.empty()) return;
    const TensorDesc& dd = desc(qkv.tensor);
    const std::string dqkv = grad_tensor(qkv, dd.rows, dd.cols, qkv.grad_partial);
    // qkv [T, (H+2K)d], dout [T, H d] -> dqkv [T, (H+2K)d]; probabilities recomputed (flash style)
    kernel(aname + ".bwd", "attention_backward", {qkv.tensor, dy}, {dqkv}, 2.5 * flops, attrs);
    add_grad(qkv.grad_key, dqkv);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// MLP activation, elementwise on [T, f/tp]: gelu y = gelu_tanh(a); swiglu y = a * silu(g).
Value ProgramBuilder::activation_forward(const std::string& aname, const Value& fc1, const Value* gate, Tape& tape) {
  const Value a = fc1.layout == Layout::partial ? to_layout(fc1, Layout::full, tape) : fc1;
  Value g;
  if (gate) g = to_layout(*gate, a.layout, tape);
  const TensorDesc& d = desc(a.tensor);
  // The width of this FFN (an expert's may differ from model.ffn).
  const Value y = activation(mb(aname + ".out"), a.layout == Layout::feat ? d.cols * tp_ : d.cols, a.layout);
  const double n = double(d.rows) * d.cols;
  if (gate)
    kernel(aname + ".fwd", "swiglu", {a.tensor, g.tensor}, {y.tensor}, 6 * n);
  else
    kernel(aname + ".fwd", "gelu", {a.tensor}, {y.tensor}, 10 * n);

  record(tape, [this, aname, a, g, y, n, has_gate = gate != nullptr] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    const TensorDesc& dd = desc(a.tensor);
    const std::string da = grad_tensor(a, dd.rows, dd.cols, a.grad_partial);
    if (has_gate) {
      const std::string dg = grad_tensor(g, dd.rows, dd.cols, g.grad_partial);
      // a, g, dy [r, c] -> da = dy silu(g), dg = dy a silu'(g)
      kernel(aname + ".bwd", "swiglu_backward", {a.tensor, g.tensor, dy}, {da, dg}, 10 * n);
      add_grad(a.grad_key, da);
      add_grad(g.grad_key, dg);
    } else {
      // a, dy [r, c] -> da = dy gelu'(a)
      kernel(aname + ".bwd", "gelu_backward", {a.tensor, dy}, {da}, 14 * n);
      add_grad(a.grad_key, da);
    }
  });
  return y;
}

// Residual y = x + branch, on the residual stream's layout ([T/tp, h] under SP).
Value ProgramBuilder::residual_forward(const std::string& rname, const Value& x, const Value& branch, Tape& tape) {
  const Value b = to_layout(branch, x.layout, tape);
  const Value y = activation(mb(rname + ".out"), scenario_.model.hidden, x.layout);
  const TensorDesc& d = desc(x.tensor);
  kernel(rname + ".fwd", "add", {x.tensor, b.tensor}, {y.tensor}, double(d.rows) * d.cols);
  record(tape, [this, x, b, y] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    add_grad(x.grad_key, dy);   // dx = dy, dbranch = dy
    add_grad(b.grad_key, dy);
  });
  return y;
}

// ---------------------------------------------------------------------------------------------
// Blocks and layers
Value ProgramBuilder::attention_block_forward(int layer, const Value& x, Tape& tape) {
  const LayerScope in_layer(layer_, layer);
  const ModelSpec& m = scenario_.model;
  const std::string p = fmt::format("layer{}.", layer);
  const Value n1 = norm_forward(p + "norm1", x, tape);
  const Value qkv = linear_forward(p + "attn.qkv", "attn.qkv", n1, m.hidden, (m.heads + 2 * m.kv_heads) * m.head_dim(), tape);
  const Value core = attention_forward(p + "attn.core", qkv, tape);
  const Value proj = linear_forward(p + "attn.proj", "attn.proj", core, m.heads * m.head_dim(), m.hidden, tape);
  return residual_forward(p + "attn.residual", x, proj, tape);
}

Value ProgramBuilder::mlp_block_forward(int layer, const Value& x, Tape& tape) {
  const LayerScope in_layer(layer_, layer);
  const ModelSpec& m = scenario_.model;
  const std::string p = fmt::format("layer{}.", layer);
  const Value n2 = norm_forward(p + "norm2", x, tape);
  const Value fc2 = ffn_forward(p + "mlp", n2, m.ffn, tape);
  return residual_forward(p + "mlp.residual", x, fc2, tape);
}

Value ProgramBuilder::ffn_forward(const std::string& fname, const Value& x, int64_t ffn, Tape& tape,
                                  bool reduce_row_output) {
  const ModelSpec& m = scenario_.model;
  const bool swiglu = m.activation == Activation::swiglu;
  Value in = x;
  // fc1 and gate read the same input: lay it out once, so its gradient is reduced once.
  if (swiglu && linear_plan("mlp.fc1").kind == LinearKind::column && linear_plan("mlp.gate").kind == LinearKind::column)
    in = to_layout(in, Layout::full, tape, /*for_column_linear=*/true);
  const Value fc1 = linear_forward(fname + ".fc1", "mlp.fc1", in, m.hidden, ffn, tape);
  Value act;
  if (swiglu) {
    const Value gate = linear_forward(fname + ".gate", "mlp.gate", in, m.hidden, ffn, tape);
    act = activation_forward(fname + ".act", fc1, &gate, tape);
  } else {
    act = activation_forward(fname + ".act", fc1, nullptr, tape);
  }
  return linear_forward(fname + ".fc2", "mlp.fc2", act, ffn, m.hidden, tape, reduce_row_output);
}

Value ProgramBuilder::layer_forward(int layer, const Value& x, Tape& tape) {
  const Value h = attention_block_forward(layer, x, tape);
  return scenario_.model.moe.enabled() ? moe_block_forward(layer, h, tape) : mlp_block_forward(layer, h, tape);
}

// ---------------------------------------------------------------------------------------------
// Embedding: tokens [T, 1], table [V/tp, h] -> [T, h]: row (id - vocab_start) of the local table,
// zero for ids another rank holds; the partial rows are summed over the group (vocab-parallel).
Value ProgramBuilder::embedding_forward(Tape& tape) {
  const ModelSpec& m = scenario_.model;
  const int split = embedding_split();
  const std::string ids = token_ids("tokens");
  const std::string w = weight("embedding", m.vocab, m.hidden, split);
  const Layout layout = tp_ == 1 ? Layout::full : split == 0 ? Layout::partial : split == 1 ? Layout::feat : Layout::full;
  const Value y = activation(mb("embedding.out"), m.hidden, layout, mb("embedding.out.partial"));
  const double vocab_start = layout == Layout::partial ? double(coords_.tp_index) * desc(w).rows : 0.0;
  kernel("embedding.fwd", "embedding", {ids, w}, {y.tensor}, 0, {{"vocab_start", vocab_start}});
  record(tape, [this, ids, w, y, vocab_start] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    auto [dw, accumulate] = weight_grad(w);
    // tokens [T, 1], dy [T, h] -> dtable [V/tp, h]: scatter-add of dy rows at the local ids
    kernel("embedding.bwd", "embedding_backward", {ids, dy}, {dw}, double(desc(dy).rows) * desc(dy).cols,
           {{"vocab_start", vocab_start}, {"accumulate", accumulate ? 1.0 : 0.0}});
  });
  return to_layout(y, stream_layout(), tape);
}

// Vocab-parallel cross-entropy on logits [T, V/tp] (Megatron's): the row max and the sum of
// exponentials and the target's logit are reduced over the group, then
// loss_t = log(sum_j exp(l_tj - max_t)) + max_t - l_t,target  -> loss [T, 1].
Value ProgramBuilder::cross_entropy_forward(const std::string& cname, const Value& logits, Tape& tape) {
  const Value l = logits.layout == Layout::feat ? logits : to_layout(logits, Layout::full, tape);
  const bool parallel = l.layout == Layout::feat && tp_ > 1;
  const std::string targets = token_ids("targets");
  const TensorDesc ld = desc(l.tensor);
  const double vocab_start = parallel ? double(coords_.tp_index) * ld.cols : 0.0;
  const double n = double(ld.rows) * ld.cols;

  // max over the vocab: the local maxima are all-gathered ([T, 1] -> [T, tp]) and maxed again.
  const Value max = activation(mb(cname + ".max"), 1, Layout::full);
  if (parallel) {
    const std::string local = new_tensor(mb(cname + ".max.local"), tokens_, 1);
    const std::string all = new_tensor(mb(cname + ".max.gathered"), tokens_, tp_);
    kernel(cname + ".max_local", "row_max", {l.tensor}, {local}, n);   // [T, V/tp] -> [T, 1]
    collective(cname + ".max.all_gather", CollectiveOp::all_gather, local, all, 1);
    kernel(cname + ".max", "row_max", {all}, {max.tensor}, double(tokens_) * tp_);   // [T, tp] -> [T, 1]
  } else {
    kernel(cname + ".max", "row_max", {l.tensor}, {max.tensor}, n);
  }
  // A [T, 1] statistic of the local logits, summed over the group when the vocab is split.
  auto reduced = [&](const std::string& what, const std::string& fn, std::vector<std::string> inputs, double flops) {
    const Value total = activation(mb(cname + "." + what), 1, Layout::full);
    if (!parallel) {
      kernel(cname + "." + what, fn, inputs, {total.tensor}, flops, {{"vocab_start", vocab_start}});
      return total;
    }
    const std::string local = new_tensor(mb(cname + "." + what + ".local"), tokens_, 1);
    kernel(cname + "." + what + "_local", fn, inputs, {local}, flops, {{"vocab_start", vocab_start}});
    collective(cname + "." + what + ".all_reduce", CollectiveOp::all_reduce, local, total.tensor, 1);
    return total;
  };
  const Value sumexp = reduced("sumexp", "sum_exp", {l.tensor, max.tensor}, 3 * n);           // sum_j exp(l_tj - max_t)
  const Value target = reduced("target_logit", "target_logit", {l.tensor, targets}, tokens_); // l_t,target (0 off-shard)
  const Value loss = activation(mb(cname + ".out"), 1, Layout::full);
  kernel(cname + ".fwd", "cross_entropy", {max.tensor, sumexp.tensor, target.tensor}, {loss.tensor}, 3.0 * tokens_);

  record(tape, [this, cname, l, max, sumexp, targets, vocab_start, n] {
    const TensorDesc& dd = desc(l.tensor);
    const std::string dl = grad_tensor(l, dd.rows, dd.cols, l.grad_partial);
    // logits [T, V/tp] -> dlogits = (softmax - onehot(target)) / T  (the loss is the mean over tokens;
    // under expert and context parallelism over the EP group's and CP ring's tokens: ep x cp x this rank's)
    kernel(cname + ".bwd", "cross_entropy_backward", {l.tensor, max.tensor, sumexp.tensor, targets}, {dl}, 4 * n,
           {{"vocab_start", vocab_start}, {"scale", 1.0 / double(tokens_ * ep_ * cp_)}});
    add_grad(l.grad_key, dl);
  });
  return loss;
}

Value ProgramBuilder::output_loss_forward(const Value& x, Tape& tape) {
  const ModelSpec& m = scenario_.model;
  const Value n = norm_forward("final_norm", x, tape);
  const Value logits = linear_forward("output", "output", n, m.hidden, m.vocab, tape);
  return cross_entropy_forward("loss", logits, tape);
}

}  // namespace tpsim::lowering
