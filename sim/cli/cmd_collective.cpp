// Placeholder until the stage behind `tpsim collective` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_collective(CLI::App& app) {
  auto* cmd = app.add_subcommand("collective", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
