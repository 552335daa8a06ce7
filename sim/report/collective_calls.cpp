// Collectives of a timeline grouped by what they are (collective_calls.hpp).
#include "tpsim/collective_calls.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

#include "tpsim/report.hpp"

namespace tpsim {

std::vector<CollectiveCalls> collective_calls(const Timeline& t) {
  using Key = std::tuple<int, std::string, int, int64_t, std::string>;
  struct Acc {
    CollectiveCalls row;
    std::map<int, int> per_rank;
    double sum = 0;
    int spans = 0;
  };
  std::map<Key, Acc> groups;
  for (const Span& s : t.spans) {
    if (s.kind != "collective" || s.op_kind != OpKind::collective) continue;
    const Key key{int(s.collective), to_string(s.mapping), int(s.pass), s.bytes, s.instance};
    auto [it, fresh] = groups.try_emplace(key);
    Acc& a = it->second;
    if (fresh) {
      a.row.op = s.collective;
      a.row.mapping = to_string(s.mapping);
      a.row.pass = s.pass;
      a.row.bytes = s.bytes;
      a.row.instance = s.instance;
      a.row.fastest = std::numeric_limits<double>::infinity();
    }
    const double d = s.end - s.start;
    a.row.fastest = std::min(a.row.fastest, d);
    a.sum += d;
    ++a.spans;
    ++a.per_rank[s.rank];
  }
  std::vector<CollectiveCalls> out;
  for (auto& [key, a] : groups) {
    for (const auto& [rank, n] : a.per_rank) a.row.calls = std::max(a.row.calls, n);
    a.row.mean = a.sum / a.spans;
    a.row.total = a.row.mean * a.row.calls;
    out.push_back(a.row);
  }
  std::stable_sort(out.begin(), out.end(), [](const CollectiveCalls& a, const CollectiveCalls& b) { return a.total > b.total; });
  return out;
}

std::string collective_calls_text(const std::vector<CollectiveCalls>& calls, size_t top) {
  if (calls.empty()) return "";
  std::string out = fmt::format("collectives (per GPU; fastest = the time alone when nothing shares its links)\n"
                                "  {:<15} {:<26} {:<9} {:>10}  {:<34} {:>6} {:>11} {:>11}\n",
                                "operation", "TP mapping", "pass", "size", "instance", "calls", "fastest", "mean");
  for (size_t i = 0; i < std::min(top, calls.size()); ++i) {
    const CollectiveCalls& c = calls[i];
    out += fmt::format("  {:<15} {:<26} {:<9} {:>10}  {:<34} {:>6} {:>11} {:>11}\n", to_string(c.op),
                       c.mapping.empty() ? "-" : c.mapping, to_string(c.pass), format_bytes(double(c.bytes)), c.instance,
                       c.calls, format_seconds(c.fastest), format_seconds(c.mean));
  }
  if (calls.size() > top) out += fmt::format("  ... {} more kinds (all of them in --json)\n", calls.size() - top);
  return out;
}

}  // namespace tpsim
