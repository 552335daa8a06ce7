// Attribution from a hand-built timeline: per-GPU split, stall sites, link loads, CSV and JSON.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tpsim/attribution.hpp"

using namespace tpsim;

namespace {

Span span(int rank, Stream stream, const std::string& name, const std::string& kind, double start_ms, double end_ms,
          const std::string& waited_for = "", int layer = 2, int micro_batch = 0) {
  Span s;
  s.rank = rank;
  s.stream = stream;
  s.name = name;
  s.kind = kind;
  s.start = start_ms * 1e-3;
  s.end = end_ms * 1e-3;
  s.waited_for = waited_for;
  s.op = kind == "stall" ? -1 : 0;
  s.layer = layer;
  s.micro_batch = micro_batch;
  return s;
}

// Two GPUs on two nodes: gemm, an all-reduce the next gemm waits for, gemm. GPU 0 waits 2 ms,
// GPU 1 reaches the all-reduce later and waits 1.5 ms. The NIC of node 0 runs at 97% during the
// all-reduce (1..3 ms of a 4 ms step).
Timeline two_gpu_timeline() {
  Timeline t;
  t.makespan = 4e-3;
  const std::string ar = "layer2.mlp.fc2.fwd.all_reduce";
  t.spans = {span(0, Stream::compute, "layer2.mlp.fc1.fwd", "gemm", 0, 1),
             span(0, Stream::tp_comm, ar, "collective", 1, 3),
             span(0, Stream::compute, "layer2.mlp.fc2.fwd", "stall", 1, 3, ar),
             span(0, Stream::compute, "layer2.mlp.fc2.fwd", "gemm", 3, 4),
             span(1, Stream::compute, "layer2.mlp.fc1.fwd", "gemm", 0, 1.5),
             span(1, Stream::tp_comm, ar, "collective", 1.5, 3),
             span(1, Stream::compute, "layer2.mlp.fc2.fwd", "stall", 1.5, 3, ar),
             span(1, Stream::compute, "layer2.mlp.fc2.fwd", "gemm", 3, 3.5)};
  const double bw = 50e9;
  LinkUse nic{"node0.nic3.up", 0.97 * bw * 2e-3, 2e-3, bw, {{1e-3, 3e-3, 0.97}}};
  LinkUse nvlink{"node0.gpu1.nvlink.up", 0.5 * 450e9 * 1e-3, 1e-3, 450e9, {}};
  LinkUse spine{"leaf0.spine.up", 0.95 * 100e9 * 0.5e-3, 0.5e-3, 100e9, {}};
  t.links = {nvlink, spine, nic};
  return t;
}

}  // namespace

TEST_CASE("link names are spelled out for people") {
  CHECK(link_label("node0.nic3.up") == "node0 NIC rail 3 (up)");
  CHECK(link_label("node1.gpu5.nvlink.down") == "node1 GPU 5 NVLink (down)");
  CHECK(link_label("leaf0.spine") == "leaf0 spine");
  CHECK(link_label("group0to3.global") == "group 0 -> 3 global links");   // a dragonfly, minimal routing
  CHECK(link_label("group2.global.up") == "group 2 global links (up)");
  CHECK(link_label("node0.nic4+5+6+7.up") == "node0 NICs 4+5+6+7 (up)");
  CHECK(link_label("node1.gpu2.pcie-nic.down") == "node1 GPU 2 PCIe to NIC (down)");
  CHECK(link_label("node0.socket1to0") == "node0 socket 1 -> 0");
}

TEST_CASE("per-GPU split from the spans when the engine gave no totals") {
  const Attribution a = attribute(two_gpu_timeline(), {.gpus_per_node = 1, .saturation = 0.9});
  REQUIRE(a.gpus.size() == 2);
  CHECK(a.gpus[0].node == 0);
  CHECK(a.gpus[1].node == 1);
  CHECK(a.gpus[0].compute == rel(2e-3));
  CHECK(a.gpus[0].communication == rel(2e-3));
  CHECK(a.gpus[0].exposed_communication == rel(2e-3));
  CHECK(a.gpus[0].idle == rel(0, 1e-12));
  CHECK(a.gpus[1].compute == rel(2e-3));
  CHECK(a.gpus[1].exposed_communication == rel(1.5e-3));
  CHECK(a.gpus[1].idle == rel(0.5e-3));
  // Stalls on the two GPUs overlap during 1.5..3 ms; their union is 1..3 ms.
  CHECK(a.stall_time == rel(2e-3));
}

