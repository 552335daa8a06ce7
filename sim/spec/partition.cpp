// The TP split of each weight under a plan (see tpsim/partition.hpp).
#include "tpsim/partition.hpp"

#include <fmt/core.h>

#include <stdexcept>

namespace tpsim {
namespace {

// The dimension of a partition spec that names tp, -1 if none does.
int split_of(const std::string& key, const PartitionSpec& spec) {
  int split = -1;
  for (size_t d = 0; d < spec.size(); ++d) {
    const std::string& axis = spec[d];
    if (axis.empty() || axis == "null" || axis == "~") continue;
    if (axis != "tp")
      throw std::invalid_argument(fmt::format(
          "plan.partitions.{}: axis '{}' cannot split a weight (only tp does; dp and pp replicate)", key, axis));
    if (split >= 0) throw std::invalid_argument(fmt::format("plan.partitions.{}: tp named twice", key));
    split = static_cast<int>(d);
  }
  return split;
}

bool is_norm(const std::string& weight) { return weight == "norm1" || weight == "norm2" || weight == "final_norm"; }

}  // namespace

bool has_partition(const PlanSpec& plan, const std::string& weight) { return plan.partitions.count(weight) > 0; }

int tp_split_dim(const PlanSpec& plan, const std::string& weight) {
  if (auto it = plan.partitions.find(weight); it != plan.partitions.end()) {
    const int split = split_of(weight, it->second);
    if (is_norm(weight)) return split >= 0 ? 1 : -1;   // [1, h]: any tp splits the features
    return split;
  }
  if (is_norm(weight)) return -1;
  if (weight == "embedding") return plan.preset == PlanPreset::custom ? -1 : 0;
  switch (plan.preset) {
    case PlanPreset::megatron: return weight == "attn.proj" || weight == "mlp.fc2" ? 0 : 1;
    case PlanPreset::naive: return 1;
    case PlanPreset::custom: return -1;
  }
  return -1;
}

}  // namespace tpsim
