// Shared pieces of the loaders: --set overrides applied to YAML nodes, preset resolution, and the
// per-kind readers and checks. Private to the spec stage.
#pragma once

#include <string>
#include <vector>

#include "spec/yaml_reader.hpp"

namespace tpsim::spec_detail {

// Weight names a plan may address (see spec.hpp above LinearMapping), and the linears among them.
const std::vector<std::string>& weight_names();
const std::vector<std::string>& linear_names();

// Rejects overrides whose path is empty, malformed or names an unknown section.
void check_overrides(const std::vector<Override>& overrides);
// Applies the overrides of `section` ("topology", ...; "" = the scenario's own keys: name,
// numerics, workload.*, outputs.*) to `root`, labelling each written path "--set PATH" in `src`.
void apply_overrides(YAML::Node root, const std::string& section, const std::vector<Override>& overrides,
                     Source& src);

// A YAML document found from a reference: a preset name, a path, or a built-in plan.
struct Document {
  std::string file;   // resolved path; "" for a built-in
  YAML::Node root;
};
// Finds `ref` in `category` ("topologies", "models", "plans", "examples"), paths relative to
// `base_dir`. On failure returns nothing and sets `problem` ("no such file 'x'", "unknown ... preset").
std::optional<Document> open_reference(const std::string& category, const std::string& ref,
                                       const std::string& base_dir, std::string& problem);
// A reference with a '/' or a .yaml/.yml/.json ending is a path; anything else is a preset name.
bool looks_like_path(const std::string& ref);
// The folder holding `file` ("" for a built-in: the current directory).
std::string folder_of(const std::string& file);
// The file name without folder and extension ("dgx-h100").
std::string stem_of(const std::string& file);

// Readers: one YAML mapping into one struct (no cross-checks).
Topology read_topology(const Source& src, const YAML::Node& root, const std::string& fallback_name);
ModelSpec read_model(const Source& src, const YAML::Node& root, const std::string& fallback_name);
// A Hugging Face config.json (it names `architectures` or `model_type`), read by read_model.
bool is_hf_config(const YAML::Node& root);
ModelSpec read_hf_config(const Source& src, const YAML::Node& root, const std::string& fallback_name);
PlanSpec read_plan(const Source& src, const YAML::Node& root, const std::string& fallback_name);
WorkloadSpec read_workload(const Source& src, const YAML::Node& node);
OutputSpec read_outputs(const Source& src, const YAML::Node& node);
// The `serving` section, checked against the scenario's plan and topology (read before it).
ServingSpec read_serving(const Source& src, const YAML::Node& node, const Scenario& s);

// How many nodes one tp group of the plan touches with `gpus_per_node` GPUs per node.
int64_t tp_group_nodes(const PlanSpec& p, int gpus_per_node);

// Checks, reporting at the recorded location of the key at fault (or its nearest recorded parent).
void check_topology(const Topology& t, const Locations& where);
void check_model(const ModelSpec& m, const Locations& where);
void check_plan(const PlanSpec& p, const Locations& where);
void check_scenario(const Scenario& s, const Locations& where);
// plan.layers_per_virtual_stage -> plan.virtual_stages, now that the model's layers are known;
// InputError at the key when the chunks do not split over the pipeline.
void resolve_virtual_stages(Scenario& s, const Locations& where);

}  // namespace tpsim::spec_detail
