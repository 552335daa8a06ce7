// Plan YAML -> PlanSpec: mesh sizes, preset, per-weight partition specs (JAX style, one mesh axis or
// null per tensor dimension) and Megatron-style mapping flags per linear.
#include <fmt/core.h>

#include <algorithm>

#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {

const std::vector<std::string>& weight_names() {
  static const std::vector<std::string> names = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.gate", "mlp.fc2",
                                                 "norm1",    "norm2",     "embedding", "output", "final_norm"};
  return names;
}

const std::vector<std::string>& linear_names() {
  static const std::vector<std::string> names = {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.gate", "mlp.fc2", "output"};
  return names;
}

namespace {

const std::vector<std::string> kAxes = {"tp", "dp", "pp"};

// The key of one entry of a weight-keyed mapping, checked against the allowed weight names.
std::string weight_key(const Map& m, const YAML::Node& key, const std::vector<std::string>& allowed, const char* what) {
  const std::string k = key.IsScalar() ? key.Scalar() : "";
  if (!std::ranges::count(allowed, k))
    fail_at(m.source(), key, k.empty() ? m.path() : m.key_path(k),   // a null key: no "plan.mappings." path
            "unknown " + std::string(what) + " '" + k + "'" + did_you_mean(k, allowed) + "; expected one of: " + join(allowed));
  return k;
}

// "mlp.fc1: [null, tp]" -> {"", "tp"}: [in, out], each dimension split over one mesh axis or none.
PartitionSpec read_partition(const Map& parts, const std::string& weight) {
  const YAML::Node v = parts.value(weight);
  const std::string key = parts.key_path(weight);
  if (!v.IsSequence() || v.size() != 2)
    fail_at(parts.source(), v, key, "expected [axis|null, axis|null] with axes tp | dp | pp, got " + shown(v));
  PartitionSpec spec;
  for (const auto& dim : v) {
    if (dim.IsNull() || (dim.IsScalar() && (dim.Scalar().empty() || dim.Scalar() == "none"))) {
      spec.emplace_back();
      continue;
    }
    if (!dim.IsScalar() || !std::ranges::count(kAxes, dim.Scalar()))
      fail_at(parts.source(), dim, key,
              "expected a mesh axis tp | dp | pp or null, got " + shown(dim) + (dim.IsScalar() ? did_you_mean(dim.Scalar(), kAxes) : ""));
    if (dim.Scalar() != "tp")   // lowering would refuse it later, with no file or line
      fail_at(parts.source(), dim, key, "axis '" + dim.Scalar() + "' cannot split a weight (only tp does; dp and pp replicate weights)");
    if (std::ranges::count(spec, dim.Scalar()))
      fail_at(parts.source(), dim, key, "axis '" + dim.Scalar() + "' splits two dimensions of one weight");
    spec.push_back(dim.Scalar());
  }
  return spec;
}

LinearMapping read_mapping(const Map& m) {
  m.only({"input_is_parallel", "gather_output", "reduce_output"});
  LinearMapping lm;
  if (m.has("input_is_parallel")) lm.input_is_parallel = m.boolean("input_is_parallel");
  if (m.has("gather_output")) lm.gather_output = m.boolean("gather_output");
  if (m.has("reduce_output")) lm.reduce_output = m.boolean("reduce_output");
  return lm;
}

std::vector<std::string> read_mesh_order(const Map& p) {
  const YAML::Node v = p.value("mesh_order");
  std::vector<std::string> order;
  if (v.IsSequence())
    for (const auto& axis : v) order.push_back(axis.IsScalar() ? axis.Scalar() : "?");
  std::vector<std::string> sorted = order;
  std::ranges::sort(sorted);
  if (sorted != std::vector<std::string>{"dp", "pp", "tp"} && sorted != std::vector<std::string>{"cp", "dp", "pp", "tp"})
    p.fail("mesh_order", "expected the axes tp, dp, pp (and cp) once each, innermost first (e.g. [tp, cp, dp, pp]), got " +
                             (v.IsSequence() ? fmt::format("[{}]", join(order)) : shown(v)));
  return order;
}

}  // namespace

PlanSpec read_plan(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  const Map p(src, root, "plan");
  // Megatron-LM's argument names (arguments.py) for the same settings.
  rename_aliases(p, {{"tensor_model_parallel_size", "tp"},
                     {"pipeline_model_parallel_size", "pp"},
                     {"data_parallel_size", "dp"},
                     {"sequence_parallel", "sp"},
                     {"virtual_pipeline_model_parallel_size", "virtual_stages"},
                     {"decoder_first_pipeline_num_layers", "first_stage_layers"},
                     {"decoder_last_pipeline_num_layers", "last_stage_layers"},
                     {"recompute_granularity", "recompute"},
                     {"use_distributed_optimizer", "distributed_optimizer"},
                     {"overlap_grad_reduce", "dp_overlap"},
                     {"gradient_accumulation_fusion", "grad_accumulation_fusion"},
                     {"expert_model_parallel_size", "ep"},
                     {"context_parallel_size", "cp"},
                     {"num_layers_per_virtual_pipeline_stage", "layers_per_virtual_stage"}});
  if (p.has("virtual_stages") && p.has("layers_per_virtual_stage"))
    p.fail("layers_per_virtual_stage", "give virtual_stages or layers_per_virtual_stage "
                                       "(num_layers_per_virtual_pipeline_stage), not both");
  p.only({"name", "preset", "tp", "pp", "dp", "ep", "cp", "sp", "layers_per_virtual_stage", "partitions", "mappings", "mesh_order", "collective_algorithm",
          "tp_allreduce", "tp_allreduce_max", "virtual_stages", "first_stage_layers", "last_stage_layers", "recompute", "distributed_optimizer", "dp_overlap",
          "grad_accumulation_fusion", "tp_grad_overlap", "p2p_scatter_gather"});
  PlanSpec plan;
  plan.name = p.string("name", fallback_name);
  const std::string preset = p.choice("preset", {"megatron", "naive", "custom"}, "megatron");
  plan.preset = preset == "naive" ? PlanPreset::naive : preset == "custom" ? PlanPreset::custom : PlanPreset::megatron;
  plan.tp = static_cast<int>(p.integer_up_to("tp", limits::kGpus, "GPUs", 1));
  plan.pp = static_cast<int>(p.integer_up_to("pp", limits::kGpus, "GPUs", 1));
  plan.dp = static_cast<int>(p.integer_up_to("dp", limits::kGpus, "GPUs", 1));
  plan.cp = static_cast<int>(p.integer_up_to("cp", limits::kGpus, "GPUs", 1));
  if (plan.tp > 0 && plan.pp > 0 && plan.dp > 0 && plan.cp > 0 &&
      (int64_t(plan.tp) * plan.pp > limits::kGpus || int64_t(plan.tp) * plan.pp * plan.dp > limits::kGpus ||
       int64_t(plan.tp) * plan.pp * plan.dp * plan.cp > limits::kGpus))
    p.fail_here(fmt::format("tp x cp x pp x dp = {} x {} x {} x {} GPUs, more than the {} a plan may name", plan.tp,
                            plan.cp, plan.pp, plan.dp, limits::kGpus));
  // Expert parallelism is carved out of dp (check_plan: ep divides dp), so it adds no GPUs.
  plan.ep = static_cast<int>(p.integer_up_to("ep", limits::kGpus, "GPUs", 1));
  plan.sp = p.boolean("sp", false);
  if (p.has("partitions")) {
    const Map parts = p.map("partitions");
    for (const auto& kv : parts.yaml()) {
      const std::string w = weight_key(parts, kv.first, weight_names(), "weight");
      if (plan.partitions.count(w)) fail_at(src, kv.first, parts.key_path(w), "duplicate key '" + w + "'");
      plan.partitions[w] = read_partition(parts, w);
    }
  }
  if (p.has("mappings")) {
    const Map maps = p.map("mappings");
    for (const auto& kv : maps.yaml()) {
      const std::string w = weight_key(maps, kv.first, linear_names(), "linear");
      // yaml-cpp keeps both entries and [] finds the first: the second would be dropped unseen.
      if (plan.mappings.count(w)) fail_at(src, kv.first, maps.key_path(w), "duplicate key '" + w + "'");
      plan.mappings[w] = read_mapping(maps.map(w));
    }
  }
  if (p.has("mesh_order")) plan.mesh_order = read_mesh_order(p);
  plan.collective_algorithm = p.choice(
      "collective_algorithm", {"auto", "ring", "tree", "halving_doubling", "direct", "nvls", "hierarchical"}, "auto");
  plan.tp_allreduce = p.choice("tp_allreduce", {"nccl", "one_shot", "two_shot"}, "nccl");
  plan.tp_allreduce_max = p.quantity("tp_allreduce_max", "bytes", plan.tp_allreduce_max);
  plan.virtual_stages = static_cast<int>(p.integer_up_to("virtual_stages", limits::kCount, "stages per GPU", 1));
  plan.layers_per_virtual_stage = p.integer_up_to("layers_per_virtual_stage", limits::kLayers, "layers", 0);
  if (p.has("layers_per_virtual_stage") && plan.layers_per_virtual_stage < 1)
    p.fail("layers_per_virtual_stage", "expected at least 1 layer per model chunk");
  plan.first_stage_layers = p.integer_up_to("first_stage_layers", limits::kLayers, "layers", 0);
  plan.last_stage_layers = p.integer_up_to("last_stage_layers", limits::kLayers, "layers", 0);
  for (const char* key : {"first_stage_layers", "last_stage_layers"})
    if (p.has(key) && p.integer(key) < 0) p.fail(key, "expected layers >= 0 (0 = an even share)");
  const std::string rc = p.choice("recompute", {"none", "selective", "full"}, "none");
  plan.recompute = rc == "full" ? Recompute::full : rc == "selective" ? Recompute::selective : Recompute::none;
  plan.distributed_optimizer = p.boolean("distributed_optimizer", false);
  plan.dp_overlap = p.boolean("dp_overlap", true);
  plan.grad_accumulation_fusion = p.boolean("grad_accumulation_fusion", true);
  plan.tp_grad_overlap = p.boolean("tp_grad_overlap", true);
  // Megatron's pipeline sends scatter over the TP group; other layouts send what each rank holds.
  plan.p2p_scatter_gather = p.boolean("p2p_scatter_gather", plan.preset == PlanPreset::megatron);
  return plan;
}

}  // namespace tpsim::spec_detail
