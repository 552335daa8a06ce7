// Chrome trace-event JSON of a Timeline, for Perfetto (ui.perfetto.dev) or chrome://tracing:
// a process per node, a thread per GPU stream, a slice per op (named by op, so by layer), stalls on
// the compute thread, collectives carrying bytes / algorithm / group, flow arrows from each send to
// its matching receive, and a counter track per link with its utilisation.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "tpsim/program.hpp"
#include "tpsim/timeline.hpp"

namespace tpsim {

struct TraceOptions {
  int gpus_per_node = 0;                 // 0 = every rank on node 0
  // The Programs the timeline ran, when at hand: slices then carry shapes, FLOPs, collective bytes
  // and groups, and sends are joined to their receives by flow arrows (matched by peer and tag).
  const ProgramSet* programs = nullptr;
};

// Deterministic: events are ordered by (process, thread, start, name); same timeline, same bytes.
nlohmann::json chrome_trace(const Timeline& timeline, const TraceOptions& options = {});

// Writes chrome_trace() to `path`; throws InputError (key "--trace") when the file cannot be written.
void write_trace(const std::string& path, const Timeline& timeline, const TraceOptions& options = {});

}  // namespace tpsim
