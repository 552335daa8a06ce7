// Writing the calibrated topology as the user's own file with the fitted values edited in, not
// re-emitted: a preset's comments say where every other constant came from, and a YAML emitter
// would drop them. yaml-cpp gives each value's line and column; the edits are made on the text,
// last position first, so earlier positions stay valid.
#include <algorithm>
#include <sstream>

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "tpsim/calibrate.hpp"

namespace tpsim {

namespace {

struct Edit {
  int line = 0;        // 0-based
  int column = -1;     // -1: insert `text` as a whole line before `line`
  size_t length = 0;   // characters replaced at `column`
  std::string text;
  std::string comment; // replaces the line's trailing comment (block style only)
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Length of the scalar written at `column` of `line`: quoted, or plain up to a comment (or, in a
// flow mapping, up to the next ',' or '}').
size_t scalar_length(const std::string& line, size_t column, bool flow) {
  if (column >= line.size()) return 0;
  const char q = line[column];
  if (q == '"' || q == '\'') {
    const size_t close = line.find(q, column + 1);
    return close == std::string::npos ? line.size() - column : close + 1 - column;
  }
  size_t end = column;
  while (end < line.size() && !(flow && (line[end] == ',' || line[end] == '}')) &&
         !(line[end] == '#' && end > column && (line[end - 1] == ' ' || line[end - 1] == '\t')))
    ++end;
  while (end > column && (line[end - 1] == ' ' || line[end - 1] == '\t')) --end;
  return end - column;
}

std::string default_text(const FittedParameter& p) {
  return p.key.find("efficiency") != std::string::npos ? fmt::format("{:g}", p.before) : fmt::format("{:g} us", p.before * 1e6);
}

}  // namespace

std::string calibrated_topology_yaml(const std::string& original_yaml, const Calibration& calibration,
                                     const std::string& header) {
  std::vector<std::string> lines = split_lines(original_yaml);
  const YAML::Node root = YAML::Load(original_yaml);
  std::vector<Edit> edits;
  std::string appended;

  if (const YAML::Node name = root["name"]; name && name.IsScalar()) {
    const std::string n = name.as<std::string>();
    const YAML::Mark m = name.Mark();
    const size_t length = scalar_length(lines[m.line], m.column, root.Style() == YAML::EmitterStyle::Flow);
    if (n.size() < 11 || n.compare(n.size() - 11, 11, "-calibrated") != 0)
      edits.push_back({m.line, m.column, length, n + "-calibrated", ""});
  }
  for (const FittedParameter& p : calibration.parameters) {
    if (!p.unfitted.empty()) continue;   // left as it was: nothing to write
    const size_t dot = p.key.find('.');
    const std::string section = p.key.substr(0, dot), key = p.key.substr(dot + 1);
    const YAML::Node parent = root[section];
    if (!parent || !parent.IsMap()) {
      appended += fmt::format("{}:\n  {}: {}   # calibrated (was the default, {})\n", section, key, p.yaml_value, default_text(p));
      continue;
    }
    const bool flow = parent.Style() == YAML::EmitterStyle::Flow;
    if (const YAML::Node value = parent[key]; value && value.IsScalar()) {
      const YAML::Mark m = value.Mark();
      const size_t length = scalar_length(lines[m.line], m.column, flow);
      const std::string was = lines[m.line].substr(m.column, length);
      edits.push_back({m.line, m.column, length, p.yaml_value, flow ? "" : fmt::format("# calibrated (was {})", was)});
    } else if (flow) {
      const YAML::Mark m = parent.Mark();   // the '{'
      edits.push_back({m.line, m.column + 1, 0, fmt::format("{}: {}, ", key, p.yaml_value), ""});
    } else {
      const YAML::Mark first = parent.begin()->first.Mark();
      edits.push_back({first.line, -1, 0,
                       fmt::format("{}{}: {}   # calibrated (was the default, {})", std::string(first.column, ' '), key,
                                   p.yaml_value, default_text(p)),
                       ""});
    }
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) {
    return a.line != b.line ? a.line > b.line : a.column > b.column;
  });
  for (const Edit& e : edits) {
    if (e.column < 0) {
      lines.insert(lines.begin() + e.line, e.text);
      continue;
    }
    std::string& l = lines[e.line];
    l.replace(e.column, e.length, e.text);
    if (e.comment.empty()) continue;
    const size_t after = e.column + e.text.size();
    const size_t hash = l.find('#', after);
    if (hash != std::string::npos) l = l.substr(0, hash) + e.comment;
    else l += "   " + e.comment;
  }

  std::string out;
  std::istringstream h(header);
  for (std::string l; std::getline(h, l);) out += (l.empty() || l[0] != '#' ? "# " + l : l) + "\n";
  for (const std::string& l : lines) out += l + "\n";
  if (!appended.empty()) out += appended;
  return out;
}

}  // namespace tpsim
