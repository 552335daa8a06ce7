// write_file_atomically (atomic_file.hpp).
#include "report/atomic_file.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tpsim/spec.hpp"

namespace tpsim {

namespace fs = std::filesystem;

namespace {

// Writes and flushes; false when any byte did not make it.
bool write_all(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.flush();
  return static_cast<bool>(out);
}

// Through a symlink (or a chain of them), the file it names, even one not there yet: renaming onto
// the link would replace the link.
std::string link_target(const std::string& flag, const std::string& given) {
  fs::path path = given;
  std::error_code ec;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(path, ec)); ++hops) {
    if (hops == 40) throw InputError("", 0, 0, flag, "'" + given + "' is a loop of symbolic links");
    const fs::path target = fs::read_symlink(path, ec);
    if (ec) throw InputError("", 0, 0, flag, "cannot follow the link '" + given + "': " + ec.message());
    path = target.is_absolute() ? target : path.parent_path() / target;
  }
  return path.string();
}

}  // namespace

void write_file_atomically(const std::string& flag, const std::string& given, const std::string& content) {
  std::error_code ec;
  const std::string path = link_target(flag, given);
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st)) {   // a device or FIFO: nothing to replace
    if (!write_all(path, content)) throw InputError("", 0, 0, flag, "writing '" + path + "' failed (disk full?)");
    return;
  }
  const std::string temporary = path + ".tmp-" + std::to_string(getpid());
  if (!write_all(temporary, content)) {
    fs::remove(temporary, ec);
    throw InputError("", 0, 0, flag, "writing '" + path + "' failed (disk full?); nothing was replaced");
  }
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw InputError("", 0, 0, flag, "cannot replace '" + path + "': " + ec.message());
  }
}

}  // namespace tpsim
