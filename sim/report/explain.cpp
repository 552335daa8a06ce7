// `tpsim explain`: one layer's lowered Program, read back as a lesson. Everything printed comes
// from the Program's ops and tensors (rank 0's, every TP rank has the same shapes), timed by the
// cost model and the engine: nothing here re-derives the plan.
#include "tpsim/explain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

namespace {

// Why each TP mapping exists (Megatron-LM's mappings.py), keyed by the lowering's mapping names,
// with the collective the mapping runs in forward (none: identity or a local split) and its dim.
struct MappingStory {
  const char* name;
  bool forward_collective;
  CollectiveOp forward_op;
  int dim;
  const char* forward;
  const char* backward;
};
const MappingStory kStories[] = {
    {"gather_from_sp_replicated", true, CollectiveOp::all_gather, 0,
     "all-gather the sequence shards: the next op is replicated and needs every token",
     "split the gradient back by sequence (no communication)"},
    {"gather_from_sp", true, CollectiveOp::all_gather, 0,
     "all-gather the sequence shards: the column-parallel linear needs every token",
     "reduce-scatter: each GPU's shard gives a partial input gradient; sum them and keep this GPU's tokens"},
    {"reduce_scatter_to_sp", true, CollectiveOp::reduce_scatter, 0,
     "reduce-scatter: sum the row-parallel partial outputs and keep this GPU's tokens "
     "(half an all-reduce's traffic; sequence parallelism)",
     "all-gather the sequence shards of the gradient: the row-parallel linear needs every token"},
    {"scatter_to_sp", false, CollectiveOp::all_gather, 0, "split by sequence (no communication)",
     "all-gather the gradient's sequence shards"},
    {"copy_to_tp", false, CollectiveOp::all_reduce, 1, "identity: every GPU already holds the whole input (Megatron's f)",
     "all-reduce: each column shard produced only a partial input gradient, so the GPUs sum them"},
    {"reduce_from_tp", true, CollectiveOp::all_reduce, 1,
     "all-reduce: a row-parallel linear leaves each GPU a partial sum of the output (Megatron's g)",
     "identity: the output gradient is already on every GPU"},
    {"scatter_to_tp", false, CollectiveOp::all_gather, 1, "split by columns (no communication)",
     "all-gather the gradient's column shards"},
    {"gather_from_tp", true, CollectiveOp::all_gather, 1,
     "all-gather: the column-parallel output is split by columns and the next op needs all of it",
     "split the gradient by columns (no communication)"},
};

bool named_backward(const Op& op) { return op.name.find(".bwd") != std::string::npos; }

// The lowering emits the whole forward pass, then replays its tape: every op from the first
// backward-named one on belongs to the backward pass (weight-gradient reductions included).
size_t first_backward(const Program& p) {
  for (size_t i = 0; i < p.ops.size(); ++i)
    if (named_backward(p.ops[i])) return i;
  return p.ops.size();
}

// The mapping an op implements. A backward op names it ("<stem>.<mapping>.bwd_<step>"; one that
// names none, e.g. a weight-gradient reduction, is no mapping). A forward op "<stem>.<step>" is matched to its conjugate backward op "<stem>.<mapping>.bwd_..." when the
// mapping has one, else to the one mapping whose forward step is this collective on this dim.
const MappingStory* story_of(const Op& op, const Program& p, bool backward) {
  if (backward) {
    for (const auto& s : kStories)   // longest names first in the table, so prefixes cannot steal a match
      if (op.name.find(std::string(".") + s.name + ".") != std::string::npos) return &s;
    return nullptr;
  }
  const size_t dot = op.name.rfind('.');
  const std::string stem = dot == std::string::npos ? op.name : op.name.substr(0, dot);
  for (const auto& s : kStories) {
    if (!s.forward_collective || s.forward_op != op.collective.op || s.dim != op.collective.dim) continue;
    const std::string conjugate = stem + "." + s.name + ".bwd";
    for (const Op& other : p.ops)
      if (other.name.rfind(conjugate, 0) == 0) return &s;
  }
  for (const auto& s : kStories)
    if (s.forward_collective && s.forward_op == op.collective.op && s.dim == op.collective.dim) return &s;
  return nullptr;
}

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

  // One layer, forward and backward, on the TP group only: explain is about tensor parallelism.
  Scenario layer = s;
  layer.plan.pp = 1;
  layer.plan.dp = 1;
  LowerOptions options;
  options.scope = LowerScope::layer;
  options.backward = true;
  const ProgramSet programs = lower(layer, options);
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

