// Subcommands of the `tpsim` CLI. Each lives in its own cmd_<name>.cpp and registers itself on the
// app; the callback it installs returns through Exit so main() owns every exit status:
// 0 success, 1 a verification failed, 2 bad input, 70 an internal error (a bug in tpsim, not in
// the input: EX_SOFTWARE of sysexits.h).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim::cli {

enum ExitCode { kOk = 0, kVerificationFailed = 1, kBadInput = 2, kInternalError = 70 };

// Thrown by a subcommand to end with a status without printing more.
struct Exit {
  int code;
};

// The options every scenario-taking subcommand shares: -t/-m/-p replacements and --set overrides.
struct ScenarioOptions {
  std::string scenario;                 // path, "" = the embedded default
  std::string topology, model, plan;    // -t, -m, -p
  std::vector<std::string> sets;        // --set SECTION.KEY=VALUE
  ScenarioRequest request() const;      // parses the --set strings (InputError on bad syntax)
};
void add_scenario_options(CLI::App& cmd, ScenarioOptions& options, bool positional_scenario = true);

// The request-stream and SLO flags `tpsim serve` and `tpsim plan --workload serving` share, each a
// --set serving.KEY said shortly, so both take the loader's path and its checks.
struct ServingStreamOptions {
  std::string rate, duration, requests, trace, seed, slo_ttft, slo_tpot;
  // Appends the given ones to `sets` as serving.KEY=VALUE; a trace is made absolute (it is relative
  // to where the command runs, not to the scenario's folder).
  void append_sets(std::vector<std::string>& sets) const;
};
void add_serving_stream_options(CLI::App& cmd, ServingStreamOptions& options);

void register_run(CLI::App& app);
void register_validate(CLI::App& app);
void register_collective(CLI::App& app);
void register_verify(CLI::App& app);
void register_explain(CLI::App& app);
void register_plan(CLI::App& app);
void register_merge(CLI::App& app);
void register_serve(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_shell(CLI::App& app);   // presets, completion, man

}  // namespace tpsim::cli
