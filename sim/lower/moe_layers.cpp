// The mixture-of-experts MLP block, forward and backward side by side: Megatron-Core's MoE layer
// with the all-to-all token dispatcher and experts split over TP like the dense MLP. Shapes per
// rank: T tokens (T/tp under sequence parallelism), h hidden, E experts (El = E/ep of them here),
// k chosen per token, C slots per expert and source rank, f the expert's ffn.
//
//   logits [T, E] = x W_router                 replicated router on this rank's own tokens
//   experts [T, k] = top-k(logits)
//   buf [E*C, h] = dispatch(x, experts)        expert-major, C rows per expert, past C dropped
//   all-to-all over EP                         block j (EP rank j's experts) to rank j: [ep][El][C]
//   all-gather over TP, once                   [tp][ep][El][C]: every TP rank's tokens
//   per local expert: its rows [tp*ep*C, h] -> fc1, act, fc2 split over TP as the dense MLP,
//                     left partial; one reduce-scatter over TP for all of them
//   all-to-all back, y [T, h] = sum_j g_j buf[slot(t, j)], g = the router's softmax at the chosen
//   (+ a shared expert every token passes through, sigmoid-gated in Qwen2-MoE)
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "lower/program_builder.hpp"
#include "tpsim/lower.hpp"

namespace tpsim::lowering {

bool is_expert_weight(const std::string& name) { return name.find(".moe.expert") != std::string::npos; }

}  // namespace tpsim::lowering

namespace tpsim {

// C = ceil(load * k * T / E), at most T (a token picks an expert once): load is the capacity
// factor, or for dropless routing the busiest expert's share (workload.expert_skew), to whose
// load every expert's buffer is padded.
int64_t expert_slots(const ModelSpec& model, const WorkloadSpec& workload, int64_t tokens) {
  const MoeSpec& moe = model.moe;
  const double load = moe.capacity_factor > 0 ? moe.capacity_factor : workload.expert_skew;
  const double mean = double(tokens) * double(moe.top_k) / double(moe.experts);
  return std::clamp<int64_t>(int64_t(std::ceil(load * mean - 1e-9)), 1, tokens);
}

int64_t busiest_expert_tokens(const Scenario& s) {
  if (!s.model.moe.enabled()) return 0;
  const PlanSpec& p = s.plan;
  const int64_t tokens = rank_tokens(s);
  const int tp = std::max(1, p.tp), ep = std::max(1, p.ep);
  const int64_t routed = p.sp && tp > 1 ? tokens / tp : tokens;   // each TP rank routes its sequence shard
  return int64_t(tp) * ep * expert_slots(s.model, s.workload, routed);
}

}  // namespace tpsim

