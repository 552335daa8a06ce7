// tpsim: simulate tensor-parallel GPU clusters. main() only wires subcommands and maps errors to
// exit codes; every subcommand is in its own file.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <malloc.h>

#include <cstdio>
#include <new>
#include <stdexcept>
#include <fmt/core.h>

#include "cli/commands.hpp"
#include "cli/error_format.hpp"

namespace {

// CLI11's PositiveNumber is a Range over doubles: "--top: Value 0 not in range 0.000000 to
// 17976931348623157...(309 digits).000000". Said plainly instead: "--top: expected a positive
// number, got '0'". "" for any other message.
std::string positive_number_error(const std::string& what) {
  const std::string value_at = ": Value ", range = " not in range 0.000000 to 179769313486231570";
  const size_t v = what.find(value_at), r = what.find(range);
  if (v == std::string::npos || r == std::string::npos || r < v) return "";
  const std::string value = what.substr(v + value_at.size(), r - v - value_at.size());
  return what.substr(0, v) + ": expected a positive number, got '" + value + "'";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tpsim::cli;
  // A 1024-GPU step allocates and frees millions of small objects and SimGrid actor stacks; glibc's
  // defaults hand that memory back to the kernel and fault it in again (a tenth of the run in page
  // faults). Keep it: tpsim is a short-lived process.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  CLI::App app{"tpsim: simulate tensor-parallel GPU clusters before booking them"};
  app.set_version_flag("--version", std::string("tpsim ") + TPSIM_VERSION);
  app.require_subcommand(1);
  // -q and -v work after the subcommand too (`tpsim run x.yaml -q`): subcommands inherit this
  // and hand options they do not know to the app.
  app.fallthrough();
  int verbosity = 0;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbosity, "More log output (-vv for debug)");
  app.add_flag("-q,--quiet", quiet, "Only errors");
  app.parse_complete_callback([&] {
    spdlog::set_pattern("%^[%l]%$ %v");
    spdlog::set_level(quiet ? spdlog::level::err
                            : verbosity >= 2 ? spdlog::level::debug
                            : verbosity == 1 ? spdlog::level::info
                                             : spdlog::level::warn);
  });

  register_run(app);
  register_validate(app);
  register_collective(app);
  register_verify(app);
  register_explain(app);
  register_plan(app);
  register_merge(app);
  register_serve(app);
  register_calibrate(app);
  register_shell(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ValidationError& e) {
    if (const std::string line = positive_number_error(e.what()); !line.empty()) {
      std::fprintf(stderr, "tpsim: error: %s\n", line.c_str());
      return kBadInput;
    }
    return app.exit(e) == 0 ? kOk : kBadInput;
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kOk : kBadInput;
  } catch (const Exit& e) {
    return e.code;
  } catch (const tpsim::InputError& e) {
    std::fprintf(stderr, "tpsim: error: %s\n", format_input_error(e).c_str());
    return kBadInput;
  } catch (const std::invalid_argument& e) {   // a plan, size or name the model cannot take
    std::fprintf(stderr, "tpsim: error: %s\n", e.what());
    return kBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "tpsim: internal error: ran out of memory although the input passed its size checks; "
                         "please report it with the command line\n");
    return kInternalError;
  } catch (const std::exception& e) {   // anything else is a bug in tpsim, never the user's input
    std::fprintf(stderr, "tpsim: internal error: %s; please report it with the command line\n", e.what());
    return kInternalError;
  }
  return kOk;
}
