// Placeholder until the stage behind `tpsim validate` lands.
#include "cli/commands.hpp"

namespace tpsim::cli {
void register_validate(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "(not implemented yet)");
  cmd->callback([] { throw Exit{kBadInput}; });
}
}  // namespace tpsim::cli