namespace tpsim::lowering {

// Router (or a shared expert's gate, E = 1): x [T, h] (this rank's tokens) W [h, E] (replicated)
// -> logits [T, E]. Under SP each TP rank routes its own sequence shard, so W's gradient is partial
// over the group and all-reduced, as Megatron reduces its other sequence-parallel parameters.
Value ProgramBuilder::router_forward(const std::string& rname, const Value& x, int64_t experts, Tape& tape) {
  const int64_t h = scenario_.model.hidden;
  const std::string w = weight(rname, h, experts, -1);
  const Value logits = activation(mb(rname + ".out"), experts, x.layout);
  gemm(rname + ".fwd", x.tensor, w, logits.tensor, false, false);
  record(tape, [this, rname, x, logits, w, h, experts] {
    const std::string dl = take_grad(logits);
    if (dl.empty()) return;
    const TensorDesc& dd = desc(x.tensor);
    const std::string dx = grad_tensor(x, dd.rows, dd.cols, x.grad_partial);
    // dX [T, h] = dlogits [T, E] W^T
    gemm(rname + ".bwd_data", dl, w, dx, false, true);
    // dW [h, E] = X^T dlogits
    if (x.layout == Layout::seq && tp_ > 1) {
      const std::string partial = new_tensor(w + ".grad.partial", h, experts);
      gemm(rname + ".bwd_weight", x.tensor, dl, partial, true, false);
      reduce_weight_grad(w, partial);
    } else {
      auto [dw, accumulate] = weight_grad(w);
      gemm(rname + ".bwd_weight", x.tensor, dl, dw, true, false, accumulate).gemm.main_grad =
          scenario_.plan.grad_accumulation_fusion ? MainGrad::fused : MainGrad::separate;
    }
    add_grad(x.grad_key, dx);
  });
  return logits;
}

Value ProgramBuilder::moe_block_forward(int layer, const Value& x, Tape& tape) {
  const LayerScope in_layer(layer_, layer);
  const ModelSpec& m = scenario_.model;
  const MoeSpec& moe = m.moe;
  const std::string p = fmt::format("layer{}.moe.", layer);
  const Value n2 = norm_forward(fmt::format("layer{}.norm2", layer), x, tape);
  const Value xs = n2.layout == stream_layout() ? n2 : to_layout(n2, stream_layout(), tape);
  const int64_t tokens = desc(xs.tensor).rows, h = m.hidden, experts = moe.experts, k = moe.top_k;
  const int64_t slots = tpsim::expert_slots(m, scenario_.workload, tokens), local_experts = experts / ep_;
  const std::map<std::string, double> geometry{{"experts", double(experts)}, {"capacity", double(slots)}};

  const Value logits = router_forward(p + "router", xs, experts, tape);
  const Value chosen = activation(mb(p + "experts"), k, xs.layout);
  // logits [T, E] -> experts [T, k]: the k largest, in descending order (ties to the lower index)
  kernel(p + "route", "moe_route", {logits.tensor}, {chosen.tensor}, double(tokens) * double(experts),
         {{"top_k", double(k)}});

  Value back;   // the experts' outputs, returned to this rank's slots
  {
    const LocalScope local(local_, true);
    auto local_value = [&](const std::string& base, int64_t rows) {
      Value v;
      v.base = mb(base);
      v.tensor = new_tensor(v.base, rows, h);
      v.grad_key = v.tensor;
      return v;
    };
    // An all-to-all over the EP group: block j of the rows goes to EP rank j. Its conjugate is the
    // same all-to-all, carrying the gradient back.
    auto exchange = [&](const std::string& name, const Value& from) {
      if (ep_ == 1) return from;
      const Value to = local_value(name + ".out", desc(from.tensor).rows);
      axis_collective(name, CollectiveOp::all_to_all, from.tensor, to.tensor, GroupAxis::ep);
      record(tape, [this, name, from, to] {
        const std::string dto = take_grad(to);
        if (dto.empty()) return;
        const TensorDesc& d = desc(from.tensor);
        const std::string dfrom = grad_tensor(from, d.rows, d.cols, false);
        axis_collective(name + ".bwd", CollectiveOp::all_to_all, dto, dfrom, GroupAxis::ep);
        add_grad(from.grad_key, dfrom);
      });
      return to;
    };

    const Value buf = local_value(p + "dispatch.out", experts * slots);
    // x [T, h], experts [T, k] -> buf [E*C, h]: token t's j-th expert e at row e*C + (t's place
    // among e's tokens); choices past C are dropped, empty rows are zero
    kernel(p + "dispatch", "moe_dispatch", {xs.tensor, chosen.tensor}, {buf.tensor}, 0, geometry);
    record(tape, [this, p, xs, buf, chosen, geometry, k] {
      const std::string dbuf = take_grad(buf);
      if (dbuf.empty()) return;
      const TensorDesc& d = desc(xs.tensor);
      const std::string dx = grad_tensor(xs, d.rows, d.cols, xs.grad_partial);
      // dbuf [E*C, h], experts [T, k] -> dx [T, h] = sum_j dbuf[slot(t, j)]
      kernel(p + "dispatch.bwd", "moe_dispatch_backward", {dbuf, chosen.tensor}, {dx}, double(d.rows) * d.cols * k,
             geometry);
      add_grad(xs.grad_key, dx);
    });
    const Value received = exchange(p + "dispatch.all_to_all", buf);

    // Every TP rank's rows, gathered once for all local experts as Megatron gathers before its
    // grouped GEMM: [tp][ep][El][C] rows (its gradient comes back partial and is reduce-scattered).
    Value gathered = received;
    {
      const TokenScope rows(tokens_, tp_ * experts * slots);
      gathered.layout = stream_layout();
      gathered = to_layout(gathered, Layout::full, tape, /*for_column_linear=*/true);
    }
    // [tp * ep][El][C] source-major -> El buffers [tp*ep*C, h], one per local expert
    const std::map<std::string, double> blocks{{"groups", double(tp_ * ep_)}, {"local_experts", double(local_experts)}};
    std::vector<Value> inputs;
    std::vector<std::string> input_tensors;
    for (int64_t e = 0; e < local_experts; ++e) {
      const int64_t expert = coords_.ep_index * local_experts + e;
      inputs.push_back(local_value(fmt::format("{}expert{}.in", p, expert), tp_ * ep_ * slots));
      inputs.back().grad_partial = tp_ > 1;   // the experts' column-parallel linears return partial sums
      input_tensors.push_back(inputs.back().tensor);
    }
    kernel(p + "experts.split", "moe_split_experts", {gathered.tensor}, input_tensors, 0, blocks);
    record(tape, [this, p, gathered, inputs, blocks] {
      std::vector<std::string> grads;
      for (const Value& v : inputs) {
        grads.push_back(take_grad(v));
        if (grads.back().empty())
          throw std::logic_error("op " + p + "experts.split.bwd: an expert sent back no gradient");
      }
      const TensorDesc& d = desc(gathered.tensor);
      const std::string dgathered = grad_tensor(gathered, d.rows, d.cols, gathered.grad_partial);
      // El x [tp*ep*C, h] -> [tp * ep][El][C] rows
      kernel(p + "experts.split.bwd", "moe_join_experts", grads, {dgathered}, 0, blocks);
      add_grad(gathered.grad_key, dgathered);
    });

    // The experts, each on its rows from every source and TP rank (tp*ep*C tokens).
    std::vector<Value> outputs;
    std::vector<std::string> output_tensors;
    {
      const TokenScope rows(tokens_, tp_ * ep_ * slots);
      for (int64_t e = 0; e < local_experts; ++e) {
        // One expert's FFN on all TP ranks' rows of it, its output left a partial sum over TP.
        outputs.push_back(ffn_forward(fmt::format("{}expert{}", p, coords_.ep_index * local_experts + e), inputs[e],
                                      m.moe.expert_ffn, tape, /*reduce_row_output=*/false));
        output_tensors.push_back(outputs.back().tensor);
      }
    }
    Value joined = local_value(p + "experts.out", tp_ * experts * slots);
    joined.layout = tp_ > 1 ? Layout::partial : Layout::full;
    // El x [tp*ep*C, h] -> [tp * ep][El][C] rows, source-major again for the way back
    kernel(p + "experts.join", "moe_join_experts", output_tensors, {joined.tensor}, 0, blocks);
    record(tape, [this, p, joined, outputs, blocks] {
      const std::string dj = take_grad(joined);
      if (dj.empty()) return;
      std::vector<std::string> grads;
      for (const Value& v : outputs) {
        const TensorDesc& d = desc(v.tensor);
        grads.push_back(grad_tensor(v, d.rows, d.cols, false));
      }
      kernel(p + "experts.join.bwd", "moe_split_experts", {dj}, grads, 0, blocks);
      for (size_t e = 0; e < outputs.size(); ++e) add_grad(outputs[e].grad_key, grads[e]);
    });
    // The experts' partial sums reduced once, each TP rank keeping its own rows: [E*C, h].
    {
      const TokenScope rows(tokens_, tp_ * experts * slots);
      joined = to_layout(joined, stream_layout(), tape);
    }
    back = exchange(p + "combine.all_to_all", joined);
  }

  const Value y = activation(mb(p + "out"), h, xs.layout);
  const std::map<std::string, double> combine{{"experts", double(experts)}, {"capacity", double(slots)},
                                              {"normalize", moe.normalize_top_k ? 1.0 : 0.0}};
  // buf [E*C, h], logits [T, E], experts [T, k] -> y [T, h] = sum_j g_j buf[slot(t, j)],
  // g = softmax(logits[t]) at the chosen experts (renormalised over them when normalize)
  kernel(p + "combine", "moe_combine", {back.tensor, logits.tensor, chosen.tensor}, {y.tensor},
         2.0 * double(tokens) * double(k) * double(h), combine);
  record(tape, [this, p, back, logits, chosen, y, combine, tokens, k, h] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    const TensorDesc& db = desc(back.tensor);
    const std::string dback = grad_tensor(back, db.rows, db.cols, false);
    const TensorDesc& dl = desc(logits.tensor);
    const std::string dlogits = grad_tensor(logits, dl.rows, dl.cols, false);
    // dy [T, h] -> dbuf[slot(t, j)] = g_j dy[t], dlogits [T, E] through the softmax of the chosen
    kernel(p + "combine.bwd", "moe_combine_backward", {dy, back.tensor, logits.tensor, chosen.tensor}, {dback, dlogits},
           4.0 * double(tokens) * double(k) * double(h), combine);
    add_grad(back.grad_key, dback);
    add_grad(logits.grad_key, dlogits);
  });
  if (moe.shared_expert_ffn <= 0) return residual_forward(fmt::format("layer{}.mlp.residual", layer), x, y, tape);
  // The shared expert beside the routed ones: their outputs add up.
  const Value shared = shared_expert_forward(p + "shared_expert", xs, tape);
  const Value both = residual_forward(p + "routed_plus_shared", y, shared, tape);
  return residual_forward(fmt::format("layer{}.mlp.residual", layer), x, both, tape);
}