  // Collectives timed on an idle topology (one time_collective per distinct size), kernels by the
  // cost model.
  std::map<std::tuple<int, int, int64_t>, CollectiveTiming> timed;
  std::set<std::string> written_backward;
  const size_t backward_from = first_backward(p);
  for (const Op& op : p.ops) {
    const bool bwd = static_cast<size_t>(op.id) >= backward_from;
    if (bwd)
      for (const auto& o : op.outputs) written_backward.insert(o);
    if (op.kind == OpKind::collective) {
      const CollectiveInfo& c = op.collective;
      const auto key = std::make_tuple(int(c.op), int(c.algorithm), c.bytes);
      if (!timed.count(key)) timed[key] = time_collective(s.topology, c.op, c.algorithm, c.group, double(c.bytes), {});
      const CollectiveTiming& t = timed[key];
      ExplainCollective e;
      e.op = op.name;
      e.backward = bwd;
      e.collective = c.op;
      e.algorithm = to_string(t.algorithm);
      e.ranks = static_cast<int>(c.group.size());
      e.bytes = c.bytes;
      e.seconds = t.seconds;
      if (const MappingStory* m = story_of(op, p, bwd)) {
        e.mapping = m->name;
        e.why = fmt::format("{}: forward {}; backward {}", m->name, m->forward, m->backward);
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
  r.simulated = simulate(s.topology, programs, {}).makespan;

  // Activations kept for backward: tensors the backward ops read that are neither weights nor
  // gradients (written by backward ops) nor the gradient seed.
  std::set<std::string> saved;
  for (const Op& op : p.ops) {
    if (static_cast<size_t>(op.id) < backward_from) continue;
    for (const auto& in : op.inputs) {
      auto it = p.tensors.find(in);
      if (it == p.tensors.end() || it->second.is_weight || written_backward.count(in)) continue;
      if (in.find(".grad") != std::string::npos) continue;
      saved.insert(in);
    }
  }
  for (const auto& name : saved) {
    const TensorDesc& d = p.tensors.at(name);
    r.activation_bytes += d.rows * d.cols * dtype_bytes(d.dtype);
  }
  // Tokens: the layer input's rows (a sequence shard of them under sequence parallelism).
  if (auto it = p.tensors.find("input"); it != p.tensors.end())
    r.tokens = it->second.rows * (s.plan.sp ? s.plan.tp : 1);
  return r;
}

std::string explain_text(const ExplainReport& r) {
  std::string out;
  out += fmt::format("One transformer layer of {} under plan {} (tensor parallel over {} GPU{}{}) on {},\n"
                     "{} tokens per micro-batch, forward and backward, as lowered for GPU 0.\n\n",
                     r.model, r.plan, r.tp, r.tp == 1 ? "" : "s", r.sp ? ", sequence parallel" : "", r.topology,
                     r.tokens);

  out += "Weights: how each is split ([in x out], Y = X W)\n";
  for (const auto& w : r.weights)
    out += fmt::format("  {:<24} [{} x {}] -> each GPU holds [{} x {}]: {}\n", w.name, w.rows, w.cols, w.local_rows,
                       w.local_cols, w.how);

  out += "\nCommunication: each TP mapping names its forward collective and its backward conjugate\n";
  if (r.collectives.empty()) out += "  none: nothing is split, nothing has to be combined\n";
  for (const char* pass : {"forward", "backward"}) {
    for (const auto& c : r.collectives) {
      if (c.backward != (std::string(pass) == "backward")) continue;
      out += fmt::format("  {:<8} {:<46} {} ({}, {} GPUs) {}  {}\n", pass, c.op, to_string(c.collective), c.algorithm,
                         c.ranks, format_bytes(double(c.bytes)), format_seconds(c.seconds));
      out += fmt::format("           why: {}\n", c.why);
    }
  }

  out += "\nPer layer\n";
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "", "compute", "communication", "collectives");
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "forward", format_seconds(r.forward_compute),
                     format_seconds(r.forward_communication), r.forward_collectives);
  out += fmt::format("  {:<10}{:>14}{:>16}{:>14}\n", "backward", format_seconds(r.backward_compute),
                     format_seconds(r.backward_communication), r.backward_collectives);
  out += fmt::format("  total, nothing overlapped      {}\n", format_seconds(r.serial_total));
  out += fmt::format("  simulated (engine, contention) {}\n", format_seconds(r.simulated));
  out += fmt::format("  activations kept for backward  {} per GPU\n", format_bytes(double(r.activation_bytes)));
  return out;
}

}  // namespace tpsim
