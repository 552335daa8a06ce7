// The TP mapping table (include/tpsim/tp_mappings.hpp): Megatron-LM's mappings.py, one row each.
#include "tpsim/tp_mappings.hpp"

#include <stdexcept>

namespace tpsim {

namespace {

constexpr TpMapping kMappings[] = {
    {TpMappingId::copy_to_tp, "copy_to_tp", MapStep::identity, MapStep::all_reduce, 1,
     "identity: every GPU already holds the whole input (Megatron's f)",
     "all-reduce: each column shard produced only a partial input gradient, so the GPUs sum them"},
    {TpMappingId::reduce_from_tp, "reduce_from_tp", MapStep::all_reduce, MapStep::identity, 1,
     "all-reduce: a row-parallel linear leaves each GPU a partial sum of the output (Megatron's g)",
     "identity: the output gradient is already on every GPU"},
    {TpMappingId::scatter_to_tp, "scatter_to_tp", MapStep::split, MapStep::all_gather, 1,
     "split by columns (no communication)", "all-gather the gradient's column shards"},
    {TpMappingId::gather_from_tp, "gather_from_tp", MapStep::all_gather, MapStep::split, 1,
     "all-gather: the column-parallel output is split by columns and the next op needs all of it",
     "split the gradient by columns (no communication)"},
    {TpMappingId::scatter_to_sp, "scatter_to_sp", MapStep::split, MapStep::all_gather, 0,
     "split by sequence (no communication)", "all-gather the gradient's sequence shards"},
    {TpMappingId::gather_from_sp, "gather_from_sp", MapStep::all_gather, MapStep::reduce_scatter, 0,
     "all-gather the sequence shards: the column-parallel linear needs every token",
     "reduce-scatter: each GPU's shard gives a partial input gradient; sum them and keep this GPU's tokens"},
    {TpMappingId::gather_from_sp_replicated, "gather_from_sp_replicated", MapStep::all_gather, MapStep::split, 0,
     "all-gather the sequence shards: the next op is replicated and needs every token",
     "split the gradient back by sequence (no communication)"},
    {TpMappingId::reduce_scatter_to_sp, "reduce_scatter_to_sp", MapStep::reduce_scatter, MapStep::all_gather, 0,
     "reduce-scatter: sum the row-parallel partial outputs and keep this GPU's tokens "
     "(half an all-reduce's traffic; sequence parallelism)",
     "all-gather the sequence shards of the gradient: the row-parallel linear needs every token"},
    {TpMappingId::weight_grad_reduce, "weight_grad_reduce", MapStep::identity, MapStep::all_reduce, 1,
     "identity: a replicated weight (a norm under sequence parallelism) is used by every GPU",
     "all-reduce: each GPU saw only its tokens, so its weight gradient is partial"},
};

}  // namespace

const char* to_string(MapStep s) {
  switch (s) {
    case MapStep::identity: return "identity";
    case MapStep::split: return "split";
    case MapStep::all_reduce: return "all_reduce";
    case MapStep::all_gather: return "all_gather";
    case MapStep::reduce_scatter: return "reduce_scatter";
  }
  return "?";
}

bool is_collective(MapStep s) {
  return s == MapStep::all_reduce || s == MapStep::all_gather || s == MapStep::reduce_scatter;
}

CollectiveOp collective_of(MapStep s) {
  switch (s) {
    case MapStep::all_reduce: return CollectiveOp::all_reduce;
    case MapStep::all_gather: return CollectiveOp::all_gather;
    case MapStep::reduce_scatter: return CollectiveOp::reduce_scatter;
    default: throw std::logic_error(std::string("TP mapping step ") + to_string(s) + " is not a collective");
  }
}

const TpMapping& tp_mapping(TpMappingId id) {
  for (const TpMapping& m : kMappings)
    if (m.id == id) return m;
  throw std::logic_error("tp_mapping: no row for this id");
}

const char* to_string(TpMappingId id) { return id == TpMappingId::none ? "" : tp_mapping(id).name; }

}  // namespace tpsim
