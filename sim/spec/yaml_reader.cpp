// The located YAML reader behind every loader: typed getters, strict keys, did-you-mean hints.
#include "spec/yaml_reader.hpp"

#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

namespace tpsim::spec_detail {

namespace {

// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions ("bandwdith").
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;   // farther than this: no hint
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (word.size() >= 3 && (starts_with(c, word) || starts_with(word, c))) d = std::min<size_t>(d, 1);
    if (d < best_distance) best = c, best_distance = d;   // first of equals wins: stable hints
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string n = nearest(word, candidates);
  return n.empty() ? "" : " (did you mean '" + n + "'?)";
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

std::string quantity_example(const std::string& kind) {
  if (kind == "bandwidth") return "a bandwidth like '450 GB/s'";
  if (kind == "time") return "a time like '1.5 us'";
  if (kind == "bytes") return "a size like '80 GB'";
  if (kind == "flops") return "a rate like '989 TFLOP/s'";
  return "a number";
}

std::string shown(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  // A long or multi-line value is not echoed: a path given for the wrong thing (a model of
  // /etc/passwd) would print another file's content into the error.
  const std::string& s = node.Scalar();
  const bool printable = std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
  if (s.size() > 64 || !printable) return "a text of " + std::to_string(s.size()) + " characters";
  return "'" + s + "'";
}

std::string label_for(const Source& src, const std::string& key) {
  for (const auto& [path, label] : src.labels)
    if (path == key || starts_with(key, path + ".")) return label;
  return "";
}

void fail_at(const Source& src, const YAML::Node& node, const std::string& key, const std::string& problem) {
  const std::string label = label_for(src, key);
  if (!label.empty()) throw InputError("", 0, 0, label, problem);
  const YAML::Mark mark = node.IsDefined() ? node.Mark() : YAML::Mark::null_mark();
  if (mark.is_null()) throw InputError(src.file, 0, 0, key, problem);
  throw InputError(src.file, mark.line + 1, mark.column + 1, key, problem);
}

// ---------------------------------------------------------------------------------------------
Map::Map(const Source& src, YAML::Node node, std::string path) : src_(&src), node_(node), path_(std::move(path)) {
  if (!node_.IsMap())
    fail_at(src, node_, path_, std::string("expected a mapping of keys") + (path_.empty() ? " at the top level" : "") +
                                   ", got " + shown(node_));
}

std::string Map::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

void Map::fail(const std::string& key, const std::string& problem) const {
  const YAML::Node v = std::as_const(node_)[key];
  fail_at(*src_, v.IsDefined() ? v : node_, key_path(key), problem);
}

void Map::fail_here(const std::string& problem) const { fail_at(*src_, node_, path_, problem); }

void Map::only(std::initializer_list<const char*> keys) const {
  const std::vector<std::string> allowed(keys.begin(), keys.end());
  std::set<std::string> seen;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) fail_at(*src_, kv.first, path_, "keys must be plain names, got " + shown(kv.first));
    const std::string k = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      const std::string hint = nearest(k, allowed);
      const std::string problem =
          "unknown key '" + k + "'" + (hint.empty() ? "; expected one of: " + join(allowed) : " (did you mean '" + hint + "'?)");
      // A --set that wrote below an unknown key created it: blame the flag.
      for (const auto& [path, label] : src_->labels)
        if (starts_with(path, key_path(k) + ".")) throw InputError("", 0, 0, label, problem);
      fail_at(*src_, kv.first, key_path(k), problem);
    }
    if (!seen.insert(k).second) fail_at(*src_, kv.first, key_path(k), "duplicate key '" + k + "'");
  }
}

void rename_aliases(const Map& m, std::initializer_list<std::pair<const char*, const char*>> alias_to_key) {
  if (!m.yaml().IsMap()) return;   // Map::only reports it
  YAML::Node node = m.yaml();      // a handle: renaming edits the document being read
  for (const auto& [alias, key] : alias_to_key) {
    if (!node[alias].IsDefined()) continue;
    // "moe.experts": the key sits in a sub-mapping, made when the file has none.
    const std::string target = key;
    const size_t dot = target.find('.');
    const std::string section = dot == std::string::npos ? "" : target.substr(0, dot);
    const std::string leaf = dot == std::string::npos ? target : target.substr(dot + 1);
    if (!section.empty()) {
      const YAML::Node sub = node[section];
      if (sub.IsDefined() && !sub.IsNull() && !sub.IsMap())
        fail_at(m.source(), sub, m.key_path(section), "expected a mapping of keys, got " + shown(sub));
      if (!sub.IsDefined() || sub.IsNull()) node[section] = YAML::Node(YAML::NodeType::Map);
    }
    YAML::Node parent = section.empty() ? node : node[section];   // a handle, assigned once
    if (parent[leaf].IsDefined())
      fail_at(m.source(), node[alias], m.key_path(alias),
              "both '" + target + "' and its Megatron-LM name '" + alias + "' are set; keep one");
    const YAML::Node value = node[alias];
    node.remove(alias);
    parent[leaf] = value;
  }
}

