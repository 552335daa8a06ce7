// Outputs of a serving run (serve_report.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tpsim/serving.hpp"

namespace tpsim {

// What was simulated and how, as (label, text) lines: scenario, cluster, model, replicas, requests,
// engine, KV cache, timing, simulated. The terminal summary and the HTML page both show these.
std::vector<std::pair<std::string, std::string>> serve_facts(const Scenario& scenario, const ServingSpec& spec,
                                                             const ServeResult& result, const ServeSummary& summary,
                                                             const std::string& timing);
// `timing`: the IterationTimer's describe(), so the report says how iterations were timed.
std::string serve_text(const Scenario& scenario, const ServingSpec& spec, const ServeResult& result,
                       const ServeSummary& summary, const std::string& timing);
nlohmann::json serve_json(const Scenario& scenario, const ServingSpec& spec, const ServeResult& result,
                          const ServeSummary& summary, const std::string& timing);
// requests.csv (one row per request) and iterations.csv (one per iteration) in `folder`.
void write_serve_csv(const std::string& folder, const ServeResult& result);
void write_serve_trace(const std::string& path, const ServeResult& result);

}  // namespace tpsim
