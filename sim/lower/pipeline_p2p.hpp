// Pipeline sends between stages, as Megatron makes them: with scatter/gather
// (plan.p2p_scatter_gather, no sequence parallelism, tp > 1) each TP rank sends its 1/tp slice of
// the [tokens, h] activation (or gradient) to the same TP rank of the next stage, and the receiving
// TP group all-gathers the slices over its own links before the first layer reads them. Used by
// the training and inference step lowerings alike.
#pragma once

#include <string>
#include <vector>

#include "tpsim/program.hpp"

namespace tpsim::lowering {

// Whether the plan's pipeline sends are scattered over the TP group.
inline bool p2p_scattered(const PlanSpec& plan) { return plan.p2p_scatter_gather && plan.tp > 1 && !plan.sp; }

// Bytes one rank sends to its peer in the next (or previous) stage: the [tokens, h] tensor, split
// over tp when sequence parallel or scattered.
inline double p2p_send_bytes(const PlanSpec& plan, double tensor_bytes) {
  return plan.tp > 1 && (plan.sp || p2p_scattered(plan)) ? tensor_bytes / plan.tp : tensor_bytes;
}

// The receiving group's all-gather of the scattered slices: [tokens, h/tp] -> [tokens, h] on every
// TP rank (nccl-tests size: the gathered tensor), after the receive `recv`.
inline Op p2p_gather(const std::string& name, const std::vector<int>& tp_group, double tensor_bytes, int recv, Pass pass,
                     int micro_batch, Algorithm algorithm) {
  Op op;
  op.kind = OpKind::collective;
  op.name = name;
  op.pass = pass;
  op.stream = Stream::tp_comm;
  op.micro_batch = micro_batch;
  op.collective.op = CollectiveOp::all_gather;
  op.collective.algorithm = algorithm;
  op.collective.group = tp_group;
  op.collective.bytes = int64_t(tensor_bytes);
  op.collective.dim = 1;
  op.hbm_bytes = 2 * tensor_bytes;
  op.deps = {recv};
  return op;
}

}  // namespace tpsim::lowering
