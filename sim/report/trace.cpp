// Chrome trace-event JSON (the "JSON Array/Object" format Perfetto imports). Times in microseconds.
#include "tpsim/trace.hpp"

#include <algorithm>
#include <cctype>
#include <fmt/format.h>
#include <map>
#include <tuple>

#include "tpsim/attribution.hpp"
#include "tpsim/report.hpp"
#include "report/atomic_file.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

namespace {

constexpr double kMicro = 1e6;
constexpr int kStreams = 4;

int stream_index(Stream s) { return static_cast<int>(s); }

const char* stream_label(Stream s) {
  switch (s) {
    case Stream::compute: return "compute";
    case Stream::tp_comm: return "tp comm";
    case Stream::dp_comm: return "dp comm";
    case Stream::pp_comm: return "pp comm";
  }
  return "stream";
}

// Where a rank's stream lives in the trace: pid = node, tid unique per (rank, stream).
struct Place {
  int pid, tid;
};

Place place(int rank, Stream stream, int gpus_per_node) {
  return {gpus_per_node > 0 ? rank / gpus_per_node : 0, rank * kStreams + stream_index(stream) + 1};
}

// A link belongs to the node named by its "nodeN." prefix, else to the shared network process.
int link_pid(const std::string& link, int network_pid) {
  if (link.rfind("node", 0) != 0) return network_pid;
  size_t q = 4;
  int n = 0;
  while (q < link.size() && std::isdigit(static_cast<unsigned char>(link[q]))) n = n * 10 + (link[q++] - '0');
  return q > 4 ? n : network_pid;
}

const Op* find_op(const ProgramSet* programs, int rank, int op) {
  if (!programs || op < 0 || rank < 0 || rank >= static_cast<int>(programs->ranks.size())) return nullptr;
  const auto& ops = program_of(*programs, rank).ops;
  return op < static_cast<int>(ops.size()) ? &ops[op] : nullptr;
}

nlohmann::json op_args(const Span& s, const Op* op, const ProgramSet* programs) {
  nlohmann::json a;
  a["kind"] = s.kind;
  if (s.layer >= 0) a["layer"] = s.layer;
  a["pass"] = to_string(s.pass);
  a["stage"] = s.stage;
  a["micro_batch"] = s.micro_batch;
  if (s.mapping != TpMappingId::none) a["tp_mapping"] = to_string(s.mapping);
  if (!s.instance.empty()) a["instance"] = s.instance;
  if (!s.waited_for.empty()) a["waited_for"] = s.waited_for;
  if (!s.algorithm.empty()) a["algorithm"] = s.algorithm;
  if (s.bytes > 0) a["bytes"] = s.bytes;
  if (s.peer >= 0) a["peer"] = s.peer;
  a["duration_us"] = (s.end - s.start) * kMicro;
  if (!op) return a;
  if (op->kind == OpKind::gemm)
    a["shape"] = fmt::format("[{}x{}] @ [{}x{}]", op->gemm.m, op->gemm.k, op->gemm.k, op->gemm.n);
  if (op->kind == OpKind::kernel) a["fn"] = op->kernel.fn;
  if (op->flops > 0) a["flops"] = op->flops;
  if (op->hbm_bytes > 0) a["hbm_bytes"] = op->hbm_bytes;
  if (op->kind == OpKind::collective) {
    a["op"] = to_string(op->collective.op);
    a["bytes"] = op->collective.bytes;
    a["group"] = group_of(*programs, s.rank, op->collective);
    if (s.algorithm.empty()) a["algorithm"] = to_string(op->collective.algorithm);
  }
  if (op->kind == OpKind::send || op->kind == OpKind::recv) {
    a["peer"] = op->p2p.peer;
    a["bytes"] = op->p2p.bytes;
    a["tag"] = op->p2p.tag;
  }
  return a;
}

// Sort key: metadata, then slices, flows, counters; each by process, thread, time, name.
using Key = std::tuple<int, int, int, double, std::string, int>;

}  // namespace

