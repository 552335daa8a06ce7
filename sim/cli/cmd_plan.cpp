// Placeholder until the stage behind `tpsim plan` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_plan(CLI::App& app) {
  auto* cmd = app.add_subcommand("plan", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
