// Where preset files are searched for. Private to the spec stage (and its tests): the rest of the
// program calls data_dir(), resolve_preset() and the loaders.
#pragma once

#include <string>
#include <vector>

namespace tpsim {

// The folders searched for presets (each holding topologies/, models/, plans/, examples/), in
// order: $TPSIM_DATA_DIR if set and not empty; <folder of the running executable>/../share/tpsim
// if it exists (an installed tpsim); the source tree the binary was built from (TPSIM_SOURCE_DIR,
// which keeps a build folder working).
std::vector<std::string> preset_search_dirs();
// The same rule with its inputs spelled out, for tests: `env` is $TPSIM_DATA_DIR (nullptr or ""
// when unset), `exe` the running executable's path ("" when unknown), `source_dir` the source tree.
std::vector<std::string> preset_search_dirs(const char* env, const std::string& exe, const std::string& source_dir);

// The first <dir>/<folder>/<name>.yaml among `dirs` that is a regular file; "" if none is.
std::string find_preset_file(const std::string& folder, const std::string& name, const std::vector<std::string>& dirs);

// Every preset name of `category` ("topologies", "models", "plans", "scenarios") in the search dirs,
// sorted, duplicates once.
std::vector<std::string> preset_names(const std::string& category);

}  // namespace tpsim
