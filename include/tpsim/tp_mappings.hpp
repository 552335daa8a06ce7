// The tensor-parallel mappings (Megatron-LM's mappings.py as one table): each row names the
// forward step, its backward conjugate, the tensor dimension it splits or joins (0 = rows: the
// sequence, 1 = columns: features), and why each half exists. The lowering emits ops from a row,
// tags them with the row's id, and `tpsim explain` prints the row's sentences: one table for both.
#pragma once

#include <cstdint>

#include "tpsim/collective.hpp"

namespace tpsim {

enum class MapStep { identity, split, all_reduce, all_gather, reduce_scatter };
const char* to_string(MapStep s);
bool is_collective(MapStep s);
CollectiveOp collective_of(MapStep s);   // all_reduce / all_gather / reduce_scatter; throws otherwise

enum class TpMappingId : int8_t {
  none = -1,
  copy_to_tp,
  reduce_from_tp,
  scatter_to_tp,
  gather_from_tp,
  scatter_to_sp,
  gather_from_sp,
  gather_from_sp_replicated,
  reduce_scatter_to_sp,
  weight_grad_reduce,   // not a layout change: a replicated weight's partial gradient, all-reduced
};

struct TpMapping {
  TpMappingId id;
  const char* name;
  MapStep forward, backward;
  int dim;                      // for split / all_gather / reduce_scatter
  const char* why_forward;      // one sentence each, for explain
  const char* why_backward;
};

// The row of `id` (id != none).
const TpMapping& tp_mapping(TpMappingId id);
const char* to_string(TpMappingId id);   // the row's name, "" for none

}  // namespace tpsim