TEST_CASE("the engine's totals win when it filled them") {
  Timeline t = two_gpu_timeline();
  t.ranks = {RankTotals{1, 2, 3, 4, 5}, RankTotals{6, 7, 8, 9, 10}};
  const Attribution a = attribute(t);
  CHECK(a.gpus[1].compute == 6);
  CHECK(a.gpus[1].idle == 10);
  CHECK(a.gpus[0].bubble == 4);
}

TEST_CASE("stall sites: op, layer, what it waited for, worst GPU's total") {
  const Attribution a = attribute(two_gpu_timeline());
  REQUIRE(a.stalls.size() == 1);
  const StallSite& s = a.stalls[0];
  CHECK(s.op == "layer2.mlp.fc2.fwd");
  CHECK(s.layer == 2);
  CHECK(s.waited_for == "layer2.mlp.fc2.fwd.all_reduce");
  CHECK(s.total == rel(2e-3));
  CHECK(s.count == 1);
  CHECK(s.gpus == 2);
  // The terminal table groups an op across layers (it used to print one row per layer, with the
  // layer in the names): "mlp.fc2.fwd  layer 2  mlp.fc2.fwd.all_reduce  2.000 ms  2".
  const std::string text = stall_sites_text(a);
  CHECK(text.find("  mlp.fc2.fwd  layer 2  mlp.fc2.fwd.all_reduce  ") != std::string::npos);
  CHECK(text.find("layer2.") == std::string::npos);
  CHECK(text.find("2.000 ms") != std::string::npos);
}

TEST_CASE("stall groups: one op across layers and micro-batches, named by what it waited for") {
  // GPU 0 runs layers 0..79, each with one stall of (1 + layer % 2) us on the fc2 reduce-scatter
  // before the residual add, in 2 micro-batches; GPU 1 runs the same with half the stalls.
  // Worst GPU: 2 micro-batches x (40 x 1 + 40 x 2) us = 240 us in 160 stalls.
  Timeline t;
  t.makespan = 1;
  double now = 0;
  for (int gpu = 0; gpu < 2; ++gpu) {
    now = 0;
    for (int mb = 0; mb < 2; ++mb)
      for (int layer = 0; layer < 80; ++layer) {
        const std::string l = "layer" + std::to_string(layer) + ".";
        const double wait = (1 + layer % 2) * 1e-3 / (gpu + 1);   // ms
        t.spans.push_back(span(gpu, Stream::compute, l + "fwd.mlp.fc2.fwd", "gemm", now, now + 0.01, "", layer, mb));
        Span stall = span(gpu, Stream::compute, "stall: " + l + "fwd.mlp.fc2.reduce_scatter", "stall", now + 0.01,
                          now + 0.01 + wait, l + "fwd.mlp.fc2.reduce_scatter", layer, mb);
        stall.waited_kind = OpKind::collective;
        stall.waited_stream = Stream::tp_comm;
        stall.waited_collective = CollectiveOp::reduce_scatter;
        t.spans.push_back(stall);
        t.spans.push_back(span(gpu, Stream::compute, l + "fwd.mlp.residual.fwd", "kernel", now + 0.01 + wait,
                               now + 0.02 + wait, "", layer, mb));
        now += 0.02 + wait;
      }
  }
  const Attribution a = attribute(t);
  CHECK(a.stalls.size() == 80);   // the per-layer sites stay (CSV, JSON)
  REQUIRE(a.stall_groups.size() == 1);
  const StallGroup& g = a.stall_groups[0];
  CHECK(g.op == "fwd.mlp.residual.fwd");
  CHECK(g.waited_for == "fwd.mlp.fc2.reduce_scatter");
  CHECK(g.what == "reduce-scatter on the tp stream");
  CHECK(g.layers == 80);
  CHECK(g.first_layer == 0);
  CHECK(g.last_layer == 79);
  CHECK(g.total == rel(240e-6));
  CHECK(g.count == 160);
  CHECK(g.gpus == 2);
  CHECK(layers_text(g) == "80 layers (0-79)");
  const std::string text = stall_sites_text(a);
  CHECK(text.find("fwd.mlp.residual.fwd  80 layers (0-79)  reduce-scatter on the tp stream (fwd.mlp.fc2.reduce_scatter)    240.0 us") !=
        std::string::npos);
}

