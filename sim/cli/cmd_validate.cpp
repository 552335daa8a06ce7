// `tpsim validate FILE...`: check input files and say what they describe.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/error_format.hpp"

namespace tpsim::cli {

void register_validate(CLI::App& app) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("validate", "Check topology / model / plan / scenario YAML files and describe them");
  cmd->add_option("files", *files, "YAML files (any kind; detected from their keys)")->required();
  cmd->callback([files] {
    int failures = 0;
    for (const auto& f : *files) {
      try {
        std::printf("%s: ok\n%s\n", f.c_str(), validate_file(f).c_str());
      } catch (const InputError& e) {
        std::fprintf(stderr, "tpsim: error: %s\n", format_input_error(e).c_str());
        ++failures;
      }
    }
    if (failures) throw Exit{kBadInput};
  });
}

}  // namespace tpsim::cli
