// The public loaders: a reference (preset name, path, or for a scenario's parts an inline mapping)
// -> YAML -> --set overrides -> typed struct -> checks. Nothing half-valid is ever returned.
#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim {

namespace spec_detail {

namespace {

// A part loaded on its own (load_topology & co): the reference comes from the caller.
Document open_standalone(const std::string& category, const std::string& section, const std::string& ref) {
  std::string problem;
  auto doc = open_reference(category, ref, ".", problem);
  if (!doc) {
    if (looks_like_path(ref)) throw InputError(ref, 0, 0, "", unreadable_file(ref).empty() ? problem : unreadable_file(ref));
    throw InputError("", 0, 0, section, problem);
  }
  return *doc;
}

// One of a scenario's parts: an inline mapping, or a reference resolved from the scenario's folder.
struct Part {
  Document doc;
  Source src;
  std::string fallback_name;
};

Part open_part(const Map& top, const std::string& key, const std::string& category, const std::string& base_dir,
               const std::vector<Override>& overrides, Locations& where) {
  const YAML::Node v = top.value(key);
  Part part;
  if (v.IsMap()) {
    part.doc = Document{top.source().file, v};
    part.fallback_name = "inline";
  } else if (v.IsScalar()) {
    std::string problem;
    // A -t/-m/-p reference is relative to where the command runs, not to the scenario's folder.
    const bool from_flag = top.source().labels.count(key) > 0;
    auto doc = open_reference(category, v.Scalar(), from_flag ? "." : base_dir, problem);
    if (!doc) top.fail(key, problem);
    part.doc = *doc;
    part.fallback_name = doc->file.empty() ? v.Scalar() : stem_of(doc->file);
  } else {
    top.fail(key, "expected a preset name, a path or an inline mapping, got " + shown(v));
  }
  part.src.file = part.doc.file;
  part.src.locations = &where;
  apply_overrides(part.doc.root, key, overrides, part.src);
  return part;
}

}  // namespace

namespace {

// workload.precision: {weights, activations, kv_cache, communication}, each a storage type.
void read_precision(const Map& p, WorkloadSpec& out) {
  p.only({"weights", "activations", "kv_cache", "communication"});
  const std::vector<std::string> types = {"fp32", "bf16", "fp16", "fp8"};   // tf32 is a math mode, not storage
  const std::pair<const char*, std::optional<DType>*> classes[] = {{"weights", &out.weights_dtype},
                                                                   {"activations", &out.activations_dtype},
                                                                   {"kv_cache", &out.kv_cache_dtype},
                                                                   {"communication", &out.communication_dtype}};
  for (const auto& [key, field] : classes) {
    if (!p.has(key)) continue;
    const std::string name = p.choice(key, types);
    for (DType d : {DType::fp32, DType::bf16, DType::fp16, DType::fp8})
      if (name == to_string(d)) *field = d;
  }
}

}  // namespace

WorkloadSpec read_workload(const Source& src, const YAML::Node& node) {
  const Map w(src, node, "workload");
  if (w.has("steps"))   // renamed: it simulated one micro-batch by default and printed it as "the step"
    w.fail("steps", "was removed: tpsim run simulates the whole step; for a partial run of the first N "
                    "micro-batches write partial_micro_batches: N");
  rename_aliases(w, {{"global_batch_size", "global_batch"}, {"micro_batch_size", "micro_batch"}, {"seq_length", "seq"}});
  w.only({"kind", "global_batch", "micro_batch", "seq", "partial_micro_batches", "batch", "prompt", "generate",
          "precision", "prefill_chunk", "expert_skew"});
  WorkloadSpec out;
  // serving: each iteration is an inference step; the scenario's `serving` section says the rest.
  out.kind = w.choice("kind", {"training", "inference", "serving"}, "training") == "training" ? WorkloadKind::training
                                                                                             : WorkloadKind::inference;
  out.global_batch = w.integer_up_to("global_batch", limits::kBatch, "sequences", out.global_batch);
  out.micro_batch = w.integer_up_to("micro_batch", limits::kBatch, "sequences", out.micro_batch);
  out.seq = w.integer_up_to("seq", limits::kSequence, "tokens", out.seq);
  out.partial_micro_batches = w.integer_up_to("partial_micro_batches", limits::kBatch, "micro-batches", out.partial_micro_batches);
  out.batch = w.integer_up_to("batch", limits::kBatch, "sequences", out.batch);
  out.prompt = w.integer_up_to("prompt", limits::kSequence, "tokens", out.prompt);
  out.generate = w.integer_up_to("generate", limits::kSequence, "tokens", out.generate);
  if (w.has("precision")) read_precision(w.map("precision"), out);
  out.prefill_chunk = w.integer_up_to("prefill_chunk", limits::kSequence, "tokens", out.prefill_chunk);
  // The busiest expert's tokens over the mean; its range depends on the model (check_scenario).
  out.expert_skew = w.quantity("expert_skew", "number", out.expert_skew);
  return out;
}

OutputSpec read_outputs(const Source& src, const YAML::Node& node) {
  const Map o(src, node, "outputs");
  o.only({"json", "csv", "trace", "html"});
  return OutputSpec{o.string("json", ""), o.string("csv", ""), o.string("trace", ""), o.string("html", "")};
}

}  // namespace spec_detail