TEST_CASE("links loaded alike share one row that names them all") {
  // 32 NIC links (nodes 0-1, rails 0-7, up and down) at 97% for half the step, one of them at
  // 97.5% (within 1%: same row); rail 0 of node 2 at 90% (its own row), and an NVLink at 50%.
  Timeline t;
  t.makespan = 4e-3;
  const double bw = 50e9;
  for (int node = 0; node < 2; ++node)
    for (int rail = 0; rail < 8; ++rail)
      for (const char* dir : {"up", "down"}) {
        const double u = node == 1 && rail == 7 ? 0.975 : 0.97;
        t.links.push_back({"node" + std::to_string(node) + ".nic" + std::to_string(rail) + "." + dir, u * bw * 2e-3, 2e-3,
                           bw, {}});
      }
  t.links.push_back({"node2.nic0.up", 0.9 * bw * 2e-3, 2e-3, bw, {}});
  t.links.push_back({"node0.gpu1.nvlink.up", 0.5 * 450e9 * 1e-3, 1e-3, 450e9, {}});
  const Attribution a = attribute(t, {.gpus_per_node = 8, .saturation = 0.95});
  REQUIRE(a.link_groups.size() == 3);
  CHECK(a.link_groups[0].members.size() == 32);
  CHECK(a.link_groups[0].names == "node0-1 NIC rail 0-7 (up, down)");
  CHECK(describe_link_group(a, a.link_groups[0]) ==
        "32 links, each 98% busy during 50% of the step: node0-1 NIC rail 0-7 (up, down)");
  CHECK(a.link_groups[1].members.size() == 1);
  CHECK(describe_link_group(a, a.link_groups[1]) == "node2 NIC rail 0 (up): 90% busy during 50% of the step");
  const std::string text = bottleneck_links_text(a, 2);
  CHECK(text == "busiest links\n"
                "  32 links, each 98% busy during 50% of the step: node0-1 NIC rail 0-7 (up, down)  <- bottleneck\n"
                "  node2 NIC rail 0 (up): 90% busy during 50% of the step\n");
}

TEST_CASE("link labels compress number by number") {
  CHECK(compress_link_labels({"node0 GPU 1 NVLink (up)", "node0 GPU 3 NVLink (up)", "node0 GPU 2 NVLink (up)"}) ==
        "node0 GPU 1-3 NVLink (up)");
  CHECK(compress_link_labels({"node0 GPU 1 NVLink (up)", "node0 GPU 5 NVLink (up)"}) == "node0 GPU 1,5 NVLink (up)");
  // Unlike labels stay apart; a label's up and down are one entry.
  CHECK(compress_link_labels({"node0 NIC rail 0 (up)", "node0 NIC rail 0 (down)", "leaf0 spine (up)"}) ==
        "node0 NIC rail 0 (up, down); leaf0 spine (up)");
  CHECK(compress_link_labels({"node1 socket 1 -> 0", "node1 socket 0 -> 1"}) == "node1 socket 1 -> 0; node1 socket 0 -> 1");
}

TEST_CASE("a stall is charged to the op it held up, summed over micro-batches") {
  Timeline t;
  t.makespan = 10e-3;
  for (int mb = 0; mb < 2; ++mb) {
    const double t0 = mb * 5;
    // Op names leave the micro-batch out; it is a field of the op and of its spans.
    t.spans.push_back(span(0, Stream::compute, "layer1.fwd.attn.proj", "gemm", t0, t0 + 1, "", 1, mb));
    t.spans.push_back(span(0, Stream::compute, "stall: layer1.fwd.attn.proj.all_reduce", "stall", t0 + 1, t0 + 1.5 + mb,
                           "layer1.fwd.attn.proj.all_reduce", 1, mb));
    t.spans.push_back(span(0, Stream::compute, "layer1.fwd.norm2", "kernel", t0 + 1.5 + mb, t0 + 2 + mb, "", 1, mb));
  }
  const Attribution a = attribute(t);
  REQUIRE(a.stalls.size() == 1);
  CHECK(a.stalls[0].op == "layer1.fwd.norm2");
  CHECK(a.stalls[0].waited_for == "layer1.fwd.attn.proj.all_reduce");
  CHECK(a.stalls[0].layer == 1);
  CHECK(a.stalls[0].count == 2);
  CHECK(a.stalls[0].total == rel(0.5e-3 + 1.5e-3));
}