nlohmann::json chrome_trace(const Timeline& t, const TraceOptions& options) {
  std::vector<std::pair<Key, nlohmann::json>> events;
  int seq = 0;
  auto add = [&](int phase, int pid, int tid, double ts, const std::string& name, nlohmann::json e) {
    events.push_back({Key{phase, pid, tid, ts, name, seq++}, std::move(e)});
  };

  // Processes and threads that appear: one process per node, one thread per used (rank, stream).
  std::map<int, std::string> processes;
  std::map<std::pair<int, int>, std::string> threads;
  int nodes = 1;
  for (const auto& s : t.spans) {
    const Place p = place(s.rank, s.stream, options.gpus_per_node);
    nodes = std::max(nodes, p.pid + 1);
    processes[p.pid] = fmt::format("node{}", p.pid);
    threads[{p.pid, p.tid}] = fmt::format("GPU {} {}", s.rank, stream_label(s.stream));
  }
  const int network_pid = nodes;

  // Slices.
  for (const auto& s : t.spans) {
    const Place p = place(s.rank, s.stream, options.gpus_per_node);
    const Op* op = find_op(options.programs, s.rank, s.op);
    const std::string name = s.kind == "stall" ? "stall: " + s.waited_for : s.name;
    nlohmann::json e = {{"name", name}, {"cat", s.kind}, {"ph", "X"}, {"ts", s.start * kMicro},
                        {"dur", (s.end - s.start) * kMicro}, {"pid", p.pid}, {"tid", p.tid}};
    e["args"] = op_args(s, op, options.programs);
    if (s.kind == "stall") e["args"]["op"] = s.name;
    add(1, p.pid, p.tid, s.start, name, std::move(e));
  }

  // Flow arrows: each send to the receive with the same (sender, receiver, tag), k-th with k-th.
  // The peer and tag come from the Program when given, else from the span (tag unknown: pairs
  // between two GPUs are then matched in time order, as a FIFO channel delivers them).
  {
    std::map<std::tuple<int, int, int>, std::vector<const Span*>> sends, recvs;
    for (const auto& s : t.spans) {
      const Op* op = find_op(options.programs, s.rank, s.op);
      const bool send = op ? op->kind == OpKind::send : s.kind == "send";
      const bool recv = op ? op->kind == OpKind::recv : s.kind == "recv";
      const int peer = op ? peer_of(*options.programs, s.rank, op->p2p) : s.peer;
      const int tag = op ? op->p2p.tag : 0;
      if (peer < 0) continue;
      if (send) sends[{s.rank, peer, tag}].push_back(&s);
      if (recv) recvs[{peer, s.rank, tag}].push_back(&s);
    }
    // Pair the k-th send with the k-th receive in time order, whatever order the spans came in.
    auto by_time = [](const Span* a, const Span* b) { return std::tie(a->start, a->end) < std::tie(b->start, b->end); };
    for (auto& [key, v] : sends) std::stable_sort(v.begin(), v.end(), by_time);
    for (auto& [key, v] : recvs) std::stable_sort(v.begin(), v.end(), by_time);
    int id = 0;
    for (const auto& [key, out] : sends) {
      auto it = recvs.find(key);
      if (it == recvs.end()) continue;
      for (size_t k = 0; k < out.size() && k < it->second.size(); ++k) {
        const Span& a = *out[k];
        const Span& b = *it->second[k];
        const Place pa = place(a.rank, a.stream, options.gpus_per_node);
        const Place pb = place(b.rank, b.stream, options.gpus_per_node);
        ++id;
        const std::string name = fmt::format("p2p {} -> {}", a.rank, b.rank);
        add(2, pa.pid, pa.tid, a.start, name,
            {{"name", name}, {"cat", "p2p"}, {"ph", "s"}, {"id", id}, {"ts", a.start * kMicro}, {"pid", pa.pid},
             {"tid", pa.tid}});
        add(2, pb.pid, pb.tid, b.start, name,
            {{"name", name}, {"cat", "p2p"}, {"ph", "f"}, {"bp", "e"}, {"id", id}, {"ts", b.start * kMicro},
             {"pid", pb.pid}, {"tid", pb.tid}});
      }
    }
  }

  // Link utilisation counters (percent of capacity), on the node the link belongs to.
  for (const auto& l : t.links) {
    const int pid = link_pid(l.link, network_pid);
    processes[pid] = pid == network_pid ? "network" : fmt::format("node{}", pid);
    // Without intervals the track is one value for the whole step, and its name says so: a flat
    // line must not read as a link that ran evenly (bursts are invisible in a mean).
    // Binned intervals (Timeline::link_bin) say their bin: each value is the mean over one.
    const std::string name = "link " + link_label(l.link) +
                             (l.intervals.empty() ? " % (step mean)"
                              : t.link_bin > 0 ? fmt::format(" % ({} bins)", format_seconds(t.link_bin))
                                               : std::string(" %"));
    auto counter = [&](double ts, double util) {
      add(3, pid, 0, ts, name,
          {{"name", name}, {"cat", "link"}, {"ph", "C"}, {"ts", ts * kMicro}, {"pid", pid},
           {"args", {{"utilisation", 100 * util}}}});
    };
    if (!l.intervals.empty()) {
      // A value at each interval's start; back to 0 only where the next interval does not follow on.
      for (size_t k = 0; k < l.intervals.size(); ++k) {
        const LinkInterval& i = l.intervals[k];
        counter(i.start, i.utilisation);
        if (k + 1 == l.intervals.size() || l.intervals[k + 1].start > i.end) counter(i.end, 0);
      }
    } else if (l.bytes > 0 && l.bandwidth > 0 && t.makespan > 0) {
      // Totals only: the step mean, so the track still ranks the links.
      counter(0, std::min(1.0, l.bytes / (l.bandwidth * t.makespan)));
      counter(t.makespan, 0);
    }
  }

  for (const auto& [pid, name] : processes) {
    add(0, pid, 0, 0, "process_name",
        {{"name", "process_name"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"name", name}}}});
    add(0, pid, 0, 0, "process_sort_index",
        {{"name", "process_sort_index"}, {"ph", "M"}, {"pid", pid}, {"tid", 0}, {"args", {{"sort_index", pid}}}});
  }
  for (const auto& [where, name] : threads) {
    add(0, where.first, where.second, 0, "thread_name",
        {{"name", "thread_name"}, {"ph", "M"}, {"pid", where.first}, {"tid", where.second},
         {"args", {{"name", name}}}});
    add(0, where.first, where.second, 0, "thread_sort_index",
        {{"name", "thread_sort_index"}, {"ph", "M"}, {"pid", where.first}, {"tid", where.second},
         {"args", {{"sort_index", where.second}}}});
  }

  std::stable_sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  nlohmann::json list = nlohmann::json::array();
  for (auto& [key, e] : events) list.push_back(std::move(e));
  return {{"traceEvents", std::move(list)}, {"displayTimeUnit", "ns"},
          {"otherData", {{"generator", "tpsim"}, {"makespan_us", t.makespan * kMicro}}}};
}

void write_trace(const std::string& path, const Timeline& t, const TraceOptions& options) {
  write_file_atomically("--trace", path, chrome_trace(t, options).dump() + "\n");
}

}  // namespace tpsim
