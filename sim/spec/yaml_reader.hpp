// Reading YAML into the spec structs with errors that say where. Every value is read through a Map
// that knows its file, its dotted key path ("topology.intra.bandwidth") and which paths a --set
// override wrote, so a bad value is reported at its line and column, or as "--set KEY" when it came
// from the command line. Private to the spec stage.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tpsim/spec.hpp"

namespace tpsim::spec_detail {

// Where a key was written: a file position, or (label non-empty) a command-line flag.
struct Where {
  std::string file;
  int line = 0;
  int column = 0;
  std::string label;   // "--set plan.tp", "--topology"; "" = from the file
};

// Every key read while loading, by dotted path, so checks made after loading still point at the
// line that set the value.
using Locations = std::map<std::string, Where>;

// One YAML document being read.
struct Source {
  std::string file;                            // for messages; "" = command line
  std::map<std::string, std::string> labels;   // dotted path written by a flag -> the flag text
  Locations* locations = nullptr;              // filled while reading; may be null
};

// The error for `key` whose value sits at `node` (its mark gives line:column when it has one).
[[noreturn]] void fail_at(const Source& src, const YAML::Node& node, const std::string& key,
                          const std::string& problem);

// The flag label covering `key` (the key itself or one of its parents was set by a flag), or "".
std::string label_for(const Source& src, const std::string& key);

// A YAML mapping at a dotted key path. Readers take an optional fallback: without one the key is
// required.
class Map {
 public:
  Map(const Source& src, YAML::Node node, std::string path);

  // Unknown and duplicate keys are errors; an unknown key gets the nearest allowed one as a hint.
  void only(std::initializer_list<const char*> keys) const;
  bool has(const std::string& key) const;
  std::string key_path(const std::string& key) const;
  const std::string& path() const { return path_; }
  const YAML::Node& yaml() const { return node_; }
  const Source& source() const { return *src_; }
  YAML::Node value(const std::string& key) const;   // required, recorded

  Map map(const std::string& key) const;
  std::string string(const std::string& key, std::optional<std::string> fallback = std::nullopt) const;
  int64_t integer(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const;
  // An integer of magnitude at most `limit` (spec/limits.hpp says why each limit is plausible):
  // refused at the key before any product of sizes can overflow. `what` names the quantity.
  int64_t integer_up_to(const std::string& key, int64_t limit, const char* what,
                        std::optional<int64_t> fallback = std::nullopt) const;
  double quantity(const std::string& key, const std::string& kind,
                  std::optional<double> fallback = std::nullopt) const;
  bool boolean(const std::string& key, std::optional<bool> fallback = std::nullopt) const;
  // One of a fixed set of names; an unknown name gets a did-you-mean.
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     std::optional<std::string> fallback = std::nullopt) const;

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;   // at the value
  [[noreturn]] void fail_here(const std::string& problem) const;                       // at this map

 private:
  void record(const std::string& key, const YAML::Node& at) const;
  const Source* src_;
  YAML::Node node_;
  std::string path_;
};

// Another program's names for the map's keys (Megatron-LM's tensor_model_parallel_size for tp,
// ...): each alias written is moved onto its key, keeping the value's line:column, so the rest of
// the reader sees one spelling; writing both is an error at the alias. A dotted key ("moe.experts")
// moves the alias into that sub-mapping, made if the file has none.
void rename_aliases(const Map& m, std::initializer_list<std::pair<const char*, const char*>> alias_to_key);

// Text for "got '...'" messages: the scalar, or "a mapping" / "a list" / "nothing".
std::string shown(const YAML::Node& node);
// The candidate closest to `word` by edit distance, or "" when none is close.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);
// " (did you mean 'x'?)", or "" when nothing is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");
// "a bandwidth like '450 GB/s'" for each unit kind of parse_quantity.
std::string quantity_example(const std::string& kind);

// Parsing: a missing file or a syntax error becomes an InputError naming the file (and the parser's
// line and column).
YAML::Node parse_file(const std::string& path);
// Why `path` cannot be read as a spec file ("no such file", "is a folder", "is a device or FIFO",
// "is a symbolic link loop", "is not readable", "is larger than 16 MiB"), or "" when it can.
std::string unreadable_file(const std::string& path);
YAML::Node parse_text(const std::string& text, const std::string& display_name);

}  // namespace tpsim::spec_detail
