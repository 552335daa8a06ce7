// Attribution: per-GPU time split, stall sites and link loads, all read from one Timeline.
#include "tpsim/attribution.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <set>
#include <tuple>

#include "tpsim/report.hpp"

namespace tpsim {

namespace {

using Interval = std::pair<double, double>;

// Sorted, non-overlapping union of intervals.
std::vector<Interval> merged(std::vector<Interval> v) {
  std::sort(v.begin(), v.end());
  std::vector<Interval> out;
  for (const auto& [s, e] : v) {
    if (e <= s) continue;
    if (!out.empty() && s <= out.back().second)
      out.back().second = std::max(out.back().second, e);
    else
      out.push_back({s, e});
  }
  return out;
}

double length(const std::vector<Interval>& v) {
  double t = 0;
  for (const auto& [s, e] : v) t += e - s;
  return t;
}

// |a ∩ b| for two sorted, non-overlapping interval lists.
double overlap(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  double t = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    t += std::max(0.0, std::min(a[i].second, b[j].second) - std::max(a[i].first, b[j].first));
    if (a[i].second < b[j].second) ++i; else ++j;
  }
  return t;
}

bool is_compute(const Span& s) { return s.kind == "gemm" || s.kind == "kernel"; }
bool is_communication(const Span& s) { return s.kind == "collective" || s.kind == "send" || s.kind == "recv"; }

// The engine's RankTotals when it filled them; otherwise the same split summed from the spans.
std::vector<GpuTime> gpu_times(const Timeline& t, int gpus_per_node) {
  int ranks = static_cast<int>(t.ranks.size());
  for (const auto& s : t.spans) ranks = std::max(ranks, s.rank + 1);
  std::vector<GpuTime> out(ranks);
  for (int r = 0; r < ranks; ++r) {
    out[r].rank = r;
    out[r].node = gpus_per_node > 0 ? r / gpus_per_node : 0;
  }
  if (static_cast<int>(t.ranks.size()) == ranks && ranks > 0) {
    for (int r = 0; r < ranks; ++r) {
      const RankTotals& k = t.ranks[r];
      out[r].compute = k.compute;
      out[r].communication = k.communication;
      out[r].exposed_communication = k.exposed_communication;
      out[r].bubble = k.bubble;
      out[r].idle = k.idle;
    }
    return out;
  }
  for (const auto& s : t.spans) {
    const double d = s.end - s.start;
    GpuTime& g = out[s.rank];
    if (is_compute(s) && s.stream == Stream::compute) g.compute += d;
    else if (is_communication(s)) g.communication += d;
    else if (s.kind == "stall") g.exposed_communication += d;
    else if (s.kind == "bubble") g.bubble += d;
  }
  for (auto& g : out) g.idle = std::max(0.0, t.makespan - g.compute - g.exposed_communication - g.bubble);
  return out;
}

// The op a stall held up: the compute-stream op on the same GPU that starts when the stall ends.
// Falls back to the stall itself when the timeline has no such op.
const Span& waiting_op(const Span& stall, const std::vector<std::vector<const Span*>>& compute_by_rank) {
  if (stall.rank < static_cast<int>(compute_by_rank.size())) {
    const auto& v = compute_by_rank[stall.rank];
    auto it = std::lower_bound(v.begin(), v.end(), stall.end, [](const Span* a, double t) { return a->start < t; });
    if (it != v.end() && (*it)->start - stall.end <= 1e-12) return **it;
  }
  return stall;
}

// An op name without its "layerN." and "mbN." parts, so one op reads the same in every layer and
// micro-batch: "layer3.fwd.mlp.fc2.reduce_scatter" -> "fwd.mlp.fc2.reduce_scatter".
std::string without_layer(const std::string& name) {
  auto numbered = [](const std::string& part, const char* prefix) {
    const size_t n = std::char_traits<char>::length(prefix);
    return part.size() > n && part.compare(0, n, prefix) == 0 &&
           std::all_of(part.begin() + n, part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  std::string out;
  for (size_t s = 0; s <= name.size();) {
    size_t e = name.find('.', s);
    if (e == std::string::npos) e = name.size();
    const std::string part = name.substr(s, e - s);
    if (!numbered(part, "layer") && !numbered(part, "mb")) out += (out.empty() ? "" : ".") + part;
    s = e + 1;
  }
  return out.empty() ? name : out;
}

// What a stall waited for, in words, from the fields the engine copied: "all-gather on the tp stream".
std::string waited_what(const Span& stall) {
  if (stall.waited_stream == Stream::pp_comm || stall.waited_kind == OpKind::recv || stall.waited_kind == OpKind::send)
    return stall.waited_kind == OpKind::send ? "pipeline send" : "pipeline receive";
  if (stall.waited_kind != OpKind::collective) return "";
  std::string op = to_string(stall.waited_collective);
  std::replace(op.begin(), op.end(), '_', '-');
  // The stream it ran on, not a guess at its group: an expert-parallel all-to-all runs on the TP
  // stream too.
  const char* stream = stall.waited_stream == Stream::tp_comm   ? " on the tp stream"
                       : stall.waited_stream == Stream::dp_comm ? " on the dp stream"
                                                                : "";
  return op + stream;
}

std::vector<StallGroup> stall_groups(const Timeline& t, const std::vector<std::vector<const Span*>>& compute_by_rank);

std::vector<StallSite> stall_sites(const Timeline& t, const std::vector<std::vector<const Span*>>& compute_by_rank) {
  // (op, waited_for) -> per rank: total, count. Op names leave out the micro-batch (a field of
  // the op), so a site sums over the step's micro-batches. std::map keeps the output order stable.
  std::map<std::pair<std::string, std::string>, std::map<int, std::pair<double, int>>> sites;
  std::map<std::pair<std::string, std::string>, int> layer;
  for (const auto& s : t.spans) {
    if (s.kind != "stall") continue;
    const Span& held = waiting_op(s, compute_by_rank);
    const std::pair<std::string, std::string> key{held.name, s.waited_for};
    auto& per_rank = sites[key][s.rank];
    per_rank.first += s.end - s.start;
    per_rank.second += 1;
    layer.emplace(key, held.layer);
  }
  std::vector<StallSite> out;
  for (const auto& [key, per_rank] : sites) {
    StallSite site;
    site.op = key.first;
    site.waited_for = key.second;
    site.layer = layer[key];
    site.gpus = static_cast<int>(per_rank.size());
    for (const auto& [rank, tc] : per_rank)
      if (tc.first > site.total) {
        site.total = tc.first;
        site.count = tc.second;
      }
    out.push_back(site);
  }
  // Longest first; totals equal to the picosecond (float noise) fall back to layer order.
  std::stable_sort(out.begin(), out.end(), [](const StallSite& a, const StallSite& b) {
    return std::make_tuple(-std::llround(a.total * 1e12), a.layer) < std::make_tuple(-std::llround(b.total * 1e12), b.layer);
  });
  return out;
}

// Compute-stream ops per rank by start time, to find the op each stall held up.
std::vector<std::vector<const Span*>> compute_ops_by_rank(const Timeline& t) {
  std::vector<std::vector<const Span*>> compute_by_rank;
  for (const auto& s : t.spans) {
    if (s.stream != Stream::compute || s.kind == "stall" || s.kind == "bubble") continue;
    if (s.rank >= static_cast<int>(compute_by_rank.size())) compute_by_rank.resize(s.rank + 1);
    compute_by_rank[s.rank].push_back(&s);
  }
  for (auto& v : compute_by_rank)
    std::stable_sort(v.begin(), v.end(), [](const Span* a, const Span* b) { return a->start < b->start; });
  return compute_by_rank;
}

std::vector<StallGroup> stall_groups(const Timeline& t, const std::vector<std::vector<const Span*>>& compute_by_rank) {
  struct PerRank {
    double total = 0;
    int count = 0;
  };
  struct Group {
    std::string what;
    std::map<int, PerRank> ranks;
    std::set<int> layers;
  };
  // (op, waited_for) without layers -> what it waited for, per rank totals, layers. std::map keeps
  // the output order stable.
  std::map<std::pair<std::string, std::string>, Group> groups;
  for (const auto& s : t.spans) {
    if (s.kind != "stall") continue;
    const Span& held = waiting_op(s, compute_by_rank);
    Group& g = groups[{without_layer(held.name), without_layer(s.waited_for)}];
    if (g.what.empty()) g.what = waited_what(s);
    PerRank& r = g.ranks[s.rank];
    r.total += s.end - s.start;
    r.count += 1;
    if (held.layer >= 0) g.layers.insert(held.layer);
  }
  std::vector<StallGroup> out;
  for (const auto& [key, g] : groups) {
    StallGroup site;
    site.op = key.first;
    site.waited_for = key.second;
    site.what = g.what;
    site.layers = static_cast<int>(g.layers.size());
    if (!g.layers.empty()) site.first_layer = *g.layers.begin(), site.last_layer = *g.layers.rbegin();
    site.gpus = static_cast<int>(g.ranks.size());
    for (const auto& [rank, r] : g.ranks)
      if (r.total > site.total) site.total = r.total, site.count = r.count;
    out.push_back(site);
  }
  // Longest first; totals equal to the picosecond (float noise) keep the name order.
  std::stable_sort(out.begin(), out.end(), [](const StallGroup& a, const StallGroup& b) {
    return std::llround(a.total * 1e12) > std::llround(b.total * 1e12);
  });
  return out;
}

// Alike: the same verdict, and utilisation and busy share within 1% of the group's first link.
bool alike(const LinkLoad& a, const LinkLoad& b) {
  auto close = [](double x, double y) { return std::abs(x - y) <= 0.01 * std::max(std::abs(x), std::abs(y)); };
  return a.saturated == b.saturated && close(a.utilisation, b.utilisation) && close(a.busy_fraction, b.busy_fraction) &&
         close(a.saturated_fraction, b.saturated_fraction);
}

std::vector<LinkGroup> link_groups(const std::vector<LinkLoad>& links) {
  std::vector<LinkGroup> out;
  for (size_t i = 0; i < links.size(); ++i) {
    if (links[i].bytes <= 0) continue;
    if (out.empty() || !alike(links[out.back().members.front()], links[i])) out.push_back({});
    out.back().members.push_back(i);
  }
  for (auto& g : out) {
    std::vector<std::string> labels;
    for (size_t i : g.members) labels.push_back(links[i].label);
    g.names = compress_link_labels(labels);
  }
  return out;
}

// `binned`: the intervals are the engine's time bins (Timeline::link_bin), each a mean over a bin
// that is coarser than a burst (a 140 us all-reduce in a 2 ms bin reads 7%): the utilisation and
// saturation then come from the exact totals (bytes over the busy time), as without intervals.
LinkLoad link_load(const LinkUse& u, double makespan, double threshold, const std::vector<Interval>& stalls, bool binned) {
  LinkLoad l;
  l.link = u.link;
  l.label = link_label(u.link);
  l.bytes = u.bytes;
  l.busy = u.busy;
  l.bandwidth = u.bandwidth;
  if (!u.intervals.empty() && !binned) {
    // Time-weighted utilisation over the busy stretches; saturated stretches met with the stalls.
    std::vector<Interval> busy, hot;
    double weighted = 0;
    for (const auto& i : u.intervals) {
      if (i.utilisation <= 0 || i.end <= i.start) continue;
      busy.push_back({i.start, i.end});
      weighted += i.utilisation * (i.end - i.start);
      if (i.utilisation >= threshold) hot.push_back({i.start, i.end});
    }
    busy = merged(busy);
    hot = merged(hot);
    const double busy_time = length(busy);
    if (l.busy <= 0) l.busy = busy_time;
    l.utilisation = busy_time > 0 ? weighted / busy_time : 0;
    l.saturated_fraction = makespan > 0 ? length(hot) / makespan : 0;
    l.saturated = !hot.empty();
    const double stalled = length(stalls);
    l.during_stalls = stalled > 0 ? overlap(hot, stalls) / stalled : 0;
  } else {
    // Only totals: the mean rate while busy stands in for the utilisation.
    l.utilisation = l.busy > 0 && l.bandwidth > 0 ? std::min(1.0, l.bytes / (l.busy * l.bandwidth)) : 0;
    l.saturated = l.utilisation >= threshold;
    l.saturated_fraction = l.saturated && makespan > 0 ? l.busy / makespan : 0;
  }
  l.busy_fraction = makespan > 0 ? l.busy / makespan : 0;
  return l;
}

std::string percent(double f) { return fmt::format("{:.0f}%", 100 * f); }

}  // namespace

std::string link_label(const std::string& link) {
  std::vector<std::string> parts;
  for (size_t s = 0;;) {
    const size_t e = link.find('.', s);
    parts.push_back(link.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  auto numbered = [](const std::string& p, const std::string& prefix, std::string& n) {
    if (p.size() <= prefix.size() || p.compare(0, prefix.size(), prefix) != 0) return false;
    n = p.substr(prefix.size());
    return std::all_of(n.begin(), n.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  std::string out, direction, n;
  for (const auto& p : parts) {
    std::string word = p;
    if (p == "up" || p == "down" || p == "in" || p == "out" || p == "tx" || p == "rx") {
      direction = p;
      continue;
    }
    const size_t to = p.find("to");   // "socket1to0": the link from socket 1 to socket 0 (groups alike)
    std::string from_socket, to_socket;
    if (numbered(p, "nic", n)) word = "NIC rail " + n;
    else if (p.rfind("nic", 0) == 0 && p.find('+') != std::string::npos) word = "NICs " + p.substr(3);   // one GPU's
    else if (numbered(p, "gpu", n)) word = "GPU " + n;
    else if (to != std::string::npos && numbered(p.substr(0, to), "socket", from_socket) &&
             numbered(p.substr(to), "to", to_socket))
      word = "socket " + from_socket + " -> " + to_socket;
    else if (to != std::string::npos && numbered(p.substr(0, to), "group", from_socket) &&
             numbered(p.substr(to), "to", to_socket))
      word = "group " + from_socket + " -> " + to_socket;
    else if (numbered(p, "group", n)) word = "group " + n;
    else if (p == "global") word = "global links";
    else if (p == "nvlink") word = "NVLink";
    else if (p == "pcie") word = "PCIe";
    else if (p == "pcie-nic") word = "PCIe to NIC";
    else if (p == "nvswitch") word = "NVSwitch";
    out += (out.empty() ? "" : " ") + word;
  }
  return direction.empty() ? out : out + " (" + direction + ")";
}

// A share of the step: whole percents, but a link busy for a sliver of it never reads "0%".
std::string step_share(double f) {
  if (f <= 0 || f >= 0.01) return percent(f);
  return f >= 0.001 ? fmt::format("{:.1f}%", 100 * f) : "<0.1%";
}

std::string describe_link(const LinkLoad& l) {
  const double during = l.saturated && l.saturated_fraction > 0 ? l.saturated_fraction : l.busy_fraction;
  std::string s = fmt::format("{}: {} busy during {} of the step", l.label, percent(l.utilisation), step_share(during));
  if (l.during_stalls > 0) s += fmt::format(", saturated through {} of the GPU stall time", percent(l.during_stalls));
  return s;
}

std::string describe_link_group(const Attribution& a, const LinkGroup& g) {
  const LinkLoad& l = a.links.at(g.members.front());
  if (g.members.size() == 1) return describe_link(l);
  const double during = l.saturated && l.saturated_fraction > 0 ? l.saturated_fraction : l.busy_fraction;
  std::string s = fmt::format("{} links, each {} busy during {} of the step", g.members.size(), percent(l.utilisation),
                              step_share(during));
  if (l.during_stalls > 0) s += fmt::format(", saturated through {} of the GPU stall time", percent(l.during_stalls));
  return s + ": " + g.names;
}

Attribution attribute(const Timeline& t, const AttributionOptions& options) {
  Attribution a;
  a.makespan = t.makespan;
  a.gpus = gpu_times(t, options.gpus_per_node);
  const auto compute_by_rank = compute_ops_by_rank(t);
  a.stalls = stall_sites(t, compute_by_rank);
  a.stall_groups = stall_groups(t, compute_by_rank);
  std::vector<Interval> stalls;
  for (const auto& s : t.spans)
    if (s.kind == "stall") stalls.push_back({s.start, s.end});
  stalls = merged(stalls);
  a.stall_time = length(stalls);
  for (const auto& u : t.links) a.links.push_back(link_load(u, t.makespan, options.saturation, stalls, t.link_bin > 0));
  // Saturated links first, then the most time at capacity; the name breaks ties for stable output.
  std::stable_sort(a.links.begin(), a.links.end(), [](const LinkLoad& x, const LinkLoad& y) {
    const double tx = x.bandwidth > 0 ? x.bytes / x.bandwidth : x.busy;
    const double ty = y.bandwidth > 0 ? y.bytes / y.bandwidth : y.busy;
    return std::make_tuple(!x.saturated, -tx, x.link) < std::make_tuple(!y.saturated, -ty, y.link);
  });
  a.link_groups = link_groups(a.links);
  return a;
}

std::string layers_text(const StallGroup& g) {
  if (g.layers == 0) return "-";
  if (g.layers == 1) return fmt::format("layer {}", g.first_layer);
  return fmt::format("{} layers ({}-{})", g.layers, g.first_layer, g.last_layer);
}

std::string stall_sites_text(const Attribution& a, size_t top) {
  if (a.stall_groups.empty()) return "";
  const size_t n = std::min(top, a.stall_groups.size());
  std::vector<std::string> waited(n), layers(n);
  size_t op_w = 10, layers_w = 6, wait_w = 10;
  for (size_t i = 0; i < n; ++i) {
    const StallGroup& g = a.stall_groups[i];
    waited[i] = g.what.empty() ? g.waited_for : g.what + " (" + g.waited_for + ")";
    layers[i] = layers_text(g);
    op_w = std::max(op_w, g.op.size());
    layers_w = std::max(layers_w, layers[i].size());
    wait_w = std::max(wait_w, waited[i].size());
  }
  std::string out = fmt::format("top stall sites (each op over the layers it stalled in, on the GPU that stalled longest)\n"
                                "  {:<{}}  {:<{}}  {:<{}}  {:>10}  {:>5}\n",
                                "op held up", op_w, "layers", layers_w, "waited for", wait_w, "total", "GPUs");
  for (size_t i = 0; i < n; ++i) {
    const StallGroup& g = a.stall_groups[i];
    out += fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:>10}  {:>5}\n", g.op, op_w, layers[i], layers_w, waited[i], wait_w,
                       format_seconds(g.total), g.gpus);
  }
  return out;
}

std::string bottleneck_links_text(const Attribution& a, size_t top) {
  std::string out;
  size_t shown = 0;
  for (const auto& g : a.link_groups) {
    if (shown == top) break;
    if (shown == 0) out += "busiest links\n";
    const LinkLoad& l = a.links[g.members.front()];
    // At capacity for a sliver of the step with no GPU waiting (a pipeline send between stages)
    // holds nothing up: only a link saturated for 1% of the step or more, or while GPUs stalled,
    // is called a bottleneck.
    const bool bottleneck = l.saturated && (l.saturated_fraction >= 0.01 || l.during_stalls > 0);
    out += fmt::format("  {}{}\n", describe_link_group(a, g), bottleneck ? "  <- bottleneck" : "");
    ++shown;
  }
  return out;
}

nlohmann::json to_json(const Attribution& a) {
  nlohmann::json j;
  j["makespan_s"] = a.makespan;
  j["stall_time_s"] = a.stall_time;
  j["gpus"] = nlohmann::json::array();
  for (const auto& g : a.gpus)
    j["gpus"].push_back({{"rank", g.rank}, {"node", g.node}, {"compute_s", g.compute},
                         {"communication_s", g.communication}, {"exposed_communication_s", g.exposed_communication},
                         {"pipeline_bubble_s", g.bubble}, {"idle_s", g.idle}});
  j["stall_sites"] = nlohmann::json::array();
  for (const auto& s : a.stalls)
    j["stall_sites"].push_back({{"op", s.op}, {"layer", s.layer}, {"waited_for", s.waited_for}, {"total_s", s.total},
                                {"count", s.count}, {"gpus", s.gpus}});
  j["links"] = nlohmann::json::array();
  for (const auto& l : a.links)
    j["links"].push_back({{"link", l.link}, {"label", l.label}, {"bytes", l.bytes}, {"busy_s", l.busy},
                          {"bandwidth_Bps", l.bandwidth}, {"utilisation", l.utilisation},
                          {"busy_fraction", l.busy_fraction}, {"saturated_fraction", l.saturated_fraction},
                          {"during_stalls", l.during_stalls < 0 ? nlohmann::json() : nlohmann::json(l.during_stalls)},
                          {"saturated", l.saturated}, {"text", describe_link(l)}});
  return j;
}

}  // namespace tpsim
