// Compressing link labels: 32 NIC rails in one phrase, "node0-3 NIC rail 0-7 (up, down)".
#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <map>
#include <set>
#include <tuple>

#include "tpsim/attribution.hpp"

namespace tpsim {

namespace {

// A label split into its words between numbers ("node", " NIC rail ") and the numbers (each a set
// once labels merge), plus its directions.
struct Pattern {
  std::vector<std::string> words;
  std::vector<std::set<long>> numbers;
  std::set<std::string> directions;
};

Pattern parse(const std::string& label) {
  Pattern p;
  std::string base = label;
  if (!base.empty() && base.back() == ')') {
    const size_t open = base.rfind(" (");
    if (open != std::string::npos) {
      p.directions.insert(base.substr(open + 2, base.size() - open - 3));
      base = base.substr(0, open);
    }
  }
  std::string word;
  for (size_t i = 0; i < base.size();) {
    if (std::isdigit(static_cast<unsigned char>(base[i]))) {
      size_t e = i;
      while (e < base.size() && std::isdigit(static_cast<unsigned char>(base[e]))) ++e;
      // Short numbers only (names, not "1e12"): a long digit run stays text.
      if (e - i <= 9) {
        p.words.push_back(word);
        word.clear();
        p.numbers.push_back({std::stol(base.substr(i, e - i))});
        i = e;
        continue;
      }
      word += base.substr(i, e - i);
      i = e;
      continue;
    }
    word += base[i++];
  }
  p.words.push_back(word);
  return p;
}

std::string ranges(const std::set<long>& v) {
  std::string out;
  for (auto it = v.begin(); it != v.end();) {
    long first = *it, last = *it;
    for (++it; it != v.end() && *it == last + 1; ++it) last = *it;
    out += (out.empty() ? "" : ",") + (first == last ? std::to_string(first) : fmt::format("{}-{}", first, last));
  }
  return out;
}

std::string text(const Pattern& p) {
  std::string out;
  for (size_t k = 0; k < p.words.size(); ++k) {
    out += p.words[k];
    if (k < p.numbers.size()) out += ranges(p.numbers[k]);
  }
  if (p.directions.empty()) return out;
  std::string dirs;
  for (const char* d : {"up", "down", "in", "out", "tx", "rx"})
    if (p.directions.count(d)) dirs += (dirs.empty() ? "" : ", ") + std::string(d);
  for (const auto& d : p.directions)   // any the list above does not know, in name order
    if (dirs.find(d) == std::string::npos) dirs += (dirs.empty() ? "" : ", ") + d;
  return out + " (" + dirs + ")";
}

// Merges patterns that differ only in the number at `position` (or, position < 0, only in direction).
std::vector<Pattern> merge_at(const std::vector<Pattern>& in, int position) {
  std::map<std::string, size_t> index;
  std::vector<Pattern> out;
  for (const Pattern& p : in) {
    // The key: everything but the merged part.
    std::string key;
    for (size_t k = 0; k < p.words.size(); ++k) {
      key += p.words[k] + '\x1f';
      if (k < p.numbers.size()) key += static_cast<int>(k) == position ? "#" : ranges(p.numbers[k]);
      key += '\x1f';
    }
    if (position >= 0)
      for (const auto& d : p.directions) key += d + '\x1e';
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) {
      out.push_back(p);
      continue;
    }
    Pattern& into = out[it->second];
    if (position < 0) into.directions.insert(p.directions.begin(), p.directions.end());
    else if (size_t(position) < into.numbers.size())   // else a duplicate label: nothing to add
      into.numbers[size_t(position)].insert(p.numbers[size_t(position)].begin(), p.numbers[size_t(position)].end());
  }
  return out;
}

}  // namespace

std::string compress_link_labels(const std::vector<std::string>& labels) {
  std::vector<Pattern> patterns;
  size_t most_numbers = 0;
  for (const auto& l : labels) {
    patterns.push_back(parse(l));
    most_numbers = std::max(most_numbers, patterns.back().numbers.size());
  }
  // Directions first (up and down of one link are one entry), then each number from the last
  // ("rail 0-7") to the first ("node0-3").
  patterns = merge_at(patterns, -1);
  for (int k = static_cast<int>(most_numbers) - 1; k >= 0; --k) patterns = merge_at(patterns, k);
  // A page line, not a wall: a group of unlike names lists its first few and counts the rest.
  constexpr size_t kShown = 6;
  std::string out;
  for (size_t i = 0; i < patterns.size() && i < kShown; ++i) out += (out.empty() ? "" : "; ") + text(patterns[i]);
  if (patterns.size() > kShown) out += fmt::format("; and {} more", patterns.size() - kShown);
  return out;
}

}  // namespace tpsim
