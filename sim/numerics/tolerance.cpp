#include "numerics/tolerance.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <tuple>

namespace tpsim::numerics {

namespace {

constexpr double kU32 = 0x1.0p-24;   // fp32 unit roundoff
constexpr double kU16 = 0x1.0p-8;    // bf16 unit roundoff

// Length of the sum an op computes for each output element (what a later reduction over ranks
// reassociates).
int64_t reduction_length(const Op& op, const Program& p) {
  if (op.kind == OpKind::gemm) return op.gemm.k;
  if (op.kind != OpKind::kernel || op.inputs.empty()) return 0;
  const TensorDesc& in = p.tensors.at(op.inputs[0]);
  const std::string& fn = op.kernel.fn;
  if (fn == "layernorm_backward" || fn == "rmsnorm_backward" || fn == "embedding_backward") return in.rows;
  if (fn == "sum_exp") return in.cols;
  if (fn == "target_logit" || fn == "embedding") return 1;
  return 0;
}

}  // namespace

using Budgets = std::map<std::string, ErrorBudget>;
using Mailbox = std::map<std::tuple<int, int, int>, ErrorBudget>;   // (src, dst, tag) -> budget sent

namespace {

Budgets program_budgets(const Program& program, DType dtype, const Mailbox& received, Mailbox& sent) {
  Budgets budget;
  std::map<std::string, int64_t> partial_k;   // reduction length behind each tensor's elements
  const bool bf16 = dtype == DType::bf16;
  for (const Op& op : program.ops) {
    ErrorBudget b;
    int64_t k_in = 0;
    auto take = [&](const std::string& t) {
      if (auto it = budget.find(t); it != budget.end() && it->second.e2 + it->second.b2 > b.e2 + b.b2) b = it->second;
      if (auto it = partial_k.find(t); it != partial_k.end()) k_in += it->second;
    };
    for (const auto& t : op.inputs) take(t);
    for (const auto& t : op.outputs) take(t);   // accumulation keeps what was there
    const bool reduces = op.kind == OpKind::collective &&
                         (op.collective.op == CollectiveOp::all_reduce || op.collective.op == CollectiveOp::reduce_scatter ||
                          op.collective.op == CollectiveOp::reduce);
    const int64_t p = op.kind == OpKind::collective ? int64_t(op.collective.group.size()) : 1;
    if (bf16 && b.e2 + b.b2 > 0 && op.kind != OpKind::collective) {
      b.b2 += kU16 * kU16;
      ++b.roundings;
    }
    // A router's top-k is a decision: verify holds near-ties to the reference's choice (verify.cpp),
    // so the chosen experts must then be the very same.
    if (op.kind == OpKind::kernel && op.kernel.fn == "moe_route") b = ErrorBudget{};
    // Ring attention sums its blocks' partial results (online-softmax merges, dq and dkv adds):
    // the reference's one sum over the keys, reassociated.
    if (op.kind == OpKind::kernel)
      if (auto it = op.kernel.attrs.find("reassociates"); it != op.kernel.attrs.end() && it->second > 0) {
        b.e2 += it->second * kU32 * kU32;
        b.max_k = std::max(b.max_k, int64_t(it->second));
        ++b.reassociations;
        if (bf16) {
          b.b2 += kU16 * kU16;
          ++b.roundings;
        }
      }
    // An expert's weight gradient sums its tokens in the all-to-all's order, not the reference's.
    if (op.kind == OpKind::gemm && op.gemm.reordered_k) {
      b.e2 += double(op.gemm.k) * kU32 * kU32;
      if (bf16) {
        b.b2 += kU16 * kU16;
        ++b.roundings;
      }
      b.max_k = std::max(b.max_k, op.gemm.k);
      ++b.reassociations;
    }
    if (reduces && p > 1) {
      const int64_t k = std::max<int64_t>(1, k_in) * p;
      b.e2 += double(k) * kU32 * kU32;
      if (bf16) b.b2 += double(p) * kU16 * kU16;
      b.max_k = std::max(b.max_k, k);
      ++b.reassociations;
    }
    if (op.kind == OpKind::send) sent[{program.rank, op.p2p.peer, op.p2p.tag}] = b;
    if (op.kind == OpKind::recv)
      if (auto it = received.find({op.p2p.peer, program.rank, op.p2p.tag}); it != received.end()) b = it->second;
    const int64_t k_out = op.kind == OpKind::kernel && op.kernel.fn == "add" ? k_in : reduction_length(op, program);
    for (const auto& t : op.outputs) {
      budget[t] = b;
      partial_k[t] = reduces ? 0 : k_out;
    }
  }
  return budget;
}

}  // namespace

std::vector<Budgets> error_budgets(const ProgramSet& set, DType dtype) {
  Mailbox mail;
  std::vector<Budgets> out;
  // Each pass lets budgets cross one more stage boundary; forward and backward need 2 pp passes.
  for (int pass = 0; pass < 2 * std::max(1, set.pp) + 1; ++pass) {
    Mailbox sent;
    out.clear();
    for (const Program& p : set.ranks) out.push_back(program_budgets(p, dtype, mail, sent));
    if (sent.empty()) break;
    mail = std::move(sent);
  }
  return out;
}

double tolerance(const ErrorBudget& b) { return kSafety32 * std::sqrt(b.e2) + kSafety16 * std::sqrt(b.b2); }

std::string rule(const ErrorBudget& b, DType dtype) {
  if (b.e2 == 0 && b.b2 == 0) return "bit-exact (same arithmetic as the reference)";
  std::string r = fmt::format("{:g}*sqrt(sum k u^2): {} reassociated sum{} upstream, longest k={}, u=2^-24", kSafety32,
                              b.reassociations, b.reassociations == 1 ? "" : "s", b.max_k);
  if (dtype == DType::bf16)
    r += fmt::format(" + {:g}*sqrt(n u^2): {} bf16 re-rounding{}, u=2^-8", kSafety16, b.roundings, b.roundings == 1 ? "" : "s");
  return r;
}

}  // namespace tpsim::numerics
