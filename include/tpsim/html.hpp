// One self-contained HTML page of a run (inline CSS and SVG, no network): the summary, an SVG
// timeline (a row per GPU, or per stage / node with drill-downs: the pass each compute column ran,
// bubbles, and thin lanes for waits on communication and the comm streams; inference as prefill
// and decode bands), the per-GPU time split, memory bars per GPU when memory figures are given,
// the stall table (an op across layers per row) and the bottleneck links (alike links per row).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tpsim/attribution.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

// One GPU's memory, by component ("weights", "gradients", "optimizer", "activations", ...), bytes.
struct MemoryBar {
  int rank = 0;
  std::vector<std::pair<std::string, double>> parts;
  double capacity = 0;   // HBM bytes; 0 = unknown
};

struct HtmlOptions {
  std::vector<MemoryBar> memory;   // empty = no memory section
  // Up to this many GPUs, the timeline draws a row per GPU; above it, a row per pipeline stage (per
  // node without stages), the mean of its GPUs, each with a drill-down to its GPUs' own rows.
  int max_rows = 32;
};

// One bar per GPU (up to max_rows) from a step run's per-stage memory (rank -> pipeline stage by the
// plan's mesh order); empty when the run has no memory figures.
std::vector<MemoryBar> memory_bars(const RunResult& run, int max_rows = 64);

std::string html_report(const RunResult& run, const Attribution& attribution, const HtmlOptions& options = {});

// The timeline figure alone (its legend, the SVG and any note under it), for pages that embed a
// run's timeline: `tpsim plan --html` shows the best layout's step with it.
std::string timeline_figure(const RunResult& run, const Attribution& attribution, const HtmlOptions& options = {});

// The report's stylesheet (the classes the figures use), for pages that embed them.
const char* html_style();

// Writes html_report() to `path`; throws InputError (key "--html") when the file cannot be written.
void write_html(const std::string& path, const RunResult& run, const Attribution& attribution,
                const HtmlOptions& options = {});

}  // namespace tpsim