bool Map::has(const std::string& key) const {
  const YAML::Node v = std::as_const(node_)[key];
  return v.IsDefined() && !v.IsNull();
}

void Map::record(const std::string& key, const YAML::Node& at) const {
  if (!src_->locations) return;
  const std::string full = key_path(key);
  Where w{src_->file, 0, 0, label_for(*src_, full)};
  const YAML::Mark mark = at.Mark();
  if (w.label.empty() && !mark.is_null()) w.line = mark.line + 1, w.column = mark.column + 1;
  (*src_->locations)[full] = w;
}

YAML::Node Map::value(const std::string& key) const {
  const YAML::Node v = std::as_const(node_)[key];
  if (!v.IsDefined() || v.IsNull()) fail_here("missing required key '" + key + "'");
  record(key, v);
  return v;
}

Map Map::map(const std::string& key) const { return Map(*src_, value(key), key_path(key)); }

std::string Map::string(const std::string& key, std::optional<std::string> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const YAML::Node v = value(key);
  if (!v.IsScalar()) fail(key, "expected a string, got " + shown(v));
  return v.Scalar();
}

int64_t Map::integer(const std::string& key, std::optional<int64_t> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const YAML::Node v = value(key);
  if (!v.IsScalar()) fail(key, "expected an integer, got " + shown(v));
  const std::string& s = v.Scalar();
  int64_t out = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(begin, s.data() + s.size(), out);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) fail(key, "expected an integer, got '" + s + "'");
  // YAML 1.1 reads 010 as octal 8, YAML 1.2 as decimal 10: neither reading can be trusted.
  const char* digits = begin + (*begin == '-' ? 1 : 0);
  if (end - digits > 1 && *digits == '0')
    fail(key, "expected an integer without leading zeros, got '" + s + "' (octal in YAML 1.1, decimal in 1.2)");
  return out;
}

int64_t Map::integer_up_to(const std::string& key, int64_t limit, const char* what, std::optional<int64_t> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const int64_t v = integer(key);
  if (v > limit || v < -limit)
    fail(key, "expected at most " + std::to_string(limit) + " (" + what + "), got " + std::to_string(v));
  return v;
}

double Map::quantity(const std::string& key, const std::string& kind, std::optional<double> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const YAML::Node v = value(key);
  if (!v.IsScalar()) fail(key, "expected " + quantity_example(kind) + ", got " + shown(v));
  try {
    return parse_quantity(v.Scalar(), kind);
  } catch (const std::out_of_range& e) {
    fail(key, "expected " + quantity_example(kind) + ": " + e.what());
  } catch (const std::invalid_argument&) {
    fail(key, "expected " + quantity_example(kind) + ", got '" + v.Scalar() + "'");
  }
}

bool Map::boolean(const std::string& key, std::optional<bool> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const YAML::Node v = value(key);
  const std::string s = v.IsScalar() ? v.Scalar() : "";
  if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "False" || s == "no" || s == "off") return false;
  fail(key, "expected true or false, got " + shown(v));
}

std::string Map::choice(const std::string& key, const std::vector<std::string>& allowed,
                        std::optional<std::string> fallback) const {
  if (fallback && !has(key)) return *fallback;
  const YAML::Node v = value(key);
  if (v.IsScalar() && std::find(allowed.begin(), allowed.end(), v.Scalar()) != allowed.end()) return v.Scalar();
  const std::string got = v.IsScalar() ? "'" + v.Scalar() + "'" : shown(v);
  fail(key, "expected one of " + join(allowed, " | ") + ", got " + got +
                (v.IsScalar() ? did_you_mean(v.Scalar(), allowed) : ""));
}

// ---------------------------------------------------------------------------------------------
namespace {

// A spec is one YAML document. Where each document's first node starts; parsing stops after a few documents. yaml-cpp 0.7's
// LoadAll never ends on some malformed streams ("[4], [5]": the parser reports a document for the
// stray ',' again and again without consuming it, allocating a node each time; fixed upstream in
// yaml-cpp PR #1319), so documents are counted here with a cap and only the first is loaded.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark&) override { fresh_ = true; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override { node(m); }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& m) {
    if (fresh_) starts.push_back(m);
    fresh_ = false;
  }
  bool fresh_ = false;
};

