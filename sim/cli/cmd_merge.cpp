// `tpsim merge PART.csv... --csv OUT`: combine the parts of a sharded `tpsim plan` sweep into the
// ranked result, byte for byte what one unsharded sweep writes.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output_paths.hpp"
#include "report/atomic_file.hpp"
#include "tpsim/plan_html.hpp"
#include "tpsim/planner.hpp"

namespace tpsim::cli {

namespace {
struct MergeArgs {
  std::vector<std::string> parts;
  std::string csv, json, html;
  int top = 15;
};
}  // namespace

void register_merge(CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  auto* cmd = app.add_subcommand("merge", "Combine the CSV parts of a sharded `tpsim plan` into the ranked result");
  cmd->add_option("parts", a->parts, "Part files written by `tpsim plan --shard i/N --csv PART.csv`")->required();
  cmd->add_option("--csv", a->csv, "Write the merged, ranked CSV here");
  cmd->add_option("--json", a->json, "Also write the merged result as JSON");
  cmd->add_option("--html", a->html,
                  "Also write the sweep's HTML page (as `tpsim plan --html`, without the best layout's timeline: the "
                  "parts hold no model or topology to simulate it with)");
  cmd->add_option("--top", a->top, "Rows of the ranked table")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([a] {
    for (const auto& [flag, path] : {std::pair{"--csv", &a->csv}, {"--json", &a->json}, {"--html", &a->html}})
      check_output_file(flag, *path);   // before the merge: a wrong path fails first, not last
    const Merged merged = merge_csv_files(a->parts);
    if (!a->csv.empty()) write_ranked_csv(a->csv, merged.ranked, merged.tag);
    if (!a->json.empty()) write_file_atomically("--json", a->json, results_json(merged.ranked, merged.tag));
    // Megatron's TP is min(8, GPUs per node), and the sweep tries TP up to GPUs per node.
    int tp = 1;
    for (const auto& r : merged.ranked) tp = std::max(tp, r.layout.tp);
    std::printf("%s: %zu layouts from %zu parts (sweep %s, every shard whole)\n\n", merged.tag.context.c_str(),
                merged.ranked.size(), a->parts.size(), merged.tag.id.c_str());
    std::fputs(plan_table(merged.ranked, merged.tag.objective, std::min(tp, 8), a->top).c_str(), stdout);
    if (!a->html.empty()) {
      PlanPage page;
      page.context = merged.tag.context;
      page.objective = merged.tag.objective;
      page.ranked = merged.ranked;
      const bool inference = !merged.ranked.empty() && merged.ranked.front().layout.batch > 0;
      page.megatron_tp = inference ? 0 : std::min(tp, 8);
      page.csv = a->csv;
      page.top = a->top;
      page.best_run_note = "`tpsim merge` reads result files, which hold no model or topology to simulate the best "
                           "layout with; `tpsim run` with the best layout's plan draws its step";
      write_plan_html(a->html, page);
    }
  });
}

}  // namespace tpsim::cli
