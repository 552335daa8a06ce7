// Output paths checked before any work starts: a result is never computed and then lost to a
// missing folder, a path naming a folder, a device or an unwritable place.
#pragma once

#include <string>

#include "tpsim/spec.hpp"

namespace tpsim::cli {

// `path` (given with `flag`) can be written as a file: its folder exists and is writable and it is
// not itself a folder (a device such as /dev/null passes; a failed write is caught when it
// happens). Throws InputError; "" passes.
void check_output_file(const std::string& flag, const std::string& path);
// The same for a folder of outputs: it is a folder or can be created in an existing one.
void check_output_folder(const std::string& flag, const std::string& path);

// A command's output files: each flag given, else the scenario's outputs section, every one checked
// (as above) before any work starts. `trace_flag` names the flag that writes outputs.trace
// ("--trace" for run, "--perfetto" for serve, whose --trace reads a request trace).
struct OutputFiles {
  std::string json, csv, trace, html;
};
OutputFiles checked_outputs(const OutputFiles& flags, const OutputSpec& scenario, const std::string& trace_flag);

}  // namespace tpsim::cli
