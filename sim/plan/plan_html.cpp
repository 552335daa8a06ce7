// The sweep's page (plan_html.hpp): inline CSS and SVG in one string, as `tpsim run --html` writes,
// so it opens anywhere offline. No clock or randomness goes in and every number is printed at a
// fixed precision, so the same results give the same bytes. Each chart's marks carry the layout id
// (data-layout) and a <title> tooltip; the closing script counts the marks the browser laid out,
// for the headless tests.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "plan/plan_charts.hpp"
#include "report/atomic_file.hpp"
#include "report/html_escape.hpp"
#include "tpsim/attribution.hpp"
#include "tpsim/html.hpp"
#include "tpsim/plan_html.hpp"

namespace tpsim {

namespace {

using namespace plan_page;

const char* kPlanStyle = R"(
.grid{stroke:#eee;stroke-width:1}.p-title{font-size:13px;font-weight:bold;fill:#222}
.p-axis-title{font-size:12px;fill:#333}.p-label{font-size:11px;fill:#222}.p-count{font-size:10px;fill:#fff}
.p-bar{fill:#9fb7d3}.p-best{fill:#2a7d2a}.p-meg{fill:#e45756}.p-lead{stroke:#555;stroke-width:1}
.p-pt{stroke:#fff;stroke-width:0.6;fill-opacity:0.85}.p-ring{fill:none;stroke:#222;stroke-width:1.6}
.p-front{fill:none;stroke:#222;stroke-width:1.5}
.warn{background:#fff4d6;border:1px solid #e0b84c;padding:6px 10px}
.facts th{text-align:left;font-weight:normal;color:#666}.facts td{text-align:left}td:first-child{white-space:nowrap}
table.p-nowrap td{white-space:nowrap}
)";

// ---------------------------------------------------------------------------------------------
// 4. The best layout's step, as `tpsim run` simulates it.

std::string timeline_section(const PlanPage& page, const Facts& f) {
  std::string h = "<div id=\"plan-timeline\">\n";
  if (!page.best_run || f.ran.empty()) {
    const std::string why = !page.best_run_note.empty() ? page.best_run_note
                            : f.ran.empty()              ? "no layout ran, so there is no best layout to show"
                                                         : "the best layout was not simulated again for this page";
    return h + "<p class=\"note\">No timeline: " + escape(why) + ".</p>\n</div>\n";
  }
  const RunResult& run = *page.best_run;
  const LayoutResult& best = *f.ran.front();
  std::string what = fmt::format("The best layout, {}, simulated again as <code>tpsim run</code> simulates a scenario: "
                                 "SimGrid at flow fidelity",
                                 escape(layout_id(best.layout)));
  if (run.step) {
    const StepMetrics& m = *run.step;
    what += m.tp_collectives == "folded" ? ", TP collectives folded into the compute ops at their uncontended time"
                                         : ", TP collectives simulated as ops";
    if (m.training) {
      what += m.dp_replicas == "one" ? ", one DP replica simulated (its DP collectives timed alone on the full topology)"
                                     : ", every DP replica simulated";
      what += fmt::format(". The timeline is one optimizer step{}: {} of its {} micro-batches per replica. This run's "
                          "step: {}; the sweep's estimate: {} (the sweep folds TP collectives and extends a slice of "
                          "the micro-batches to the whole step, see sim/plan/evaluate.cpp).",
                          m.partial ? " (PARTIAL: only the simulated part)" : "", m.micro_batches,
                          m.micro_batches_per_step, escape(format_seconds(m.step_time_s)),
                          escape(format_seconds(best.step_time_s)));
    } else {
      what += fmt::format(". The timeline is the request's prefill and one decode step at the mean context; the "
                          "request (the prefill and {} decode steps) takes {}; the sweep's estimate: {} (the sweep "
                          "folds TP collectives into the compute ops).",
                          run.scenario.workload.generate, escape(format_seconds(m.step_time_s)),
                          escape(format_seconds(best.step_time_s)));
    }
  } else {
    what += ".";
  }
  h += "<p>" + what + "</p>\n";
  const Attribution a = attribute(run.timeline, {.gpus_per_node = run.scenario.topology.gpus_per_node});
  return h + timeline_figure(run, a, HtmlOptions{}) + "</div>\n";
}

// ---------------------------------------------------------------------------------------------
// The header and the ranked table.

std::string top_table(const PlanPage& page, const Facts& f) {
  std::string h = fmt::format("<table class=\"p-nowrap\"><tr><th>rank</th><th class=\"l\">layout</th><th>GPUs</th><th>{}</th>"
                              "<th>tokens/s</th><th>{}</th><th>mem GiB</th><th>TP comm</th><th>bubble</th>",
                              f.inference ? "request" : "step time", f.inference ? "TTFT" : "TFLOP/s per GPU");
  if (f.has_time) h += "<th>time to train</th>";
  h += fmt::format("<th>{}</th><th class=\"l\"></th></tr>\n", f.has_cost ? "cost" : "GPU-hours");
  auto pct = [](double part, double whole) { return whole > 0 ? fmt::format("{:.1f}%", 100 * part / whole) : "-"; };
  auto row = [&](std::size_t i) {
    const LayoutResult& r = *f.ran[i];
    h += fmt::format("<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.0f}</td><td>{}</td>"
                     "<td>{:.1f}</td><td>{}</td><td>{}</td>",
                     i + 1, escape(layout_id(r.layout)), r.layout.gpus(), escape(format_seconds(r.step_time_s)),
                     r.tokens_per_s,
                     f.inference ? escape(format_seconds(r.ttft_s)) : fmt::format("{:.0f}", r.tflops_per_gpu),
                     r.memory_bytes / kGiB, pct(r.tp_comm_s, r.step_time_s), pct(r.bubble_s, r.step_time_s));
    if (f.has_time) h += "<td>" + train_time_text(r.time_to_train_s) + "</td>";
    h += fmt::format("<td>{}</td><td class=\"l\">{}</td></tr>\n", amount_text(cost_of(f, r)),
                     int(i) + 1 == f.megatron_rank ? "&larr; Megatron's usual choice" : "");
  };
  const std::size_t shown = std::min<std::size_t>(f.ran.size(), std::size_t(std::max(page.top, 1)));
  for (std::size_t i = 0; i < shown; ++i) row(i);
  if (f.megatron_rank > int(shown)) {
    h += "<tr><td>...</td></tr>\n";
    row(std::size_t(f.megatron_rank - 1));
  }
  return h + "</table>\n";
}

std::string header(const PlanPage& page, const Facts& f) {
  std::string h = "<table class=\"facts\">\n";
  auto fact = [&h](const char* label, const std::string& html) {
    h += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", label, html);
  };
  fact("sweep", escape(page.context));
  fact("layouts", fmt::format("{} on this page: {} ran, {} rejected", page.ranked.size(), f.ran.size(),
                              page.ranked.size() - f.ran.size()));
  fact("ranked by", to_string(page.objective));
  if (!f.ran.empty())
    fact("best", escape(layout_id(f.ran.front()->layout) + " (" + layout_numbers(f, *f.ran.front()) + ")"));
  if (!f.inference && page.megatron_tp > 0)
    fact("Megatron's usual choice",
         f.megatron ? escape(fmt::format("{}: rank {} of {} (TP{}, SP, selective recompute, micro-batch 1, the smallest "
                                         "PP that fits, on the most nodes)",
                                         layout_id(f.megatron->layout), f.megatron_rank, f.ran.size(), page.megatron_tp))
                    : escape(fmt::format("does not run at any PP here (TP{})", page.megatron_tp)));
  fact("data", page.csv.empty() ? "no result file written (add <code>--csv PATH</code> for every row as CSV)"
                                : "every row is in <code>" + escape(page.csv) + "</code> (the CSV is the data; this page "
                                  "draws it)");
  return h + "</table>\n";
}

}  // namespace

std::string plan_html(const PlanPage& page) {
  const Facts f = facts_of(page);
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += fmt::format("<title>tpsim plan: {}</title>\n<style>{}{}</style>\n", escape(page.context), html_style(), kPlanStyle);
  // Counts script errors for the headless tests (data-errors on <body>).
  h += "<script>window.tpsimErrors=0;window.addEventListener('error',function(){window.tpsimErrors++;});</script>\n";
  h += "</head><body>\n";
  h += "<h1>tpsim plan: " + escape(page.context.substr(0, page.context.find(';'))) + "</h1>\n";
  if (!page.part.empty()) h += "<p class=\"warn\">" + escape(page.part) + "</p>\n";
  h += header(page, f);
  if (!f.ran.empty()) {
    h += "<h2>Ranking</h2>\n" + metric_chart(page, f);
    h += "<h2>Time and cost</h2>\n" + pareto_chart(f);
  } else {
    h += "<p class=\"note\">No layout ran: there is no ranking and no Pareto front. See why below.</p>\n";
  }
  h += "<h2>Rejections</h2>\n" + rejection_chart(page);
  h += "<h2>The best layout's step</h2>\n" + timeline_section(page, f);
  if (!f.ran.empty()) h += "<h2>Top layouts</h2>\n" + top_table(page, f);
  // Records how many marks the browser laid out with a size, per chart (a check for headless tests).
  h += "<script>(function(){function drawn(s){var n=0;document.querySelectorAll(s).forEach(function(e){"
       "var b=e.getBoundingClientRect();if(b.width>0&&b.height>0)n++;});return String(n);}"
       "var b=document.body;b.setAttribute('data-metric-drawn',drawn('#plan-metric [data-layout]'));"
       "b.setAttribute('data-pareto-drawn',drawn('#plan-pareto [data-layout]'));"
       "b.setAttribute('data-rejection-drawn',drawn('#plan-rejections rect.p-seg'));"
       "b.setAttribute('data-timeline-drawn',drawn('#plan-timeline rect.span'));"
       "b.setAttribute('data-errors',String(window.tpsimErrors));})();</script>\n";
  return h + "</body></html>\n";
}

void write_plan_html(const std::string& path, const PlanPage& page) {
  write_file_atomically("--html", path, plan_html(page));
}

}  // namespace tpsim