TEST_CASE("the saturated link is named with how busy and for how long") {
  const Attribution a = attribute(two_gpu_timeline(), {.gpus_per_node = 1, .saturation = 0.9});
  REQUIRE(a.links.size() == 3);
  // Saturated links first (the NIC: 2 ms at capacity; the spine: 0.475 ms), then the NVLink at 50%.
  CHECK(a.links[0].link == "node0.nic3.up");
  CHECK(a.links[1].link == "leaf0.spine.up");
  CHECK(a.links[2].link == "node0.gpu1.nvlink.up");
  const LinkLoad& nic = a.links[0];
  CHECK(nic.saturated);
  CHECK(nic.utilisation == rel(0.97));
  CHECK(nic.saturated_fraction == rel(0.5));
  CHECK(nic.during_stalls == rel(1.0));
  CHECK(describe_link(nic) ==
        "node0 NIC rail 3 (up): 97% busy during 50% of the step, saturated through 100% of the GPU stall time");
  // Without intervals the mean rate while busy stands in.
  CHECK(a.links[1].saturated);
  CHECK(a.links[1].utilisation == rel(0.95));
  CHECK(a.links[1].during_stalls == -1);
  CHECK(!a.links[2].saturated);
  CHECK(a.links[2].utilisation == rel(0.5));
  CHECK(describe_link(a.links[2]) == "node0 GPU 1 NVLink (up): 50% busy during 25% of the step");
  const std::string text = bottleneck_links_text(a, 2);
  CHECK(text.find("node0 NIC rail 3 (up): 97% busy") != std::string::npos);
  CHECK(text.find("NVLink") == std::string::npos);   // only the top 2
}

TEST_CASE("a link at capacity for a sliver of the step, with no GPU waiting, is not called the bottleneck") {
  // A 10 s step; one pipeline send saturates a NIC for 2 ms (0.02%) while no GPU stalls, another
  // NIC for 50 ms (0.5%) while GPU 0 stalls for it, and a third for 2 s (20%).
  Timeline t;
  t.makespan = 10;
  t.spans = {span(0, Stream::compute, "stage1.fwd", "stall", 5000, 5050, "pp.recv")};
  const double bw = 50e9;
  LinkUse sliver{"node0.nic0.up", bw * 2e-3, 2e-3, bw, {{1, 1 + 2e-3, 1.0}}};
  LinkUse stalled{"node0.nic1.up", bw * 0.05, 0.05, bw, {{5, 5.05, 1.0}}};
  LinkUse long_busy{"node0.nic2.up", bw * 2, 2, bw, {{2, 4, 1.0}}};
  t.links = {sliver, stalled, long_busy};
  const Attribution a = attribute(t, {.gpus_per_node = 8, .saturation = 0.9});
  const std::string text = bottleneck_links_text(a, 3);
  CHECK(text.find("node0 NIC rail 0 (up): 100% busy during <0.1% of the step\n") != std::string::npos);
  CHECK(text.find("node0 NIC rail 1 (up): 100% busy during 0.5% of the step, saturated through 100% of the GPU "
                  "stall time  <- bottleneck\n") != std::string::npos);
  CHECK(text.find("node0 NIC rail 2 (up): 100% busy during 20% of the step  <- bottleneck\n") != std::string::npos);
}

TEST_CASE("JSON and CSV carry the same facts") {
  const Timeline t = two_gpu_timeline();
  const Attribution a = attribute(t, {.gpus_per_node = 1, .saturation = 0.9});
  const nlohmann::json j = to_json(a);
  CHECK(j["gpus"][1]["exposed_communication_s"].get<double>() == rel(1.5e-3));
  CHECK(j["stall_sites"][0]["layer"] == 2);
  CHECK(j["links"][0]["link"] == "node0.nic3.up");
  CHECK(j["links"][1]["during_stalls"].is_null());

  const auto dir = std::filesystem::temp_directory_path() / "tpsim_test_report_csv";
  std::filesystem::remove_all(dir);
  write_csv(dir.string(), t, a);
  auto read = [&](const char* name) {
    std::ifstream in(dir / name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const std::string gpus = read("gpus.csv");
  CHECK(gpus.rfind("rank,node,compute_s,", 0) == 0);
  CHECK(gpus.find("\n1,1,0.002,0.0015,0.0015,0,0.0005\n") != std::string::npos);
  const std::string spans = read("spans.csv");
  CHECK(std::count(spans.begin(), spans.end(), '\n') == 1 + static_cast<long>(t.spans.size()));
  CHECK(read("links.csv").find("node0.nic3.up,node0 NIC rail 3 (up),") != std::string::npos);
  CHECK(read("stall_sites.csv").find("layer2.mlp.fc2.fwd,2,layer2.mlp.fc2.fwd.all_reduce,0.002,1,2") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
  CHECK_THROWS_AS(write_csv("/proc/no/such/dir", t, a), InputError);
}
