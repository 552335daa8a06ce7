// ProgramBuilder mechanics: tensors, op emission with dependencies and costs, layout changes
// through the TP mapping table, and gradient bookkeeping. The layers themselves are in layers.cpp.
#include "lower/program_builder.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "lower/pipeline_p2p.hpp"
#include "tpsim/tp_mappings.hpp"

namespace tpsim::lowering {

// ---------------------------------------------------------------------------------------------
// Mesh: mesh_order lists the axes innermost (fastest-varying rank) first.
static int axis_size(const PlanSpec& plan, const std::string& axis) {
  if (axis == "tp") return plan.tp;
  if (axis == "cp") return plan.cp;
  if (axis == "dp") return plan.dp;
  if (axis == "pp") return plan.pp;
  throw std::invalid_argument(fmt::format("plan.mesh_order: unknown axis '{}' (expected tp, cp, dp, pp)", axis));
}

// mesh_order with any axis it leaves out: cp right outside tp (Megatron's place), others outermost.
static std::vector<std::string> mesh_axes(const PlanSpec& plan) {
  std::vector<std::string> order = plan.mesh_order;
  if (std::find(order.begin(), order.end(), "cp") == order.end()) {
    auto tp = std::find(order.begin(), order.end(), "tp");
    order.insert(tp == order.end() ? order.begin() : tp + 1, "cp");
  }
  for (const char* a : {"tp", "dp", "pp"})
    if (std::find(order.begin(), order.end(), a) == order.end()) order.push_back(a);
  return order;
}

int rank_of(const PlanSpec& plan, int tp_index, int dp_index, int pp_index, int cp_index) {
  int rank = 0, stride = 1;
  for (const auto& axis : mesh_axes(plan)) {
    const int index = axis == "tp" ? tp_index : axis == "cp" ? cp_index : axis == "dp" ? dp_index : pp_index;
    rank += index * stride;
    stride *= axis_size(plan, axis);
  }
  return rank;
}

RankCoords rank_coords(const PlanSpec& plan, int rank) {
  if (rank < 0 || rank >= plan.world())
    throw std::invalid_argument(fmt::format("rank {} outside the mesh of {} ranks", rank, plan.world()));
  RankCoords c;
  c.rank = rank;
  int rest = rank;
  for (const auto& axis : mesh_axes(plan)) {
    const int size = axis_size(plan, axis);
    (axis == "tp" ? c.tp_index : axis == "cp" ? c.cp_index : axis == "dp" ? c.dp_index : c.pp_index) = rest % size;
    rest /= size;
  }
  for (int t = 0; t < plan.tp; ++t) c.tp_group.push_back(rank_of(plan, t, c.dp_index, c.pp_index, c.cp_index));
  for (int i = 0; i < plan.cp; ++i) c.cp_group.push_back(rank_of(plan, c.tp_index, c.dp_index, c.pp_index, i));
  const int ep = std::max(1, plan.ep);
  c.ep_index = c.dp_index % ep;
  const int block = c.dp_index - c.ep_index;
  for (int j = 0; j < ep; ++j) c.ep_group.push_back(rank_of(plan, c.tp_index, block + j, c.pp_index, c.cp_index));
  for (int d = c.ep_index; d < plan.dp; d += ep)
    c.expert_dp_group.push_back(rank_of(plan, c.tp_index, d, c.pp_index, c.cp_index));
  return c;
}

// ---------------------------------------------------------------------------------------------
ProgramBuilder::ProgramBuilder(const Scenario& scenario, RankCoords coords, int64_t tokens)
    : scenario_(scenario), precision_(precision_of(scenario)), coords_(std::move(coords)), tp_(scenario.plan.tp),
      ep_(std::max(1, scenario.plan.ep)), cp_(std::max(1, scenario.plan.cp)), tokens_(tokens) {
  program_.rank = coords_.rank;
  if (tokens_ <= 0) throw std::invalid_argument("lowering needs a positive token count");
  if (scenario_.plan.sp && tp_ > 1 && tokens_ % tp_ != 0)
    throw std::invalid_argument(fmt::format(
        "sequence parallelism splits {} tokens over tp={}: not divisible", tokens_, tp_));
}

Layout ProgramBuilder::stream_layout() const {
  return scenario_.plan.sp && tp_ > 1 ? Layout::seq : Layout::full;
}

void ProgramBuilder::set_micro_batch(int micro_batch) { micro_batch_ = micro_batch; }

std::string ProgramBuilder::mb(const std::string& base) const {
  return micro_batch_ > 0 ? fmt::format("mb{}.{}", micro_batch_, base) : base;
}

std::string ProgramBuilder::new_tensor(const std::string& wanted, int64_t rows, int64_t cols) {
  std::string n = wanted;
  while (program_.tensors.count(n)) n = fmt::format("{}.{}", wanted, ++name_count_[wanted]);
  TensorDesc d;
  d.name = n;
  d.rows = rows;
  d.cols = cols;
  d.dtype = scenario_.model.dtype;
  program_.tensors.emplace(n, d);
  return n;
}

// Records which part of global tensor `global` this tensor holds (layout over the TP group).
void ProgramBuilder::set_global(const std::string& tensor, const std::string& global, Layout layout) {
  TensorDesc& d = desc(tensor);
  d.global_name = global;
  d.global_rows = d.rows;
  d.global_cols = d.cols;
  d.split_dim = -1;
  d.parts = 1;
  d.part = 0;
  if (tp_ > 1 && (layout == Layout::seq || layout == Layout::feat)) {
    d.split_dim = layout == Layout::seq ? 0 : 1;
    d.parts = tp_;
    d.part = coords_.tp_index;
    (layout == Layout::seq ? d.global_rows : d.global_cols) *= tp_;
  }
  d.row_parts = 1;
  d.row_part = 0;
  d.cp_parts = 1;
  d.cp_part = 0;
  d.cp_seq = 0;
  if (cp_ > 1) {   // this rank's chunks of each sequence
    d.cp_parts = cp_;
    d.cp_part = coords_.cp_index;
    d.cp_seq = scenario_.workload.seq;
    d.global_rows *= cp_;
  }
  if (ep_ > 1) {   // this rank's tokens are its block of the EP group's batch
    d.row_parts = ep_;
    d.row_part = coords_.ep_index;
    d.global_rows *= ep_;
  }
  if (local_) d.global_name.clear();
}

Value ProgramBuilder::activation(const std::string& base, int64_t cols, Layout layout, const std::string& tensor_name) {
  if (tp_ == 1) layout = Layout::full;   // nothing is split, no sum is partial
  const int64_t local_cols = layout == Layout::feat ? cols / tp_ : cols;
  Value v;
  v.base = base;
  v.layout = layout;
  v.tensor = new_tensor(tensor_name.empty() || tp_ == 1 ? base : tensor_name, rows_of(layout), local_cols);
  v.grad_key = v.tensor;
  if (layout != Layout::partial) set_global(v.tensor, base, layout);
  return v;
}

Value ProgramBuilder::input(const std::string& base, int64_t cols, Layout layout) {
  return activation(mb(base), cols, layout);
}

std::string ProgramBuilder::token_ids(const std::string& base) {
  const std::string n = mb(base);
  if (program_.tensors.count(n)) return n;
  new_tensor(n, tokens_, 1);
  set_global(n, n, Layout::full);
  desc(n).index_range = scenario_.model.vocab;
  return n;
}

std::string ProgramBuilder::weight(const std::string& wname, int64_t rows, int64_t cols, int split_dim,
                                   int interleave, std::vector<int64_t> interleave_cols) {
  if (program_.tensors.count(wname)) return wname;
  const int parts = tp_ > 1 && split_dim >= 0 ? tp_ : 1;
  const int64_t split = split_dim == 0 ? rows : cols;
  if (parts > 1 && split % parts != 0)
    throw std::invalid_argument(fmt::format("weight {} [{}, {}]: dim {} ({}) not divisible by tp={}", wname,
                                            rows, cols, split_dim, split, parts));
  for (int64_t g : interleave_cols)
    if (parts > 1 && g % parts != 0)
      throw std::invalid_argument(fmt::format("weight {}: column group of {} not divisible by tp={}", wname, g, parts));
  new_tensor(wname, split_dim == 0 ? rows / parts : rows, split_dim == 1 ? cols / parts : cols);
  TensorDesc& d = desc(wname);
  d.is_weight = true;
  d.global_name = wname;
  d.global_rows = rows;
  d.global_cols = cols;
  d.split_dim = parts > 1 ? split_dim : -1;
  d.parts = parts;
  d.part = parts > 1 ? coords_.tp_index : 0;
  if (parts > 1 && split_dim == 1) {
    d.interleave = interleave;
    d.interleave_cols = std::move(interleave_cols);
  }
  return wname;
}

// ---------------------------------------------------------------------------------------------
// Ops
void ProgramBuilder::record(Tape& tape, std::function<void()> step) {
  tape.steps.push_back([this, layer = layer_, mapping = mapping_, tokens = tokens_, local = local_, step = std::move(step)] {
    const LayerScope in_layer(layer_, layer);
    const MappingScope in_mapping(mapping_, mapping);
    const TokenScope in_tokens(tokens_, tokens);
    const LocalScope in_local(local_, local);
    step();
  });
}

void ProgramBuilder::defer(std::function<void()> work) {
  deferred_.push_back([this, layer = layer_, mapping = mapping_, tokens = tokens_, local = local_, work = std::move(work)] {
    const LayerScope in_layer(layer_, layer);
    const MappingScope in_mapping(mapping_, mapping);
    const TokenScope in_tokens(tokens_, tokens);
    const LocalScope in_local(local_, local);
    work();
  });
}

int ProgramBuilder::element_bytes(const std::string& tensor) const {
  return dtype_bytes(program_.tensors.at(tensor).is_weight ? precision_.weights : precision_.activations);
}

Op& ProgramBuilder::emit(Op op, DType dtype) {
  op.id = static_cast<int>(program_.ops.size());
  op.micro_batch = micro_batch_;
  op.pass = pass_;
  op.layer = layer_;
  op.stage = coords_.pp_index;
  op.mapping = mapping_;
  op.dtype = dtype;
  std::vector<int> deps;
  auto depend_on = [&](const std::string& t) {
    if (!program_.tensors.count(t)) throw std::logic_error(fmt::format("op {}: unknown tensor {}", op.name, t));
    auto it = last_writer_.find(t);
    if (it != last_writer_.end()) deps.push_back(it->second);
  };
  for (const auto& t : op.inputs) depend_on(t);
  for (const auto& t : op.outputs) depend_on(t);   // accumulation / write-after-write order
  std::sort(deps.begin(), deps.end());
  deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
  op.deps = std::move(deps);
  for (const auto& t : op.outputs) last_writer_[t] = op.id;
  program_.ops.push_back(std::move(op));
  return program_.ops.back();
}

Op& ProgramBuilder::gemm(const std::string& opname, const std::string& a, const std::string& b, const std::string& out,
                         bool trans_a, bool trans_b, bool accumulate) {
  const TensorDesc &da = desc(a), &db = desc(b), &dout = desc(out);
  const int64_t m = trans_a ? da.cols : da.rows, k = trans_a ? da.rows : da.cols;
  const int64_t kb = trans_b ? db.cols : db.rows, n = trans_b ? db.rows : db.cols;
  if (k != kb || dout.rows != m || dout.cols != n)
    throw std::invalid_argument(fmt::format(
        "op {}: shapes do not fit: {}{} [{}, {}] x {}{} [{}, {}] -> {} [{}, {}]", opname, a, trans_a ? "^T" : "", m, k, b,
        trans_b ? "^T" : "", kb, n, out, dout.rows, dout.cols));
  Op op;
  op.kind = OpKind::gemm;
  op.name = opname;
  op.inputs = {a, b};
  op.outputs = {out};
  op.gemm = {m, n, k, trans_a, trans_b, accumulate};
  op.gemm.reordered_k = local_ && trans_a;   // an expert's weight gradient: tokens in the all-to-all's order
  op.gemm.a_bytes = element_bytes(a), op.gemm.b_bytes = element_bytes(b), op.gemm.c_bytes = element_bytes(out);
  op.flops = 2.0 * m * n * k;
  op.hbm_bytes = double(m * k) * op.gemm.a_bytes + double(k * n) * op.gemm.b_bytes +
                 double(m * n) * (accumulate ? 2 : 1) * op.gemm.c_bytes;
  const bool with_weight = da.is_weight || db.is_weight || dout.is_weight;
  return emit(std::move(op), with_weight ? gemm_compute_dtype(precision_.weights, precision_.activations)
                                         : precision_.activations);
}

Op& ProgramBuilder::kernel(const std::string& opname, const std::string& fn, std::vector<std::string> inputs,
                           std::vector<std::string> outputs, double flops, std::map<std::string, double> attrs) {
  Op op;
  op.kind = OpKind::kernel;
  op.name = opname;
  op.kernel.fn = fn;
  op.kernel.attrs = std::move(attrs);
  double bytes = 0;
  for (const auto& t : inputs) bytes += double(desc(t).rows) * desc(t).cols * element_bytes(t);
  for (const auto& t : outputs) bytes += double(desc(t).rows) * desc(t).cols * element_bytes(t);
  op.inputs = std::move(inputs);
  op.outputs = std::move(outputs);
  op.flops = flops;
  op.hbm_bytes = bytes;
  return emit(std::move(op), precision_.activations);
}

Op& ProgramBuilder::collective(const std::string& opname, CollectiveOp cop, const std::string& in,
                               const std::string& out, int dim) {
  Op op;
  op.kind = OpKind::collective;
  op.name = opname;
  op.stream = Stream::tp_comm;
  op.inputs = {in};
  op.outputs = {out};
  op.collective.op = cop;
  op.collective.group = coords_.tp_group;
  op.collective.dim = dim;
  const TensorDesc& sized = desc(cop == CollectiveOp::all_gather ? out : in);   // nccl-tests' "size"
  op.collective.bytes = sized.rows * sized.cols * dtype_bytes(precision_.communication);
  // plan.tp_allreduce swaps NCCL for an inference engine's custom all-reduce on the TP all-reduces
  // that fit its buffer (plan.tp_allreduce_max); larger ones stay NCCL's.
  const PlanSpec& plan = scenario_.plan;
  const bool custom = cop == CollectiveOp::all_reduce && plan.tp_allreduce != "nccl" &&
                      double(op.collective.bytes) <= plan.tp_allreduce_max;
  op.collective.algorithm = parse_algorithm(custom ? plan.tp_allreduce : plan.collective_algorithm);
  op.hbm_bytes = 2.0 * op.collective.bytes;
  return emit(std::move(op), precision_.communication);
}

Op& ProgramBuilder::axis_collective(const std::string& opname, CollectiveOp cop, const std::string& in,
                                    const std::string& out, GroupAxis axis) {
  Op& op = collective(opname, cop, in, out, 0);
  op.collective.group = coords_.group(axis);
  op.collective.axis = axis;
  op.collective.algorithm = parse_algorithm(scenario_.plan.collective_algorithm);
  return op;
}

// ---------------------------------------------------------------------------------------------
// Layout changes. Each goes through one row of the mapping table; the backward conjugate is
// recorded on the tape.
static std::string op_stem(const std::string& base) {
  const std::string suffix = ".out";
  return base.size() > suffix.size() && base.ends_with(suffix) ? base.substr(0, base.size() - suffix.size()) : base;
}

Value ProgramBuilder::to_layout(const Value& v, Layout target, Tape& tape, bool for_column_linear) {
  if (tp_ == 1) return v;
  if (v.layout == target && !(for_column_linear && target == Layout::full && !v.grad_partial)) return v;
  if (target == Layout::partial) throw std::logic_error("cannot re-lay a value out as a partial sum");

  // Two-step changes go through the replicated layout.
  const bool direct = (v.layout == Layout::partial && (target == Layout::full || target == Layout::seq)) ||
                      (v.layout == Layout::full) || (target == Layout::full);
  if (!direct) return to_layout(to_layout(v, Layout::full, tape), target, tape, for_column_linear);
  if (v.layout == Layout::feat && target == Layout::full && for_column_linear)
    return to_layout(to_layout(v, Layout::full, tape), Layout::full, tape, true);
  if (v.layout == Layout::partial && target == Layout::full && for_column_linear)
    return to_layout(to_layout(v, Layout::full, tape), Layout::full, tape, true);

  TpMappingId id = TpMappingId::none;
  if (v.layout == Layout::full && target == Layout::full) id = TpMappingId::copy_to_tp;
  else if (v.layout == Layout::partial && target == Layout::full) id = TpMappingId::reduce_from_tp;
  else if (v.layout == Layout::partial && target == Layout::seq) id = TpMappingId::reduce_scatter_to_sp;
  else if (v.layout == Layout::full && target == Layout::feat) id = TpMappingId::scatter_to_tp;
  else if (v.layout == Layout::full && target == Layout::seq) id = TpMappingId::scatter_to_sp;
  else if (v.layout == Layout::feat && target == Layout::full) id = TpMappingId::gather_from_tp;
  else if (v.layout == Layout::seq && target == Layout::full)
    id = for_column_linear ? TpMappingId::gather_from_sp : TpMappingId::gather_from_sp_replicated;
  if (id == TpMappingId::none) throw std::logic_error("no TP mapping for this layout change");
  const TpMapping* m = &tp_mapping(id);
  const MappingScope forward_scope(mapping_, id);

  const TensorDesc& in = desc(v.tensor);
  const std::string stem = op_stem(v.base);
  Value out;
  out.base = v.base;
  out.layout = target;
  out.grad_partial = id == TpMappingId::copy_to_tp || id == TpMappingId::gather_from_sp;
  const int64_t cols = target == Layout::feat ? in.cols / tp_ : v.layout == Layout::feat ? in.cols * tp_ : in.cols;
  const int64_t rows = rows_of(target);
  if (m->forward == MapStep::identity) {
    out.tensor = v.tensor;   // Megatron's copy: same tensor, a gradient key of its own
  } else {
    // A reduced partial sum is the tensor itself: it takes the plain name.
    out.tensor = new_tensor(id == TpMappingId::reduce_from_tp ? v.base : fmt::format("{}.{}", v.base, m->name), rows, cols);
    set_global(out.tensor, v.base, target);
    const std::string opname = fmt::format("{}.{}", stem, to_string(m->forward));
    if (m->forward == MapStep::split)
      kernel(opname, "slice", {v.tensor}, {out.tensor}, 0,
             {{"dim", m->dim}, {"parts", tp_}, {"part", coords_.tp_index}});
    else
      collective(opname, collective_of(m->forward), v.tensor, out.tensor, m->dim);
  }
  out.grad_key = fmt::format("{}@{}", out.tensor, m->name);

  // Backward conjugate: the gradient of `out` becomes a contribution to the gradient of `v`.
  record(tape, [this, v, out, m, stem] {
    const std::string dy = take_grad(out);
    if (dy.empty()) return;
    if (m->backward == MapStep::identity) {
      add_grad(v.grad_key, dy);
      return;
    }
    const TensorDesc& din = desc(v.tensor);
    const std::string dx = grad_tensor(v, din.rows, din.cols, v.grad_partial);
    const std::string opname = fmt::format("{}.{}.bwd_{}", stem, m->name, to_string(m->backward));
    if (m->backward == MapStep::split)
      kernel(opname, "slice", {dy}, {dx}, 0, {{"dim", m->dim}, {"parts", tp_}, {"part", coords_.tp_index}});
    else
      collective(opname, collective_of(m->backward), dy, dx, m->dim);
    add_grad(v.grad_key, dx);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Gradients
std::string ProgramBuilder::grad_tensor(const Value& v, int64_t rows, int64_t cols, bool partial) {
  return new_tensor(v.base + (partial ? ".grad.partial" : ".grad"), rows, cols);
}

void ProgramBuilder::add_grad(const std::string& key, const std::string& tensor) {
  grads_[key].push_back(tensor);
}

// The total gradient of `v`: contributions summed in arrival order. Only a complete gradient that
// is not a partial sum gets a global name ("<base>.grad", laid out like v; a partial value's
// gradient is replicated).
std::string ProgramBuilder::take_grad(const Value& v) {
  auto it = grads_.find(v.grad_key);
  if (it == grads_.end() || it->second.empty()) return "";
  std::vector<std::string> parts = std::move(it->second);
  grads_.erase(it);
  std::string total = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const TensorDesc& d = desc(total);
    const std::string sum = new_tensor(v.base + ".grad.sum", d.rows, d.cols);
    // [r, c] + [r, c] -> [r, c]
    kernel(fmt::format("{}.grad_sum", op_stem(v.base)), "add", {total, parts[i]}, {sum}, double(d.rows) * d.cols);
    total = sum;
  }
  if (!v.grad_partial) {
    const Layout grad_layout = v.layout == Layout::partial ? Layout::full : v.layout;
    set_global(total, v.base + ".grad", grad_layout);
    const TensorDesc& value = desc(v.tensor);
    TensorDesc& g = desc(total);
    g.interleave = value.interleave;
    g.interleave_cols = value.interleave_cols;
  }
  return total;
}

void ProgramBuilder::reduce_grads_over_token_shards() {
  if (ep_ == 1 && cp_ == 1) return;
  std::vector<std::string> grads;
  for (const auto& [name, d] : program_.tensors)
    if (d.is_weight && program_.tensors.count(name + ".grad")) grads.push_back(name + ".grad");
  const Pass before = pass_;
  pass_ = Pass::backward;
  for (std::string g : grads) {
    const bool expert = is_expert_weight(g);
    for (const GroupAxis axis : {GroupAxis::ep, GroupAxis::cp}) {
      if ((axis == GroupAxis::ep ? ep_ : cp_) == 1 || (axis == GroupAxis::ep && expert)) continue;
      const char* tag = axis == GroupAxis::ep ? "ep" : "cp";
      TensorDesc summed = desc(g);
      summed.name = new_tensor(fmt::format("{}.{}_sum", g, tag), summed.rows, summed.cols);
      desc(summed.name) = summed;
      desc(g).global_name.clear();   // this rank's tokens only: compared once summed
      // [in, out] over this rank's tokens -> over the group's
      axis_collective(fmt::format("{}.{}_all_reduce", g, tag), CollectiveOp::all_reduce, g, summed.name, axis);
      g = summed.name;
    }
  }
  pass_ = before;
}

std::string ProgramBuilder::gradient_seed(const Value& out) {
  const TensorDesc& d = desc(out.tensor);
  const std::string seed = new_tensor(out.base + ".grad", d.rows, d.cols);
  set_global(seed, out.base + ".grad", out.layout == Layout::partial ? Layout::full : out.layout);
  return seed;
}

void ProgramBuilder::backward(Tape& tape, const Value& out, const std::string& dy) {
  const Pass before = pass_;
  pass_ = Pass::backward;
  if (!dy.empty()) add_grad(out.grad_key, dy);
  std::vector<std::function<void()>> after_next;   // deferred by the step before this one
  for (auto it = tape.steps.rbegin(); it != tape.steps.rend(); ++it) {
    (*it)();
    for (auto& work : after_next) work();
    after_next = std::exchange(deferred_, {});
  }
  for (auto& work : after_next) work();
  tape.steps.clear();
  pass_ = before;
}

// ---------------------------------------------------------------------------------------------
// Point to point (pipeline stages). Under Megatron's scatter/gather (pipeline_p2p.hpp) a replicated
// [T, h] tensor goes as this rank's [T, h/tp] column slice and is all-gathered on arrival.
bool ProgramBuilder::scattered(Layout layout) const { return p2p_scattered(scenario_.plan) && layout == Layout::full; }

void ProgramBuilder::send(const Value& v, int peer, int tag) {
  std::string sent = v.tensor;
  if (scattered(v.layout)) {
    const TensorDesc& d = desc(v.tensor);
    sent = new_tensor(v.tensor + ".slice", d.rows, d.cols / tp_);
    // [T, h] -> [T, h/tp], this rank's columns
    kernel(fmt::format("{}.send_slice", op_stem(v.base)), "slice", {v.tensor}, {sent}, 0,
           {{"dim", 1}, {"parts", tp_}, {"part", coords_.tp_index}});
  }
  Op op;
  op.kind = OpKind::send;
  op.name = fmt::format("{}.send", op_stem(v.base));
  op.stream = Stream::pp_comm;
  op.inputs = {sent};
  op.p2p.peer = peer;
  op.p2p.tag = tag;
  op.p2p.bytes = desc(sent).rows * desc(sent).cols * dtype_bytes(precision_.communication);
  emit(std::move(op), precision_.communication);
}

Value ProgramBuilder::recv(const std::string& base, int64_t cols, Layout layout, int peer, int tag) {
  Value v = activation(mb(base), cols, layout, mb(base) + ".recv");
  const std::string arrives = scattered(v.layout) ? new_tensor(v.tensor + ".slice", desc(v.tensor).rows, cols / tp_) : v.tensor;
  Op op;
  op.kind = OpKind::recv;
  op.name = fmt::format("{}.recv", op_stem(v.base));
  op.stream = Stream::pp_comm;
  op.outputs = {arrives};
  op.p2p.peer = peer;
  op.p2p.tag = tag;
  op.p2p.bytes = desc(arrives).rows * desc(arrives).cols * dtype_bytes(precision_.communication);
  emit(std::move(op), precision_.communication);
  // [T, h/tp] from each rank -> [T, h] on every rank
  if (arrives != v.tensor) collective(fmt::format("{}.recv_gather", op_stem(v.base)), CollectiveOp::all_gather, arrives, v.tensor, 1);
  return v;
}

Program ProgramBuilder::finish() { return std::move(program_); }

}  // namespace tpsim::lowering