Value ProgramBuilder::shared_expert_forward(const std::string& sname, const Value& x, Tape& tape) {
  const ModelSpec& m = scenario_.model;
  const Value out = ffn_forward(sname, x, m.moe.shared_expert_ffn, tape);   // in x's layout again
  if (!m.moe.shared_expert_gate) return out;
  const Value g = router_forward(sname + ".sigmoid_gate", x, 1, tape);   // [T, 1]
  const Value y = activation(mb(sname + ".gated"), m.hidden, out.layout);
  const double elements = double(desc(out.tensor).rows) * double(desc(out.tensor).cols);
  // y [T, h], g [T, 1] -> sigmoid(g) y
  kernel(sname + ".scale", "sigmoid_scale", {out.tensor, g.tensor}, {y.tensor}, 4.0 * elements);
  record(tape, [this, sname, out, g, y] {
    const std::string dy = take_grad(y);
    if (dy.empty()) return;
    const TensorDesc& d = desc(out.tensor);
    const std::string dout = grad_tensor(out, d.rows, d.cols, false);
    const std::string dg = grad_tensor(g, d.rows, 1, false);
    // y, g, dy -> dout = sigmoid(g) dy, dg = sigmoid(g) (1 - sigmoid(g)) sum_j dy_j y_j
    kernel(sname + ".scale.bwd", "sigmoid_scale_backward", {out.tensor, g.tensor, dy}, {dout, dg},
           4.0 * double(d.rows) * double(d.cols));
    add_grad(out.grad_key, dout);
    add_grad(g.grad_key, dg);
  });
  return y;
}

}  // namespace tpsim::lowering
