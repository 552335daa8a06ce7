// Chrome / Perfetto trace of a hand-built timeline: processes per node, threads per GPU stream,
// slices with collective bytes and algorithm, a flow arrow per send/recv pair, link counters.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tpsim/trace.hpp"

using namespace tpsim;

namespace {

// Two pipeline stages on two nodes (1 GPU each): rank 0 runs a gemm then sends the activation;
// rank 1 receives it, then all-reduces (tp group of itself and nobody: enough for the labels).
struct Fixture {
  ProgramSet programs;
  Timeline timeline;
  Fixture() {
    programs.ranks.resize(2);
    Op gemm;
    gemm.id = 0;
    gemm.kind = OpKind::gemm;
    gemm.name = "layer0.mlp.fc1.fwd";
    gemm.layer = 0;
    gemm.gemm = {2048, 1376, 4096};
    gemm.flops = 2.0 * 2048 * 1376 * 4096;
    Op send;
    send.id = 1;
    send.kind = OpKind::send;
    send.name = "stage0.send.act";
    send.stream = Stream::pp_comm;
    send.p2p = {1, 2048 * 4096 * 2, 7};
    programs.ranks[0].ops = {gemm, send};
    Op recv = send;
    recv.id = 0;
    recv.kind = OpKind::recv;
    recv.name = "stage1.recv.act";
    recv.p2p = {0, 2048 * 4096 * 2, 7};
    Op ar;
    ar.id = 1;
    ar.kind = OpKind::collective;
    ar.name = "layer1.attn.proj.fwd.all_reduce";
    ar.layer = 1;
    ar.stream = Stream::tp_comm;
    ar.collective.op = CollectiveOp::all_reduce;
    ar.collective.group = {1};
    ar.collective.bytes = 16 << 20;
    programs.ranks[1].ops = {recv, ar};

    timeline.makespan = 3e-3;
    auto add = [&](int rank, Stream stream, int op, const std::string& name, const std::string& kind, double a,
                   double b) {
      Span s;
      s.rank = rank;
      s.stream = stream;
      s.op = op;
      s.name = name;
      s.kind = kind;
      s.start = a;
      s.end = b;
      // Spans carry the op's typed fields (the engine copies them); stalls the held-up op's.
      if (rank >= 0 && op >= 0) s.layer = programs.ranks[size_t(rank)].ops[size_t(op)].layer;
      timeline.spans.push_back(s);
      return &timeline.spans.back();
    };
    add(0, Stream::compute, 0, "layer0.mlp.fc1.fwd", "gemm", 0, 1e-3);
    add(0, Stream::pp_comm, 1, "stage0.send.act", "send", 1e-3, 1.5e-3);
    add(1, Stream::pp_comm, 0, "stage1.recv.act", "recv", 0.2e-3, 1.5e-3);
    add(1, Stream::tp_comm, 1, "layer1.attn.proj.fwd.all_reduce", "collective", 1.5e-3, 3e-3)->algorithm = "ring";
    Span* stall = add(1, Stream::compute, -1, "layer1.mlp.fc1.fwd", "stall", 1.5e-3, 3e-3);
    stall->layer = 1;
    stall->waited_for = "layer1.attn.proj.fwd.all_reduce";
    timeline.links = {LinkUse{"node0.nic0.up", 16.0e6, 0.5e-3, 50e9, {{1e-3, 1.2e-3, 0.5}, {1.2e-3, 1.5e-3, 1.0}}},
                      LinkUse{"leaf0.spine.up", 16.0e6, 0.5e-3, 50e9, {}}};
  }
};

std::vector<nlohmann::json> events(const nlohmann::json& trace, const std::string& ph) {
  std::vector<nlohmann::json> out;
  for (const auto& e : trace["traceEvents"])
    if (e["ph"] == ph) out.push_back(e);
  return out;
}

const nlohmann::json* named(const std::vector<nlohmann::json>& v, const std::string& name) {
  for (const auto& e : v)
    if (e["name"] == name) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("a process per node, a thread per GPU stream") {
  Fixture f;
  const nlohmann::json trace = chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs});
  std::vector<std::string> processes, threads;
  for (const auto& e : events(trace, "M")) {
    if (e["name"] == "process_name") processes.push_back(e["args"]["name"]);
    if (e["name"] == "thread_name") threads.push_back(e["args"]["name"]);
  }
  // node0 and node1 for the GPUs, "network" for the spine link that belongs to no node.
  CHECK(processes == std::vector<std::string>{"node0", "node1", "network"});
  CHECK(threads == std::vector<std::string>{"GPU 0 compute", "GPU 0 pp comm", "GPU 1 compute", "GPU 1 tp comm",
                                            "GPU 1 pp comm"});
}

