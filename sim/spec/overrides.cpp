// --set SECTION.KEY=VALUE: written into the YAML before it is read, so a bad value is reported by the
// same reader as a bad file, labelled "--set SECTION.KEY" instead of a line and column.
#include <algorithm>

#include "spec/loading.hpp"

namespace tpsim::spec_detail {

namespace {

const std::vector<std::string> kSections = {"topology", "model", "plan", "workload", "serving", "outputs"};
const std::vector<std::string> kScenarioKeys = {"name", "numerics"};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(path.substr(start, dot - start));
  parts.push_back(path.substr(start));
  return parts;
}

std::string section_of(const std::string& path) { return split_path(path).front(); }

[[noreturn]] void bad(const Override& o, const std::string& problem) {
  throw InputError("", 0, 0, "--set " + o.path, problem);
}

// The YAML value of an override: "[0, 1]" is a list, "300GB/s" a string, "4" a number.
YAML::Node parse_value(const Override& o) {
  try {
    return YAML::Load(o.value);
  } catch (const YAML::ParserException& e) {
    bad(o, "cannot read the value '" + o.value + "': " + e.msg);
  }
}

// Writes `value` at `parts[from..]` under `node`. A map keyed by dotted weight names
// (plan.partitions, plan.mappings) takes two components at once ("mlp.fc1").
void write(YAML::Node node, const std::vector<std::string>& parts, size_t from, const YAML::Node& value,
           const Override& o) {
  const std::string here = join(std::vector<std::string>(parts.begin(), parts.begin() + from), ".");
  if (node.IsDefined() && !node.IsNull() && !node.IsMap())
    bad(o, "'" + here + "' is " + shown(node) + ", not a mapping, so it has no key '" + parts[from] + "'");
  size_t take = 1;
  const bool weight_keyed = (here.ends_with(".partitions") || here.ends_with(".mappings"));
  if (weight_keyed && from + 1 < parts.size() &&
      std::ranges::count(weight_names(), parts[from] + "." + parts[from + 1]))
    take = 2;
  std::string key = parts[from];
  if (take == 2) key += "." + parts[from + 1];
  if (from + take == parts.size()) {
    node[key] = value;
    return;
  }
  YAML::Node child = node[key];
  if (!child.IsDefined() || child.IsNull()) node[key] = YAML::Node(YAML::NodeType::Map);
  write(node[key], parts, from + take, value, o);
}

}  // namespace

void check_overrides(const std::vector<Override>& overrides) {
  for (const auto& o : overrides) {
    const auto parts = split_path(o.path);
    if (o.path.empty() || std::ranges::any_of(parts, [](const std::string& p) { return p.empty(); }))
      throw InputError("", 0, 0, "--set", "expected SECTION.KEY=VALUE, got '" + o.path + "=" + o.value + "'");
    const std::string& s = parts.front();
    const bool scenario_key = parts.size() == 1 && std::ranges::count(kScenarioKeys, s);
    if (!scenario_key && !std::ranges::count(kSections, s)) {
      std::vector<std::string> all = kSections;
      all.insert(all.end(), kScenarioKeys.begin(), kScenarioKeys.end());
      bad(o, "unknown section '" + s + "'" + did_you_mean(s, all) + "; expected one of: " + join(all));
    }
    if (parts.size() == 1 && !scenario_key) bad(o, "expected SECTION.KEY=VALUE, e.g. " + s + ".KEY=VALUE");
    if (o.value.empty()) bad(o, "expected a value after '='");
    // YAML reads these as null, which every reader would then take as "key absent": the default.
    for (const char* null : {"~", "null", "Null", "NULL"})
      if (o.value == null) bad(o, "expected a value, got '" + o.value + "' (YAML's null); to keep the default, leave the --set out");
  }
}

void apply_overrides(YAML::Node root, const std::string& section, const std::vector<Override>& overrides,
                     Source& src) {
  for (const auto& o : overrides) {
    const auto parts = split_path(o.path);
    const std::string s = section_of(o.path);
    const bool scenario_level = s == "workload" || s == "serving" || s == "outputs" || std::ranges::count(kScenarioKeys, s);
    if (section.empty() ? !scenario_level : s != section) continue;
    src.labels[o.path] = "--set " + o.path;
    // Parts are read from their own document: skip the section name; the scenario keeps it.
    write(root, parts, section.empty() ? 0 : 1, parse_value(o), o);
  }
}

}  // namespace tpsim::spec_detail
