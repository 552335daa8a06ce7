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

// One op's stall sites across the layers (and micro-batches) it stalled in, so an 80-layer model
// reads as one row: "bwd.mlp.fc2.bwd_data waited for an all-gather on the tp stream in layers 0-79".
struct StallGroup {
  std::string op;            // the op held up, its "layerN." part dropped
  std::string waited_for;    // the op it waited on, its "layerN." and "mbN." parts dropped
  std::string what;          // what that op is: "all-gather on the tp stream", "pipeline receive"; "" unknown
  int layers = 0;            // distinct layers it stalled in; 0 outside layers
  int first_layer = -1, last_layer = -1;
  double total = 0;          // s summed over its layers on the GPU that stalled longest here
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

// Links loaded alike (same saturation, utilisation and busy share within 1%) in one row.
struct LinkGroup {
  std::vector<size_t> members;   // indices into Attribution::links, most loaded first
  std::string names;             // the members' labels compressed: "node0-1 NIC rail 0-7 (up, down)"
};

struct Attribution {
  double makespan = 0;
  double stall_time = 0;             // s of the step during which at least one GPU stalled
  std::vector<GpuTime> gpus;         // by rank
  std::vector<StallSite> stalls;     // longest first, one per (op, layer, waited for)
  std::vector<StallGroup> stall_groups;   // the same stalls, one per op across layers; longest first
  std::vector<LinkLoad> links;       // saturated first, then by time at capacity (bytes / bandwidth)
  std::vector<LinkGroup> link_groups;     // links with traffic, alike ones together, in links' order
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

// "node0 NIC rail 0 (up)", ..., "node1 NIC rail 7 (down)" -> "node0-1 NIC rail 0-7 (up, down)":
// labels that differ in one number at a time (or in direction) share one entry; entries join with "; ".
std::string compress_link_labels(const std::vector<std::string>& labels);

// A link group in words: describe_link() of a single link, or "32 links, each 97% busy during 41% of
// the step: node0-3 NIC rail 0-7 (up, down)".
std::string describe_link_group(const Attribution& a, const LinkGroup& g);

// "80 layers (0-79)", "layer 3", "3 layers (2-9)", "-" outside layers.
std::string layers_text(const StallGroup& g);

// Tables for the terminal summary (summary.cpp may call these): the `top` longest stall groups (an
// op across layers) and the `top` most loaded link groups, naming the saturated ones. "" when there
// is nothing to show.
std::string stall_sites_text(const Attribution& a, size_t top = 5);
std::string bottleneck_links_text(const Attribution& a, size_t top = 3);

// The same facts for scripts: JSON, and CSV files in `dir` (created if missing): gpus.csv,
// stall_sites.csv, links.csv and spans.csv (every span of the timeline). Throws InputError (key
// "--csv") when the folder cannot be written.
nlohmann::json to_json(const Attribution& a);
void write_csv(const std::string& dir, const Timeline& timeline, const Attribution& a);

}  // namespace tpsim
