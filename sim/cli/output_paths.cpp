// Output path checks (output_paths.hpp).
#include "cli/output_paths.hpp"

#include <unistd.h>

#include <filesystem>

#include "tpsim/spec.hpp"

namespace tpsim::cli {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void refuse(const std::string& flag, const std::string& problem) { throw InputError("", 0, 0, flag, problem); }

// The folder `path` would be created in: it must exist, be a folder and be writable.
void check_parent(const std::string& flag, const fs::path& path) {
  const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (!fs::exists(parent, ec)) refuse(flag, "folder '" + parent.string() + "' does not exist (for '" + path.string() + "')");
  if (!fs::is_directory(parent, ec)) refuse(flag, "'" + parent.string() + "' is not a folder (for '" + path.string() + "')");
  if (access(parent.c_str(), W_OK) != 0) refuse(flag, "folder '" + parent.string() + "' is not writable");
}

}  // namespace

void check_output_file(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  const fs::path p(path);
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (fs::is_directory(st)) refuse(flag, "'" + path + "' is a folder; expected a file path");
  if (fs::exists(st) && access(p.c_str(), W_OK) != 0) refuse(flag, "'" + path + "' is not writable");
  check_parent(flag, p);
}

void check_output_folder(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  const fs::path p(path);
  std::error_code ec;
  if (fs::exists(p, ec)) {
    if (!fs::is_directory(p, ec)) refuse(flag, "'" + path + "' is not a folder");
    if (access(p.c_str(), W_OK) != 0) refuse(flag, "folder '" + path + "' is not writable");
    return;
  }
  check_parent(flag, p);
}

OutputFiles checked_outputs(const OutputFiles& flags, const OutputSpec& scenario, const std::string& trace_flag) {
  auto pick = [](const std::string& flag, const std::string& from_yaml) { return flag.empty() ? from_yaml : flag; };
  const OutputFiles out{pick(flags.json, scenario.json), pick(flags.csv, scenario.csv), pick(flags.trace, scenario.trace),
                        pick(flags.html, scenario.html)};
  check_output_file("--json", out.json);
  check_output_file(trace_flag, out.trace);
  check_output_file("--html", out.html);
  check_output_folder("--csv", out.csv);
  return out;
}

}  // namespace tpsim::cli
