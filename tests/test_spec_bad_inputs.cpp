// The bad-input corpus: every file in tests/data/bad/ is one case and says in its header comment how
// to load it and which error it must give, so the data and the expectation sit side by side:
//   # load: scenario | topology | model | plan | file   (default scenario; file = validate_file)
//   # ref: PATH          load this reference instead of the case file ("default" = embedded scenario)
//   # set: SECTION.KEY=VALUE               (repeatable; split at the first '=' like the CLI)
//   # topology-flag: / model-flag: / plan-flag: REF        (-t / -m / -p)
//   # expect-file: self | none | SUBSTRING  (default self: the case file's path)
//   # expect-at: LINE:COLUMN | none
//   # expect-key: KEY
//   # expect: SUBSTRING of the problem     (repeatable)
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tpsim/spec.hpp"

using namespace tpsim;
namespace fs = std::filesystem;

namespace {

struct Case {
  std::string path, load = "scenario", ref, expect_file = "self", expect_at, expect_key;
  std::vector<Override> sets;
  std::string topology_flag, model_flag, plan_flag;
  std::vector<std::string> expect;
};

Case read_case(const fs::path& path) {
  Case c;
  c.path = path.string();
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# ", 0) != 0) continue;
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(2, colon - 2), value = line.substr(colon + 2);
    if (key == "load") c.load = value;
    else if (key == "ref") c.ref = value;
    else if (key == "set") {
      const auto eq = value.find('=');
      c.sets.push_back(eq == std::string::npos ? Override{value, ""} : Override{value.substr(0, eq), value.substr(eq + 1)});
    } else if (key == "topology-flag") c.topology_flag = value;
    else if (key == "model-flag") c.model_flag = value;
    else if (key == "plan-flag") c.plan_flag = value;
    else if (key == "expect-file") c.expect_file = value;
    else if (key == "expect-at") c.expect_at = value;
    else if (key == "expect-key") c.expect_key = value;
    else if (key == "expect") c.expect.push_back(value);
  }
  return c;
}

void run(const Case& c) {
  const std::string target =
      c.ref.empty() ? c.path : c.ref == "default" ? "" : (fs::path(c.path).parent_path() / c.ref).string();
  if (c.load == "topology") load_topology(target, c.sets);
  else if (c.load == "model") load_model(target, c.sets);
  else if (c.load == "plan") load_plan(target, c.sets);
  else if (c.load == "file") validate_file(target);
  else load_scenario({target, c.topology_flag, c.model_flag, c.plan_flag, c.sets});
}

}  // namespace

TEST_CASE("every bad input gives its one clear error") {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(std::string(TPSIM_TEST_DATA) + "/bad"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::ranges::sort(files);
  CHECK(files.size() >= 30);
  for (const auto& f : files) {
    const Case c = read_case(f);
    CAPTURE(c.path);
    REQUIRE_MESSAGE((!c.expect_key.empty() || !c.expect.empty()), "case has no expectation");
    try {
      run(c);
      FAIL_CHECK("no error for " << c.path);
    } catch (const InputError& e) {
      const std::string message = e.what();
      CAPTURE(message);
      if (std::getenv("SHOW")) MESSAGE(fs::path(c.path).filename().string() << " => " << message);
      if (c.expect_file == "self") CHECK(e.file == c.path);
      else if (c.expect_file == "none") CHECK(e.file.empty());
      else CHECK(e.file.find(c.expect_file) != std::string::npos);
      if (c.expect_at == "none") CHECK((e.line == 0 && e.column == 0));
      else if (!c.expect_at.empty()) CHECK(std::to_string(e.line) + ":" + std::to_string(e.column) == c.expect_at);
      if (!c.expect_key.empty()) CHECK(e.key == c.expect_key);
      for (const auto& piece : c.expect) CHECK_MESSAGE(e.problem.find(piece) != std::string::npos, "missing: " << piece);
      // what() is the one line the CLI prints: file:line:col: key: problem.
      CHECK(std::string(e.what()).find(e.problem) != std::string::npos);
    } catch (const std::exception& e) {
      FAIL_CHECK("not an InputError: " << e.what());
    }
  }
}

TEST_CASE("an InputError formats as file:line:col: key: problem") {
  CHECK(std::string(InputError("t.yaml", 12, 5, "topology.intra.bandwidth", "expected x").what()) ==
        "t.yaml:12:5: topology.intra.bandwidth: expected x");
  CHECK(std::string(InputError("", 0, 0, "--set plan.tp", "expected y").what()) == "--set plan.tp: expected y");
  CHECK(std::string(InputError("t.yaml", 0, 0, "", "no such file").what()) == "t.yaml: no such file");
}