TEST_CASE("slices carry op, layer, shapes, collective bytes and algorithm") {
  Fixture f;
  const nlohmann::json trace = chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs});
  const auto slices = events(trace, "X");
  CHECK(slices.size() == f.timeline.spans.size());
  const nlohmann::json* gemm = named(slices, "layer0.mlp.fc1.fwd");
  REQUIRE(gemm);
  CHECK((*gemm)["ts"].get<double>() == 0);
  CHECK((*gemm)["dur"].get<double>() == rel(1000));   // microseconds
  CHECK((*gemm)["args"]["layer"] == 0);
  CHECK((*gemm)["args"]["shape"] == "[2048x4096] @ [4096x1376]");
  const nlohmann::json* ar = named(slices, "layer1.attn.proj.fwd.all_reduce");
  REQUIRE(ar);
  CHECK((*ar)["pid"] == 1);
  CHECK((*ar)["args"]["bytes"] == 16 << 20);
  CHECK((*ar)["args"]["algorithm"] == "ring");
  CHECK((*ar)["args"]["op"] == "all_reduce");
  const nlohmann::json* stall = named(slices, "stall: layer1.attn.proj.fwd.all_reduce");
  REQUIRE(stall);
  CHECK((*stall)["cat"] == "stall");
  CHECK((*stall)["args"]["op"] == "layer1.mlp.fc1.fwd");
  CHECK((*stall)["tid"] == (*named(slices, "layer0.mlp.fc1.fwd"))["tid"].get<int>() + 4);   // GPU 1's compute
}

TEST_CASE("a flow arrow joins each send to its receive") {
  Fixture f;
  const nlohmann::json trace = chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs});
  const auto starts = events(trace, "s"), finishes = events(trace, "f");
  REQUIRE(starts.size() == 1);
  REQUIRE(finishes.size() == 1);
  CHECK(starts[0]["id"] == finishes[0]["id"]);
  CHECK(starts[0]["pid"] == 0);
  CHECK(finishes[0]["pid"] == 1);
  CHECK(starts[0]["ts"].get<double>() == rel(1000));
  CHECK(finishes[0]["ts"].get<double>() == rel(200));
  // Without the programs and without peers on the spans nothing says which receive matches which
  // send: no arrows, same slices.
  const nlohmann::json bare = chrome_trace(f.timeline, {.gpus_per_node = 1});
  CHECK(events(bare, "s").empty());
  CHECK(events(bare, "X").size() == f.timeline.spans.size());
  // With the engine's peer on the spans the arrow comes back, and the bytes are on the slices.
  for (auto& s : f.timeline.spans) {
    if (s.kind == "send") s.peer = 1;
    if (s.kind == "recv") s.peer = 0;
    if (s.kind == "collective") s.bytes = 16 << 20;
  }
  const nlohmann::json engine_only = chrome_trace(f.timeline, {.gpus_per_node = 1});
  REQUIRE(events(engine_only, "s").size() == 1);
  CHECK(events(engine_only, "f")[0]["pid"] == 1);
  CHECK((*named(events(engine_only, "X"), "layer1.attn.proj.fwd.all_reduce"))["args"]["bytes"] == 16 << 20);
}

TEST_CASE("link counters follow the utilisation intervals") {
  Fixture f;
  const nlohmann::json trace = chrome_trace(f.timeline, {.gpus_per_node = 1});
  std::vector<std::pair<double, double>> nic, spine;
  for (const auto& e : events(trace, "C")) {
    const std::pair<double, double> v{e["ts"].get<double>(), e["args"]["utilisation"].get<double>()};
    if (e["name"] == "link node0 NIC rail 0 (up) %") nic.push_back(v);
    if (e["name"] == "link leaf0 spine (up) % (step mean)") spine.push_back(v);   // named as one value
  }
  // Two back-to-back intervals: 50% from 1 ms, 100% from 1.2 ms, back to 0 at 1.5 ms.
  REQUIRE(nic.size() == 3);
  CHECK(nic[0].first == rel(1000));
  CHECK(nic[0].second == rel(50));
  CHECK(nic[1].second == rel(100));
  CHECK(nic[2].first == rel(1500));
  CHECK(nic[2].second == 0);
  // Totals only: 16 MB over a 3 ms step of a 50 GB/s link is a mean of 10.67%.
  REQUIRE(spine.size() == 2);
  CHECK(spine[0].second == rel(100 * 16e6 / (50e9 * 3e-3)));
}

TEST_CASE("the trace is deterministic and independent of span order") {
  Fixture f;
  const std::string a = chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs}).dump();
  CHECK(a == chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs}).dump());
  std::reverse(f.timeline.spans.begin(), f.timeline.spans.end());
  CHECK(a == chrome_trace(f.timeline, {.gpus_per_node = 1, .programs = &f.programs}).dump());

  const auto path = std::filesystem::temp_directory_path() / "tpsim_test_trace.json";
  write_trace(path.string(), f.timeline, {.gpus_per_node = 1, .programs = &f.programs});
  std::ifstream in(path);
  const nlohmann::json back = nlohmann::json::parse(in);
  CHECK(back.dump() == a);
  std::filesystem::remove(path);
  CHECK_THROWS_AS(write_trace("/proc/no/such/dir/t.json", f.timeline), InputError);
}
