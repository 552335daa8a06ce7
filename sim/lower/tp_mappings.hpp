// The tensor-parallel mappings (Megatron-LM's mappings.py as one table): each row names the
// forward step and its backward conjugate, and the tensor dimension it splits or joins
// (0 = rows: the sequence, 1 = columns: features).
#pragma once

namespace tpsim::lowering {

enum class MapStep { identity, split, all_reduce, all_gather, reduce_scatter };

struct TpMapping {
  const char* name;
  MapStep forward, backward;
  int dim;   // for split / all_gather / reduce_scatter
};

// forward: identity,            backward: all-reduce            (input of a column-parallel linear)
inline constexpr TpMapping copy_to_tp{"copy_to_tp", MapStep::identity, MapStep::all_reduce, 1};
// forward: all-reduce,          backward: identity              (output of a row-parallel linear)
inline constexpr TpMapping reduce_from_tp{"reduce_from_tp", MapStep::all_reduce, MapStep::identity, 1};
// forward: split columns,       backward: all-gather columns    (replicated -> feature shards)
inline constexpr TpMapping scatter_to_tp{"scatter_to_tp", MapStep::split, MapStep::all_gather, 1};
// forward: all-gather columns,  backward: split columns         (feature shards -> replicated)
inline constexpr TpMapping gather_from_tp{"gather_from_tp", MapStep::all_gather, MapStep::split, 1};
// forward: split rows,          backward: all-gather rows       (replicated -> sequence shards)
inline constexpr TpMapping scatter_to_sp{"scatter_to_sp", MapStep::split, MapStep::all_gather, 0};
// forward: all-gather rows,     backward: reduce-scatter rows   (sequence shards -> input of column-parallel)
inline constexpr TpMapping gather_from_sp{"gather_from_sp", MapStep::all_gather, MapStep::reduce_scatter, 0};
// forward: all-gather rows,     backward: split rows            (sequence shards -> replicated compute)
inline constexpr TpMapping gather_from_sp_replicated{"gather_from_sp_replicated", MapStep::all_gather,
                                                     MapStep::split, 0};
// forward: reduce-scatter rows, backward: all-gather rows       (output of a row-parallel linear under SP)
inline constexpr TpMapping reduce_scatter_to_sp{"reduce_scatter_to_sp", MapStep::reduce_scatter,
                                                MapStep::all_gather, 0};

const char* to_string(MapStep s);

}  // namespace tpsim::lowering
