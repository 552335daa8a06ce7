// Whole-file outputs written so that no reader ever sees half of one.
#pragma once

#include <string>

namespace tpsim {

// Writes `content` to `path`: into a temporary file beside it, then renamed over it, so a crash or
// a full disk leaves the old file (or none), never a torn one. A device or FIFO (/dev/null,
// /dev/stdout) is written directly; through a symlink, the file it names is replaced and the link
// stays. A failed write throws InputError naming `flag`.
void write_file_atomically(const std::string& flag, const std::string& path, const std::string& content);

}  // namespace tpsim
