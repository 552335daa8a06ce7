// Where presets live and how a reference ("dgx-h100", "my/topo.yaml", "megatron") becomes a YAML
// document. Preset names are the file stems of <dir>/<category>/*.yaml over preset_search_dirs()
// (the first folder holding a name wins); plans also have the built-ins "megatron" and "naive".
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "spec/loading.hpp"
#include "spec/presets.hpp"

namespace fs = std::filesystem;

namespace tpsim {

std::vector<std::string> preset_search_dirs(const char* env, const std::string& exe, const std::string& source_dir) {
  std::vector<std::string> dirs;
  if (env && *env) dirs.emplace_back(env);
  if (!exe.empty()) {
    // <prefix>/bin/tpsim -> <prefix>/share/tpsim, as the install() rules lay it out.
    const fs::path installed = fs::path(exe).parent_path() / ".." / "share" / "tpsim";
    std::error_code ec;
    if (fs::is_directory(installed, ec)) dirs.push_back(fs::weakly_canonical(installed, ec).string());
  }
  if (std::ranges::find(dirs, source_dir) == dirs.end()) dirs.push_back(source_dir);
  return dirs;
}

std::vector<std::string> preset_search_dirs() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return preset_search_dirs(std::getenv("TPSIM_DATA_DIR"), ec ? std::string() : exe.string(), TPSIM_SOURCE_DIR);
}

std::string find_preset_file(const std::string& folder, const std::string& name, const std::vector<std::string>& dirs) {
  for (const std::string& dir : dirs) {
    const fs::path file = fs::path(dir) / folder / (name + ".yaml");
    std::error_code ec;
    if (fs::is_regular_file(file, ec)) return file.string();
  }
  return "";
}

std::string data_dir() { return preset_search_dirs().front(); }

namespace spec_detail {

namespace {

// The built-in plans: only the preset; tp = pp = dp = 1 until the scenario or --set says more.
const std::map<std::string, std::string>& builtin_plan_yaml() {
  static const std::map<std::string, std::string> plans = {
      {"megatron", "name: megatron\npreset: megatron\n"},
      {"naive", "name: naive\npreset: naive\n"},
  };
  return plans;
}

// "scenarios" live in examples/; every other category is its own folder.
std::string category_folder(const std::string& category) {
  return category == "scenarios" ? std::string("examples") : category;
}

std::string singular(const std::string& category) {
  if (category == "topologies") return "topology";
  if (category == "scenarios" || category == "examples") return "scenario";
  return category.substr(0, category.size() - 1);   // models -> model, plans -> plan
}


}  // namespace

bool looks_like_path(const std::string& ref) {
  return ref.find('/') != std::string::npos || ref.ends_with(".yaml") || ref.ends_with(".yml") || ref.ends_with(".json");
}

std::string folder_of(const std::string& file) {
  if (file.empty()) return ".";
  const fs::path parent = fs::path(file).parent_path();
  return parent.empty() ? "." : parent.string();
}

std::string stem_of(const std::string& file) { return fs::path(file).stem().string(); }

std::optional<Document> open_reference(const std::string& category, const std::string& ref,
                                       const std::string& base_dir, std::string& problem) {
  if (ref.empty()) {
    problem = "expected a " + singular(category) + " preset name or a path, got ''";
    return std::nullopt;
  }
  if (looks_like_path(ref)) {
    fs::path p(ref);
    if (p.is_relative() && !base_dir.empty() && base_dir != ".") p = fs::path(base_dir) / p;
    if (const std::string why = unreadable_file(p.string()); !why.empty()) {
      problem = why == "no such file" ? "no such file '" + p.string() + "'" : "'" + p.string() + "' " + why;
      return std::nullopt;
    }
    return Document{p.string(), parse_file(p.string())};
  }
  if (category == "plans") {
    auto it = builtin_plan_yaml().find(ref);
    if (it != builtin_plan_yaml().end()) return Document{"", parse_text(it->second, "built-in plan " + ref)};
  }
  const auto dirs = preset_search_dirs();
  const std::string file = find_preset_file(category_folder(category), ref, dirs);
  if (file.empty()) {
    const auto names = preset_names(category);
    std::vector<std::string> searched;
    for (const std::string& dir : dirs) searched.push_back(dir + "/" + category_folder(category));
    problem = "unknown " + singular(category) + " preset '" + ref + "'" + did_you_mean(ref, names) +
              "; available: " + (names.empty() ? "none in " + join(searched) : join(names));
    return std::nullopt;
  }
  return Document{file, parse_file(file)};
}

}  // namespace spec_detail

// The names of the presets of `category` ("topologies", "models", "plans", "scenarios"), sorted.
std::vector<std::string> preset_names(const std::string& category) {
  std::vector<std::string> names;
  for (const std::string& dir : preset_search_dirs()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(dir) / spec_detail::category_folder(category), ec))
      if (e.path().extension() == ".yaml") names.push_back(e.path().stem().string());
  }
  if (category == "plans")
    for (const auto& [name, text] : spec_detail::builtin_plan_yaml()) names.push_back(name);
  std::ranges::sort(names);
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string resolve_preset(const std::string& category, const std::string& ref) {
  std::string problem;
  auto doc = spec_detail::open_reference(category, ref, ".", problem);
  if (!doc) throw InputError("", 0, 0, spec_detail::singular(category), problem);
  return doc->file.empty() ? ref : doc->file;
}

PlanSpec builtin_plan(const std::string& name) {
  if (name != "megatron" && name != "naive")
    throw InputError("", 0, 0, "plan", "unknown built-in plan '" + name + "'; available: megatron, naive");
  return load_plan(name);
}

}  // namespace tpsim
