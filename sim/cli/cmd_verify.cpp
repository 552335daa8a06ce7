// Placeholder until the stage behind `tpsim verify` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_verify(CLI::App& app) {
  auto* cmd = app.add_subcommand("verify", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
