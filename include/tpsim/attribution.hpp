// Attribution: where each GPU's time went, where the compute streams stalled and which links were
// saturated meanwhile. Read from a Timeline only, so every report (terminal, JSON, CSV, trace, HTML)
// tells the same story from the same numbers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tpsim/timeline.hpp"

namespace tpsim {

// One GPU's step, split into disjoint parts of its compute stream's time (compute + exposed
// communication + bubble + idle = makespan), plus the communication its comm streams carried
// (overlapped or not).
struct GpuTime {
  int rank = 0;
  int node = 0;
  double compute = 0, communication = 0, exposed_communication = 0, bubble = 0, idle = 0;  // s
};

// A place the compute stream waited: the op that could not start, in which layer, for what.
struct StallSite {
  std::string op;            // the stall span's name (the op that waited)
  int layer = -1;            // from "layerN." in the name; -1 outside layers
  std::string waited_for;    // the collective or peer transfer it waited on
  double total = 0;          // s summed over the step on the GPU that stalled longest here
  int count = 0;             // stall spans on that GPU
  int gpus = 0;              // GPUs that stalled at this site
};

// How hard one link worked.
struct LinkLoad {
  std::string link;          // the engine's name ("node0.nic3.up")
  std::string label;         // for people ("node0 NIC rail 3 (up)")
  double bytes = 0, busy = 0, bandwidth = 0;
  double utilisation = 0;          // mean fraction of capacity while busy
  double busy_fraction = 0;        // busy / makespan
  double saturated_fraction = 0;   // fraction of the step spent at >= the saturation threshold
  double during_stalls = -1;       // fraction of GPU stall time the link was saturated; -1 = unknown
  bool saturated = false;          // ever at >= the threshold
};

struct Attribution {
  double makespan = 0;
  double stall_time = 0;             // s of the step during which at least one GPU stalled
  std::vector<GpuTime> gpus;         // by rank
  std::vector<StallSite> stalls;     // longest first
  std::vector<LinkLoad> links;       // saturated first, then by time at capacity (bytes / bandwidth)
};

struct AttributionOptions {
  int gpus_per_node = 0;       // 0 = every rank on node 0
  double saturation = 0.9;     // a link at >= this fraction of its capacity counts as saturated
};

Attribution attribute(const Timeline& timeline, const AttributionOptions& options = {});

// A link name for people: "node0.nic3.up" -> "node0 NIC rail 3 (up)", "node0.nic4+5.up" ->
// "node0 NICs 4+5 (up)", "node0.gpu2.pcie-nic.down" -> "node0 GPU 2 PCIe to NIC (down)",
// "node1.socket1to0" -> "node1 socket 1 -> 0".
std::string link_label(const std::string& link);

// "node0 NIC rail 3 (up): 97% busy during 41% of the step" (+ how much of the stall time).
std::string describe_link(const LinkLoad& link);

// Tables for the terminal summary (summary.cpp may call these): the `top` longest stall sites and
// the `top` most loaded links, naming the saturated ones. "" when there is nothing to show.
std::string stall_sites_text(const Attribution& a, size_t top = 5);
std::string bottleneck_links_text(const Attribution& a, size_t top = 3);

// The same facts for scripts: JSON, and CSV files in `dir` (created if missing): gpus.csv,
// stall_sites.csv, links.csv and spans.csv (every span of the timeline). Throws InputError (key
// "--csv") when the folder cannot be written.
nlohmann::json to_json(const Attribution& a);
void write_csv(const std::string& dir, const Timeline& timeline, const Attribution& a);

}  // namespace tpsim