using namespace spec_detail;

Topology load_topology(const std::string& ref, const std::vector<Override>& overrides) {
  check_overrides(overrides);
  Document doc = open_standalone("topologies", "topology", ref);
  Locations where;
  Source src{doc.file, {}, &where};
  apply_overrides(doc.root, "topology", overrides, src);
  Topology t = read_topology(src, doc.root, stem_of(doc.file));
  t.source = doc.file;
  check_topology(t, where);
  return t;
}

ModelSpec load_model(const std::string& ref, const std::vector<Override>& overrides) {
  check_overrides(overrides);
  Document doc = open_standalone("models", "model", ref);
  Locations where;
  Source src{doc.file, {}, &where};
  apply_overrides(doc.root, "model", overrides, src);
  ModelSpec m = read_model(src, doc.root, stem_of(doc.file));
  m.source = doc.file;
  check_model(m, where);
  return m;
}

PlanSpec load_plan(const std::string& ref, const std::vector<Override>& overrides) {
  check_overrides(overrides);
  Document doc = open_standalone("plans", "plan", ref);
  Locations where;
  Source src{doc.file, {}, &where};
  apply_overrides(doc.root, "plan", overrides, src);
  PlanSpec p = read_plan(src, doc.root, doc.file.empty() ? ref : stem_of(doc.file));
  p.source = doc.file;
  check_plan(p, where);
  return p;
}

Scenario load_scenario(const ScenarioRequest& request) {
  check_overrides(request.overrides);
  Locations where;
  Source src;
  src.locations = &where;
  YAML::Node root;
  std::string base_dir;
  Scenario s;
  if (request.path.empty()) {
    src.file = "<default scenario>";
    root = parse_text(default_scenario_yaml(), src.file);
    base_dir = data_dir() + "/examples";
  } else {
    std::string problem;
    auto doc = open_reference("scenarios", request.path, ".", problem);
    if (!doc) {
      if (looks_like_path(request.path))
        throw InputError(request.path, 0, 0, "", unreadable_file(request.path).empty() ? problem : unreadable_file(request.path));
      throw InputError("", 0, 0, "scenario", problem);
    }
    src.file = s.source = doc->file;
    root = doc->root;
    base_dir = folder_of(doc->file);
  }
  if (!root.IsMap()) Map(src, root, "");   // reports "expected a mapping"
  // -t/-m/-p replace the scenario's references; errors in them are reported against the flag.
  const std::pair<const char*, const std::string*> replacements[] = {
      {"topology", &request.topology}, {"model", &request.model}, {"plan", &request.plan}};
  for (const auto& [key, ref] : replacements)
    if (!ref->empty()) {
      root[key] = *ref;
      src.labels[key] = std::string("--") + key;
    }
  apply_overrides(root, "", request.overrides, src);

  const Map top(src, root, "");
  top.only({"name", "topology", "model", "plan", "workload", "serving", "outputs", "numerics"});
  s.name = top.string("name", request.path.empty() ? "default" : stem_of(request.path));

  Part topo = open_part(top, "topology", "topologies", base_dir, request.overrides, where);
  s.topology = read_topology(topo.src, topo.doc.root, topo.fallback_name);
  s.topology.source = topo.doc.file;
  Part model = open_part(top, "model", "models", base_dir, request.overrides, where);
  s.model = read_model(model.src, model.doc.root, model.fallback_name);
  s.model.source = model.doc.file;
  Part plan = open_part(top, "plan", "plans", base_dir, request.overrides, where);
  s.plan = read_plan(plan.src, plan.doc.root, plan.fallback_name);
  s.plan.source = plan.doc.file;

  // A scenario changed from the command line says so: a report must not name a scenario, or a
  // plan, that the run is not.
  std::vector<std::string> changes;
  for (const auto& [key, ref] : replacements)
    if (!ref->empty()) changes.push_back(std::string("--") + key + " " + *ref);
  if (!request.overrides.empty())
    changes.push_back(std::to_string(request.overrides.size()) + " --set override" + (request.overrides.size() == 1 ? "" : "s"));
  if (!changes.empty()) s.name += " (with " + join(changes) + ")";
  if (std::any_of(request.overrides.begin(), request.overrides.end(),
                  [](const Override& o) { return o.path.rfind("plan.", 0) == 0; }))
    s.plan.name += " (as --set changes it)";

  if (top.has("workload")) s.workload = read_workload(src, top.value("workload"));
  if (top.has("outputs")) s.outputs = read_outputs(src, top.value("outputs"));
  // A serving scenario: workload.kind serving (or `tpsim serve`, which sets it) and its section.
  const bool serving = top.has("workload") && Map(src, top.value("workload"), "workload").string("kind", "") == "serving";
  if (serving) {
    s.serving = read_serving(src, top.has("serving") ? top.value("serving") : YAML::Node(YAML::NodeType::Map), s);
    s.serving->base_dir = request.path.empty() ? "." : base_dir;
  } else if (top.has("serving")) {
    top.fail("serving", "applies to serving workloads only (workload.kind: serving, or tpsim serve)");
  }
  s.numerics = top.choice("numerics", {"off", "proxy", "full"}, "proxy");
  resolve_virtual_stages(s, where);
  check_scenario(s, where);
  return s;
}

}  // namespace tpsim
