// Placeholder until the end-to-end run lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
