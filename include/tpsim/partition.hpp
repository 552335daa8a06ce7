// How tensor parallelism splits each weight under a plan: one rule, read by the lowering (which
// builds the shards) and by the memory model (which counts them).
#pragma once

#include <string>

#include "tpsim/spec.hpp"

namespace tpsim {

// The dimension of `weight` (a name of spec.hpp's weight list: attn.qkv, attn.proj, mlp.fc1,
// mlp.gate, mlp.fc2, norm1, norm2, embedding, output, final_norm; weights are [in, out]) that the
// TP group splits, or -1 when every TP rank holds it whole:
//   - the plan's partition spec for it, if any: the dimension naming tp (norms [1, h]: 1 when
//     any dimension names tp);
//   - else the preset: megatron splits attn.proj and mlp.fc2 by rows (0) and the other linears,
//     output included, by columns (1); naive splits every linear by columns; custom splits none;
//     the embedding [V, h] is vocab-parallel (0) except under custom; norms are replicated.
// Throws std::invalid_argument for a spec naming an axis other than tp, or tp twice.
int tp_split_dim(const PlanSpec& plan, const std::string& weight);

// True when `weight` has its own entry in plan.partitions (the preset does not decide it).
bool has_partition(const PlanSpec& plan, const std::string& weight);

}  // namespace tpsim
