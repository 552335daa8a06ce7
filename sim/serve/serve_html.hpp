// The HTML report of `tpsim serve` (serve_html.cpp): the run's summary, a per-request timeline,
// KV-cache occupancy and running sequences per replica over time, and latency CDFs.
#pragma once

#include <string>

#include "tpsim/serving.hpp"

namespace tpsim {

// A self-contained HTML report of a serving run (no scripts or files fetched from anywhere).
// `timing`: the IterationTimer's describe(), shown verbatim (HTML-escaped). Deterministic: the same
// inputs give the same bytes.
std::string serve_html(const Scenario& scenario, const ServingSpec& spec, const ServeResult& result,
                       const ServeSummary& summary, const std::string& timing);

}  // namespace tpsim
