// Where an installed tpsim finds its presets: $TPSIM_DATA_DIR, then <bin>/../share/tpsim (the
// install() layout), then the source tree. Checked on a temporary folder laid out like an install
// prefix and a source tree, without running `cmake --install` (too slow for the suite).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "spec/presets.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp dir, removed at the end of the test case.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("tpsim-install-test-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void touch(const fs::path& file) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << "# test\n";
}

}  // namespace

TEST_CASE("presets: TPSIM_DATA_DIR, then <bin>/../share/tpsim, then the source tree") {
  TempDir tmp;
  const fs::path prefix = tmp.path / "prefix", src = tmp.path / "src", env = tmp.path / "env";
  touch(prefix / "bin" / "tpsim");
  touch(prefix / "share" / "tpsim" / "topologies" / "both.yaml");
  touch(prefix / "share" / "tpsim" / "topologies" / "installed-only.yaml");
  touch(src / "topologies" / "both.yaml");
  touch(src / "topologies" / "source-only.yaml");
  touch(env / "topologies" / "both.yaml");
  const std::string exe = (prefix / "bin" / "tpsim").string();
  const fs::path share = fs::weakly_canonical(prefix / "share" / "tpsim");

  SUBCASE("an installed binary: its share/tpsim first, the source tree after") {
    const auto dirs = preset_search_dirs(nullptr, exe, src.string());
    REQUIRE(dirs.size() == 2);
    CHECK(fs::equivalent(dirs[0], share));
    CHECK(dirs[1] == src.string());
    CHECK(fs::equivalent(find_preset_file("topologies", "both", dirs), share / "topologies" / "both.yaml"));
    CHECK(fs::equivalent(find_preset_file("topologies", "installed-only", dirs),
                         share / "topologies" / "installed-only.yaml"));
    CHECK(find_preset_file("topologies", "source-only", dirs) == (src / "topologies" / "source-only.yaml").string());
    CHECK(find_preset_file("topologies", "missing", dirs).empty());
    CHECK(find_preset_file("models", "both", dirs).empty());   // the folder matters, not only the name
  }
  SUBCASE("TPSIM_DATA_DIR comes first; an empty value counts as unset") {
    const auto dirs = preset_search_dirs(env.c_str(), exe, src.string());
    REQUIRE(dirs.size() == 3);
    CHECK(dirs[0] == env.string());
    CHECK(find_preset_file("topologies", "both", dirs) == (env / "topologies" / "both.yaml").string());
    CHECK(fs::equivalent(find_preset_file("topologies", "installed-only", dirs),
                         share / "topologies" / "installed-only.yaml"));
    CHECK(preset_search_dirs("", exe, src.string()).size() == 2);
  }
  SUBCASE("a binary in a build folder (no share/tpsim beside it) uses the source tree") {
    touch(tmp.path / "build" / "tpsim");
    const auto dirs = preset_search_dirs(nullptr, (tmp.path / "build" / "tpsim").string(), src.string());
    REQUIRE(dirs.size() == 1);
    CHECK(dirs[0] == src.string());
    CHECK(find_preset_file("topologies", "both", dirs) == (src / "topologies" / "both.yaml").string());
    CHECK(preset_search_dirs(nullptr, "", src.string()) == dirs);   // /proc/self/exe unreadable
  }
}

TEST_CASE("this test binary, in the build folder, finds the presets of the source tree") {
  const auto dirs = preset_search_dirs();
  REQUIRE_FALSE(dirs.empty());
  CHECK(dirs.back() == TPSIM_SOURCE_DIR);
  CHECK(data_dir() == dirs.front());
  CHECK_FALSE(find_preset_file("topologies", "dgx-h100", dirs).empty());
  CHECK_NOTHROW(load_topology("dgx-h100"));
}
