// Output paths checked before any work starts: a result is never computed and then lost to a
// missing folder, a path naming a folder, a device or an unwritable place.
#pragma once

#include <string>

namespace tpsim::cli {

// `path` (given with `flag`) can be written as a file: its folder exists and is writable and it is
// not itself a folder (a device such as /dev/null passes; a failed write is caught when it
// happens). Throws InputError; "" passes.
void check_output_file(const std::string& flag, const std::string& path);
// The same for a folder of outputs: it is a folder or can be created in an existing one.
void check_output_folder(const std::string& flag, const std::string& path);

}  // namespace tpsim::cli
