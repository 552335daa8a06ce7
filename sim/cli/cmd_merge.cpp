// Placeholder until the stage behind `tpsim merge` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_merge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