std::vector<YAML::Mark> document_starts(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts handler;
  for (int documents = 0; documents < 2 && parser.HandleNextDocument(handler); ++documents) {
  }
  return handler.starts;
}

// The file's one document. A file that is not YAML at all (a CMakeLists.txt given as a model) may
// hold '---' lines too: its first document not being a mapping is the clearer message, so the
// caller reports that.
YAML::Node single_document(const std::string& text, const std::string& file) {
  const std::vector<YAML::Mark> starts = document_starts(text);
  YAML::Node first = YAML::Load(text);
  if (starts.size() > 1 && first.IsMap())
    throw InputError(file, starts[1].line + 1, starts[1].column + 1, "",
                     "holds a second YAML document (after '---', or text after the first one ends); a spec file "
                     "holds one");
  return first;
}

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not valid UTF-8 (overlong forms,
// surrogates and code points past U+10FFFF included).
size_t utf8_length(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = byte(i);
  if (c < 0x80) return 1;
  const size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c < 0xF0 ? 3 : 0) : c >= 0xC2 ? 2 : 0;
  if (n == 0) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  const unsigned c1 = byte(i + 1);
  if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90))
    return 0;
  return n;
}

// What the YAML parser would misreport: yaml-cpp keeps a NUL or an invalid UTF-8 byte inside a
// value (the name 'a\0b' printed as 'a'), and reports a tab in the indentation as "illegal map
// value". Checked on the raw text first, at its line and column.
void check_text(const std::string& text, const std::string& file) {
  int line = 1, column = 1;
  bool indent = true;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const auto fail = [&](const std::string& problem) { throw InputError(file, line, column, "", problem); };
    if (c == 0) fail("holds a NUL byte: a spec file is YAML text, not binary data");
    if (c == '\t' && indent) fail("a tab in the indentation: YAML indents with spaces");
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      fail("holds the control character " + std::to_string(c) + ": a spec file is YAML text, not binary data");
    const size_t n = utf8_length(text, i);
    if (n == 0) fail("is not valid UTF-8 (byte " + std::to_string(c) + "): YAML text is UTF-8");
    if (c == '\n') line += 1, column = 1, indent = true;
    else column += 1, indent = indent && c == ' ';
    i += n;
  }
}

}  // namespace

YAML::Node parse_text(const std::string& text, const std::string& display_name) {
  check_text(text, display_name);
  try {
    return single_document(text, display_name);
  } catch (const YAML::DeepRecursion& e) {   // yaml-cpp reports it as "bad file"
    throw InputError(display_name, e.mark.line + 1, e.mark.column + 1, "",
                     "nested too deeply (the YAML parser stops at 2000 levels; a spec nests a few)");
  } catch (const YAML::ParserException& e) {
    // yaml-cpp stops reading a plain key after 1024 characters and calls what follows an illegal value.
    const bool long_key = e.msg == "illegal map value" && e.mark.column >= 1024;
    throw InputError(display_name, e.mark.line + 1, e.mark.column + 1, "",
                     "YAML syntax error: " + e.msg + (long_key ? " (a key longer than 1024 characters?)" : ""));
  }
}

std::string unreadable_file(const std::string& path) {
  namespace fs = std::filesystem;
  constexpr std::uintmax_t kMaxSpecBytes = 16u << 20;   // the largest preset is a few KiB
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec == std::errc::too_many_symbolic_link_levels) return "is a symbolic link loop";
  if (!fs::exists(st)) return "no such file";
  if (fs::is_directory(st)) return "is a folder, not a YAML file";
  if (!fs::is_regular_file(st)) return "is not a regular file (a device, FIFO or socket)";
  if (access(path.c_str(), R_OK) != 0) return "is not readable (permission denied)";
  if (fs::file_size(path, ec) > kMaxSpecBytes) return "is larger than 16 MiB, too large for a spec file";
  return "";
}

YAML::Node parse_file(const std::string& path) {
  if (const std::string why = unreadable_file(path); !why.empty()) throw InputError(path, 0, 0, "", why);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!(text << in.rdbuf()) && in.peek() != std::ifstream::traits_type::eof())
    throw InputError(path, 0, 0, "", "cannot read the file");
  return parse_text(text.str(), path);
}

}  // namespace tpsim::spec_detail
