// `tpsim explain`: one layer's lowered Program, read back as a lesson. Everything comes from the
// Program's typed ops and tensors (rank 0's, every TP rank has the same shapes) and the TP mapping
// table; collectives are resolved and timed exactly as `tpsim run` resolves and times them (flow
// fidelity, the same instance), kernels by the cost model: nothing here re-derives the plan.
#include "tpsim/explain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/report.hpp"
#include "tpsim/tp_mappings.hpp"

namespace tpsim {

namespace {

std::string split_text(const TensorDesc& w) {
  if (w.split_dim < 0 || w.parts <= 1) return "replicated (every GPU holds all of it)";
  if (w.split_dim == 1)
    return fmt::format("column-parallel: output columns split over {} GPUs{}", w.parts,
                       w.interleave > 1 ? ", head by head across q, k and v" : "");
  return fmt::format("row-parallel: input rows split over {} GPUs", w.parts);
}

std::string compute_text(const Op& op) {
  if (op.kind == OpKind::gemm) {
    const GemmInfo& g = op.gemm;
    return fmt::format("gemm [{}x{}] @ [{}x{}]", g.m, g.k, g.k, g.n);
  }
  return op.kernel.fn;
}

}  // namespace

ExplainReport explain_layer(const Scenario& s) {
  ExplainReport r;
  r.scenario = s.name;
  r.topology = s.topology.name;
  r.model = s.model.name;
  r.plan = s.plan.name;
  r.tp = s.plan.tp;
  r.sp = s.plan.sp;

  // One layer, forward and backward, on the TP group (and the CP ring, and a mixture of experts'
  // EP group, which trade tokens inside the layer): explain is about the layer's parallelism.
  Scenario layer = s;
  layer.plan.pp = 1;
  layer.plan.dp = std::max(1, s.plan.ep);
  LowerOptions options;
  options.scope = LowerScope::layer;
  options.backward = true;
  options.token_shard_grad_reduction = false;   // run reduces weight gradients per step, in DP buckets
  ProgramSet programs = lower(layer, options);
  // Collectives resolved as `tpsim run` resolves them (one selector), then timed alone on the idle
  // topology at the fidelity run uses; kernels by the cost model.
  resolve_collectives(s.topology, programs);
  const Program& p = programs.ranks.at(0);

  // Weights in the order the layer first uses them.
  std::set<std::string> seen;
  for (const Op& op : p.ops)
    for (const auto& in : op.inputs) {
      auto it = p.tensors.find(in);
      if (it == p.tensors.end() || !it->second.is_weight || !seen.insert(it->second.global_name).second) continue;
      const TensorDesc& w = it->second;
      r.weights.push_back({w.global_name, w.global_rows, w.global_cols, w.rows, w.cols, w.split_dim, w.parts,
                           split_text(w)});
    }

  EngineOptions engine;
  engine.fidelity = Fidelity::flow;
  r.fidelity = "flow";
  std::map<std::string, CollectiveTiming> timed;   // by instance key and size
  for (const Op& op : p.ops) {
    const bool bwd = op.pass == Pass::backward;
    if (op.kind == OpKind::collective) {
      const CollectiveInfo& c = op.collective;
      const std::string key = instance_key(c.op, c.instance) + " " + std::to_string(c.bytes);
      // time_collective resolves through the same selector, so it times this very instance.
      if (!timed.count(key)) timed[key] = time_collective(s.topology, c.op, c.algorithm, c.group, double(c.bytes), engine);
      const CollectiveTiming& t = timed[key];
      ExplainCollective e;
      e.op = op.name;
      e.backward = bwd;
      e.collective = c.op;
      e.algorithm = to_string(c.instance.algorithm);
      e.instance = describe(c.instance);
      e.ranks = static_cast<int>(c.group.size());
      e.bytes = c.bytes;
      e.seconds = t.seconds;
      if (op.mapping != TpMappingId::none) {
        const TpMapping& m = tp_mapping(op.mapping);
        e.mapping = m.name;
        e.why = fmt::format("{}: forward {}; backward {}", m.name, m.why_forward, m.why_backward);
      } else if (c.axis == GroupAxis::ep) {
        e.why = "expert parallelism: sends each token to the GPU holding the expert it was routed to (and back)";
      } else if (c.axis == GroupAxis::cp) {
        e.why = "context parallelism: passes keys and values (backward: their gradients) one step round the CP ring";
      } else {
        e.why = "sums a gradient that each GPU computed only in part";
      }
      (bwd ? r.backward_collectives : r.forward_collectives) += 1;
      (bwd ? r.backward_communication : r.forward_communication) += t.seconds;
      r.collectives.push_back(e);
    } else if (op.kind == OpKind::gemm || op.kind == OpKind::kernel) {
      const double sec = op_cost(s.topology.gpu, op).seconds;
      r.compute.push_back({op.name, bwd, compute_text(op), sec});
      (bwd ? r.backward_compute : r.forward_compute) += sec;
    }
  }
  r.serial_total = r.forward_compute + r.backward_compute + r.forward_communication + r.backward_communication;
  r.simulated = simulate(s.topology, programs, engine).makespan;

  // Activations kept for backward: the memory model's figure (the one `tpsim run` and the planner
  // count), which assumes the same attention kernel the cost model times.
  r.activation_bytes = static_cast<int64_t>(activation_bytes_per_layer(s));
  // And what the lowered backward itself reads from the forward pass: tensors forward ops wrote,
  // and the layer input (read by forward, written by nobody, not a weight). It differs from the
  // model's figure by the dropout masks and norm inputs the lowering does not model, and it follows
  // the plan's actual mappings (a naive plan keeps more).
  std::set<std::string> forward_written, forward_read;
  for (const Op& op : p.ops)
    if (op.pass == Pass::forward) {
      forward_written.insert(op.outputs.begin(), op.outputs.end());
      forward_read.insert(op.inputs.begin(), op.inputs.end());
    }
  std::set<std::string> saved;
  for (const Op& op : p.ops) {
    if (op.pass != Pass::backward) continue;
    for (const auto& in : op.inputs) {
      const TensorDesc& d = p.tensors.at(in);
      if (d.is_weight) continue;
      if (forward_written.count(in) || forward_read.count(in)) saved.insert(in);
    }
  }
  for (const auto& name : saved) {
    const TensorDesc& d = p.tensors.at(name);
    r.program_activation_bytes += d.rows * d.cols * dtype_bytes(d.dtype);
  }
  // Tokens: the layer input's rows (a sequence shard of them under sequence parallelism).
  if (auto it = p.tensors.find("input"); it != p.tensors.end())
    r.tokens = it->second.rows * (s.plan.sp ? s.plan.tp : 1);
  return r;
}

}  // namespace tpsim
