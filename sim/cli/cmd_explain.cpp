// Placeholder until the stage behind `tpsim explain` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_explain(CLI::App& app) {
  auto* cmd = app.add_subcommand("explain", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
