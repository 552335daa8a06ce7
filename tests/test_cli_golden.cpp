// The CLI as a user runs it: golden outputs (like SimGrid's .tesh files, they document the tool and
// catch any drift in its tables) and the exit-status contract 0 ok / 1 verification failed / 2 bad input.
#include <doctest/doctest.h>

#include "cli_runner.hpp"

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <filesystem>
#include <regex>
#include <cstdlib>
#include <string>
#include <sys/wait.h>

namespace {

Output run_cli(const std::string& args) { return run_shell(std::string(TPSIM_BINARY) + " " + args); }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs one line of tests/data/golden/cases.txt as scripts/regen-golden.sh does: sh, $TPSIM the
// binary, $TMP a fresh folder; the transcript is the output without trailing newlines, then the
// exit status.
std::string transcript(const std::string& command) {
  char dir[] = "/tmp/tpsim-golden-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string quoted = "'" + std::regex_replace(command, std::regex("'"), "'\\''") + "'";
  const Output o = run_shell("TPSIM='" + std::string(TPSIM_BINARY) + "' TMP='" + dir + "' sh -c " + quoted);
  std::filesystem::remove_all(dir);
  std::string out = o.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  // Paths under the checkout read <repo>, as scripts/regen-golden.sh writes them.
  const std::string repo = std::filesystem::path(TPSIM_TEST_DATA).parent_path().parent_path().string();
  for (size_t at; (at = out.find(repo)) != std::string::npos;) out.replace(at, repo.size(), "<repo>");
  return out + "\n[exit " + std::to_string(o.status) + "]\n";
}

}  // namespace

TEST_CASE("every example and subcommand prints its golden transcript") {
  std::ifstream cases(std::string(TPSIM_TEST_DATA) + "/golden/cases.txt");
  REQUIRE(cases.good());
  int checked = 0;
  for (std::string line; std::getline(cases, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(": ");
    REQUIRE(colon != std::string::npos);
    const std::string name = line.substr(0, colon), command = line.substr(colon + 2);
    INFO("golden " << name << " (regenerate with scripts/regen-golden.sh and review the diff)");
    CHECK(transcript(command) == read_file(std::string(TPSIM_TEST_DATA) + "/golden/" + name + ".txt"));
    ++checked;
  }
  CHECK(checked >= 20);
}

TEST_CASE("exit status: 0 for a good run, 2 with one line for bad input, 1 for a wrong plan") {
  CHECK(run_cli("--version").out == "tpsim 0.1.0\n");

  const Output bad = run_cli("run --set plan.tp=3 --numerics off");
  CHECK(bad.status == 2);
  CHECK(bad.out == "tpsim: error: --set plan.tp: tp 3 does not divide model.heads 32 (model 'llama2-7b')\n");

  const Output typo = run_cli("run --set plan.tpp=2");
  CHECK(typo.status == 2);
  CHECK(typo.out == "tpsim: error: --set plan.tpp: unknown key 'tpp' (did you mean 'tp'?)\n");

  // Megatron's row-parallel fc2 without its all-reduce: every rank holds a partial sum.
  const Output wrong = run_cli("verify --set model.layers=1 --set plan.mappings.mlp.fc2.reduce_output=false");
  CHECK(wrong.status == 1);
  CHECK(wrong.out.find("layer0.mlp.fc2") != std::string::npos);

  const Output ok = run_cli("verify --set model.layers=1");
  CHECK(ok.status == 0);
}
