// The resumable result file under kill -9: a sweep killed at any moment (while it rewrites the file,
// appends a row, or writes the ranked file) leaves no duplicate, wrong or torn row but a cut last
// line, and the resumed sweep writes the very bytes an uninterrupted one does.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <map>
#include <random>
#include <string>

#include "plan_toy.hpp"
#include "tpsim/planner.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

// The fake evaluator, slow enough (half a millisecond a layout) that kills land mid-sweep.
LayoutResult slow_evaluate(const Scenario& s) {
  ::usleep(500);
  return fake_evaluate(s);
}

// A row without its rank, which the ranked file adds and an appended row leaves empty.
std::string unranked(const std::string& row) { return row.substr(row.find(',')); }

// Runs the sweep in a child process group and kills the whole group (the sweep and its workers)
// with SIGKILL after `delay_us`.
void run_and_kill(const SweepSpec& spec, const SweepOptions& options, int delay_us) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setpgid(0, 0);
    try {
      run_sweep(spec, options, slow_evaluate);
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  ::setpgid(pid, pid);   // as the child does: whichever runs first, the group exists before the kill
  ::usleep(static_cast<useconds_t>(delay_us));
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CHECK((WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0)));   // killed, or done first
}

// What a killed sweep leaves: rows of the reference (each layout once, the same numbers), and at
// most a cut last line. True when the kill landed mid-sweep (some rows, not all, or a cut line).
bool check_leftover(const std::string& path, const std::map<std::string, std::string>& reference) {
  const CsvFile file = read_csv(path);   // throws on a torn or wrong row in the middle
  std::map<std::string, int> seen;
  for (const CsvRecord& rec : file.records) {
    const std::string id = layout_id(rec.result.layout);
    CHECK(++seen[id] == 1);
    REQUIRE(reference.count(id));
    CHECK(unranked(csv_row(rec.result, 0, rec.tag)) == reference.at(id));
  }
  return file.torn_line > 0 || (!file.records.empty() && file.records.size() < reference.size());
}

}  // namespace

TEST_CASE("kill -9 at any moment, then resume: no duplicate, lost or torn row; the uninterrupted run's bytes") {
  const SweepSpec spec = toy_spec();
  SweepOptions options;
  options.jobs = 2;
  options.csv = scratch("uninterrupted.csv").string();
  const auto start = std::chrono::steady_clock::now();
  run_sweep(spec, options, slow_evaluate);
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
  const std::string expected = read_text(options.csv);
  std::map<std::string, std::string> reference;   // layout id -> its row without the rank
  const CsvFile whole = read_csv(options.csv);
  for (const CsvRecord& rec : whole.records) reference[layout_id(rec.result.layout)] = unranked(csv_row(rec.result, 0, rec.tag));
  REQUIRE(reference.size() == 92);

  // Fixed seed: the same delays on every run, as fractions of the uninterrupted run's time, so on a
  // fast machine or a slow one the kills spread from before the first row to after the last.
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> delay(0, static_cast<int>(took.count() * 6 / 5));
  int mid_sweep = 0;
  for (int trial = 0; trial < 12; ++trial) {
    options.csv = scratch("killed.csv").string();
    // Kill the sweep, then kill its resume too, then let a resume finish.
    for (int kill = 0; kill < 2; ++kill) {
      const int us = delay(rng);
      INFO("trial " << trial << ", kill " << kill << " after " << us << " us");
      run_and_kill(spec, options, us);
      mid_sweep += check_leftover(options.csv, reference);
    }
    const SweepOutcome resumed = run_sweep(spec, options, slow_evaluate);
    CHECK(resumed.resumed + resumed.evaluated == 92);
    CHECK(read_text(options.csv) == expected);
  }
  MESSAGE(mid_sweep << " of 24 kills landed mid-sweep (the uninterrupted sweep took " << took.count() << " us)");
  CHECK(mid_sweep > 0);
}
