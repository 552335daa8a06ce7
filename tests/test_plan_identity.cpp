// A sweep's identity and the refusals it makes possible: the id covers every input that changes the
// numbers and nothing else; a resume refuses a file of other inputs or another shard and redoes
// error rows; a merge refuses parts of different sweeps, missing or repeated shards, and parts
// that are empty, header-only, torn, short or hold nan.
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "plan_toy.hpp"
#include "tpsim/planner.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

// The message of the InputError `f` throws ("" when it throws none).
std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The toy sweep cut into `parts` shards, each written to its own file.
std::vector<std::string> shard_files(const SweepSpec& spec, int parts, const std::string& stem) {
  std::vector<std::string> out;
  for (int i = 0; i < parts; ++i) {
    const auto path = scratch(stem + std::to_string(i) + ".csv");
    SweepOptions o;
    o.jobs = 2;
    o.shard = Shard{i, parts};
    o.csv = path.string();
    run_sweep(spec, o, fake_evaluate);
    out.push_back(path.string());
  }
  return out;
}

// The scenario `tpsim plan -t dgx-h100 -m MODEL --set ...` sweeps.
SweepSpec loaded(const std::string& model, const std::vector<Override>& overrides = {}) {
  ScenarioRequest r;
  r.topology = "dgx-h100";
  r.model = model;
  r.overrides = overrides;
  const Scenario s = load_scenario(r);
  SweepSpec spec;
  spec.model = s.model;
  spec.topology = s.topology;
  return spec;
}

}  // namespace

TEST_CASE("the sweep id is 16 hex digits of the resolved inputs and the tpsim version") {
  const SweepSpec spec = toy_spec();
  const std::string id = sweep_id(spec);
  CHECK(id.size() == 16);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(sweep_id(toy_spec()) == id);
  const std::string canon = sweep_canonical(spec);
  CHECK(canon.rfind(std::string("tpsim=") + std::to_string(std::string(TPSIM_VERSION).size()) + ":" + TPSIM_VERSION + "\n", 0) == 0);
  CHECK(canon.find("intra.bandwidth=0\n") != std::string::npos);
  CHECK(canon.find("topology.nodes=[2]\n") != std::string::npos);
  const SweepTag tag = sweep_tag(spec, Shard{1, 3});
  CHECK(tag.id == id);
  CHECK(tag.layouts == 92);
  CHECK(tag.shard.index == 1);
}

TEST_CASE("every input that changes a number changes the sweep id") {
  const SweepSpec base = toy_spec();
  const std::string id = sweep_id(base);
  std::vector<std::pair<const char*, std::function<void(SweepSpec&)>>> changes = {
      {"intra.bandwidth", [](SweepSpec& s) { s.topology.intra.bandwidth = 45e9; }},
      {"nic.gpus", [](SweepSpec& s) { s.topology.nic.gpus = {{0, 1}, {2, 3}}; }},
      {"network.oversubscription", [](SweepSpec& s) { s.topology.network.oversubscription = 2; }},
      {"gpu peak", [](SweepSpec& s) { s.topology.gpu.peak_flops[DType::bf16] = 1e15; }},
      {"protocol", [](SweepSpec& s) { s.topology.collectives.protocols.push_back(ProtocolSpec{"LL", 1e-6, 0, 0, 0.5, 0, 0}); }},
      {"nccl version", [](SweepSpec& s) { s.topology.collectives.nccl_version = "2.23"; }},
      {"price", [](SweepSpec& s) { s.topology.price_per_gpu_hour = 3; }},
      {"model.layers", [](SweepSpec& s) { s.model.layers = 16; }},
      {"model.dtype", [](SweepSpec& s) { s.model.dtype = DType::fp16; }},
      {"model.name", [](SweepSpec& s) { s.model.name = "toy2"; }},   // it is written into every row
      {"node counts", [](SweepSpec& s) { s.node_counts = {1, 2}; }},
      {"global batch", [](SweepSpec& s) { s.training.global_batch = 32; }},
      {"seq", [](SweepSpec& s) { s.training.seq = 256; }},
      {"tokens", [](SweepSpec& s) { s.training.tokens = 1e12; }},
      {"objective", [](SweepSpec& s) { s.objective = Objective::cost; }},
      {"micro-batches", [](SweepSpec& s) { s.micro_batches = {1, 2, 4}; }},
      {"recomputes", [](SweepSpec& s) { s.recomputes = {Recompute::none}; }},
      {"virtual stages", [](SweepSpec& s) { s.virtual_stages = {1}; }},
      {"max tp", [](SweepSpec& s) { s.max_tp = 2; }},
      {"workload", [](SweepSpec& s) { s.kind = WorkloadKind::inference; }},
  };
  for (const auto& [name, change] : changes) {
    SweepSpec s = base;
    change(s);
    INFO(name);
    CHECK(sweep_id(s) != id);
  }
}

TEST_CASE("what does not change a number does not change the sweep id") {
  const SweepSpec base = toy_spec();
  const std::string id = sweep_id(base);
  std::vector<std::pair<const char*, std::function<void(SweepSpec&)>>> same = {
      {"source paths", [](SweepSpec& s) { s.topology.source = "/a/t.yaml"; s.model.source = "/b/m.yaml"; }},
      {"--nodes equal to topology.nodes", [](SweepSpec& s) { s.node_counts = {2, 2}; }},
      {"list order", [](SweepSpec& s) { s.micro_batches = {2, 1}; s.recomputes = {Recompute::full, Recompute::none}; }},
      {"inference target in a training sweep", [](SweepSpec& s) { s.inference.batch = 64; }},
      {"seq 0 = the model's max_seq", [](SweepSpec& s) { s.training.seq = 512; }},
  };
  for (const auto& [name, change] : same) {
    SweepSpec s = base;
    change(s);
    INFO(name);
    CHECK(sweep_id(s) == id);
  }
}

TEST_CASE("the GEMM table counts by its content, not its path") {
  const auto a = scratch("gemm_a.csv"), b = scratch("gemm_b.csv");
  write_text(a, "m,n,k,dtype,time_us\n1024,1024,1024,bf16,30\n");
  write_text(b, "m,n,k,dtype,time_us\n1024,1024,1024,bf16,30\n");
  SweepSpec sa = toy_spec(), sb = toy_spec();
  // As the loader fills them: the path for display, the rows for the cost model.
  sa.topology.gpu.gemm_table = a.string();
  sa.topology.gpu.gemm_measured = read_gemm_table(a.string());
  sb.topology.gpu.gemm_table = b.string();
  sb.topology.gpu.gemm_measured = read_gemm_table(b.string());
  CHECK(sweep_id(sa) == sweep_id(sb));
  CHECK(sweep_id(sa) != sweep_id(toy_spec()));
  write_text(b, "m,n,k,dtype,time_us\n1024,1024,1024,bf16,60\n");
  sb.topology.gpu.gemm_measured = read_gemm_table(b.string());
  CHECK(sweep_id(sa) != sweep_id(sb));
}

TEST_CASE("the id is of the resolved scenario: YAML layout and key order do not count, a --set does") {
  const std::string preset = sweep_id(loaded("llama2-7b"));
  // The preset's values in flow style, keys reordered, from another folder.
  const auto flow = scratch("llama-flow.yaml");
  write_text(flow,
             "{max_seq: 4096, dtype: bf16, norm: rmsnorm, activation: swiglu, vocab: 32000, layers: 32,\n"
             " kv_heads: 32, heads: 32, ffn: 11008, hidden: 4096, name: llama2-7b}   # same model\n");
  CHECK(sweep_id(loaded(flow.string())) == preset);
  CHECK(sweep_id(loaded("llama2-7b", {{"topology.intra.bandwidth", "450GB/s"}})) == preset);   // its own value
  CHECK(sweep_id(loaded("llama2-7b", {{"topology.intra.bandwidth", "45GB/s"}})) != preset);
  CHECK(sweep_id(loaded("llama2-7b", {{"model.layers", "16"}})) != preset);
}

TEST_CASE("every field of a mixture-of-experts model changes the sweep id; a dense model's id has no moe lines") {
  SweepSpec base = toy_spec();
  CHECK(sweep_canonical(base).find("model.moe") == std::string::npos);   // ids of dense sweeps are as before
  base.model.moe = MoeSpec{8, 2, base.model.ffn, 0, true};
  const std::string id = sweep_id(base);
  CHECK(id != sweep_id(toy_spec()));
  std::vector<std::pair<const char*, std::function<void(SweepSpec&)>>> changes = {
      {"experts", [](SweepSpec& s) { s.model.moe.experts = 16; }},
      {"top_k", [](SweepSpec& s) { s.model.moe.top_k = 1; }},
      {"expert_ffn", [](SweepSpec& s) { s.model.moe.expert_ffn *= 2; }},
      {"capacity_factor", [](SweepSpec& s) { s.model.moe.capacity_factor = 1.25; }},
      {"normalize_top_k", [](SweepSpec& s) { s.model.moe.normalize_top_k = false; }},
  };
  for (const auto& [name, change] : changes) {
    SweepSpec s = base;
    change(s);
    INFO(name);
    CHECK(sweep_id(s) != id);
  }
  // Mixtral-8x7B's preset and its Hugging Face config.json (renamed alike) are one scenario. (The
  // default scenario's plan is tp 8: a MoE model needs sequence parallelism there.)
  const std::string hf = std::string(TPSIM_TEST_DATA) + "/hf/Mixtral-8x7B-v0.1/config.json";
  const Override sp{"plan.sp", "true"};
  const std::string preset = sweep_id(loaded("mixtral-8x7b", {sp}));
  CHECK(sweep_id(loaded(hf, {sp, {"model.name", "mixtral-8x7b"}})) == preset);
  CHECK(sweep_id(loaded("mixtral-8x7b", {sp, {"model.moe.top_k", "1"}})) != preset);
}

TEST_CASE("a dragonfly's groups and routing change the sweep id; other networks' ids have no such lines") {
  SweepSpec base = toy_spec();
  CHECK(sweep_canonical(base).find("network.routing") == std::string::npos);   // ids from before stay
  base.topology.network.kind = NetworkKind::dragonfly;
  base.topology.network.nodes_per_leaf = 1;
  const std::string id = sweep_id(base);
  CHECK(id != sweep_id(toy_spec()));
  SweepSpec minimal = base, machine = base;
  minimal.topology.network.routing = GroupRouting::minimal;
  machine.topology.network.groups = 64;
  CHECK(sweep_id(minimal) != id);
  CHECK(sweep_id(machine) != id);
}

#if defined(__x86_64__) && defined(__GLIBCXX__)
TEST_CASE("sweep_canonical covers every field of the specs it hashes (a size guard)") {
  // A field added to one of these structs changes its size: add it to sweep_canonical
  // (sim/plan/sweep_id.cpp) if it can change a number, then update the size here.
  CHECK(sizeof(MoeSpec) == 56);
  CHECK(sizeof(ModelSpec) == 200);
  CHECK(sizeof(GpuSpec) == 216);
  CHECK(sizeof(IntraNodeSpec) == 64);
  CHECK(sizeof(NicSpec) == 128);
  CHECK(sizeof(NetworkSpec) == 40);
  CHECK(sizeof(ProtocolSpec) == 80);
  CHECK(sizeof(CollectiveTuning) == 72);
  CHECK(sizeof(Topology) == 600);
  CHECK(sizeof(TrainingTarget) == 32);
  CHECK(sizeof(InferenceTarget) == 32);
  CHECK(sizeof(SweepSpec) == 1072);
}
#endif

// ---------------------------------------------------------------------------------------------
// Resume

TEST_CASE("a resume refuses a file of other inputs: --set topology.intra.bandwidth=45GB/s keeps no old row") {
  const SweepSpec spec = toy_spec();
  const auto csv = scratch("resume-other.csv");
  SweepOptions options = writing_to(csv);
  run_sweep(spec, options, fake_evaluate);
  const std::string before = read_text(csv);

  SweepSpec slower = spec;
  slower.topology.intra.bandwidth = 45e9;   // the fake evaluator ignores it: only the id can tell
  const SweepTag old_tag = sweep_tag(spec), new_tag = sweep_tag(slower);
  CHECK(refusal([&] { run_sweep(slower, options, fake_evaluate); }) ==
        csv.string() + ":2:1: sweep_id: this file holds sweep " + old_tag.id + ", this run is sweep " + new_tag.id +
            ": its rows were computed from other inputs (scenario, --set, flags or tpsim version); write to a new "
            "--csv file or delete this one");
  // Another target changes the context too: both are named.
  SweepSpec bigger = spec;
  bigger.training.global_batch = 32;
  const SweepTag big_tag = sweep_tag(bigger);
  CHECK(refusal([&] { run_sweep(bigger, options, fake_evaluate); }) ==
        csv.string() + ":2:1: sweep_id: this file holds sweep " + old_tag.id + " ('" + old_tag.context +
            "'), this run is sweep " + big_tag.id + " ('" + big_tag.context +
            "'): its rows were computed from other inputs (scenario, --set, flags or tpsim version); write to a new "
            "--csv file or delete this one");
  CHECK(read_text(csv) == before);   // refused before touching it
}

TEST_CASE("a resume refuses another shard's file, a file with a layout twice, and another version's header") {
  const SweepSpec spec = toy_spec();
  const auto csv = scratch("resume-shard.csv");
  SweepOptions options = writing_to(csv);
  options.shard = Shard{0, 3};
  run_sweep(spec, options, fake_evaluate);
  SweepOptions other = options;
  other.shard = Shard{1, 3};
  CHECK(refusal([&] { run_sweep(spec, other, fake_evaluate); }) ==
        csv.string() + ":2:1: shard: this file holds shard 0/3 of the sweep, this run is shard 1/3; write to a new "
                       "--csv file or delete this one");

  std::vector<std::string> lines = lines_of(read_text(csv));
  lines[5] = lines[3];
  write_text(csv, joined(lines));
  const std::string id = layout_id(parse_csv_row(lines[3]).result.layout);
  CHECK(refusal([&] { run_sweep(spec, options, fake_evaluate); }) ==
        csv.string() + ":6:1: layout: layout " + id + " is also on line 4: a damaged file; write to a new --csv file "
                       "or delete this one");

  lines[0] = "rank,layout,verdict,reason";
  write_text(csv, joined(lines));
  CHECK(refusal([&] { run_sweep(spec, options, fake_evaluate); }) ==
        csv.string() + ":1:1: not a result file of this tpsim's `plan` (its header differs: another file, or "
                       "another tpsim version); write to a new file");
}

TEST_CASE("error rows (a worker OOM-killed by signal 9, or one that threw) are redone on resume, never reused") {
  SweepSpec spec = toy_spec();
  spec.micro_batches = {1};
  const auto csv = scratch("resume-errors.csv");
  SweepOptions options = writing_to(csv);
  auto flaky = [](const Scenario& s) -> LayoutResult {
    if (s.plan.tp == 4) std::raise(SIGKILL);   // as the OOM killer does
    if (s.plan.tp == 2 && s.plan.pp == 4) throw std::runtime_error("engine gave up");
    return fake_evaluate(s);
  };
  const SweepOutcome first = run_sweep(spec, options, flaky);
  int errors = 0;
  for (const auto& r : first.ranked) errors += r.verdict == Verdict::error;
  CHECK(errors > 0);
  CHECK(read_text(csv).find("signal 9") != std::string::npos);

  const SweepOutcome again = run_sweep(spec, options, fake_evaluate);
  CHECK(again.evaluated == errors);
  CHECK(again.resumed == again.total - errors);
  const auto clean = scratch("resume-errors-clean.csv");
  SweepOptions fresh = options;
  fresh.csv = clean.string();
  run_sweep(spec, fresh, fake_evaluate);
  CHECK(read_text(csv) == read_text(clean));
}

// ---------------------------------------------------------------------------------------------
// Merge

TEST_CASE("merge: every part of one sweep, each whole, gives the unsharded file; one unsharded part merges too") {
  const SweepSpec spec = toy_spec();
  const auto parts = shard_files(spec, 3, "m-ok");
  const Merged merged = merge_csv_files(parts);
  CHECK(merged.tag.id == sweep_id(spec));
  CHECK(merged.tag.shard.parts == 1);
  CHECK(merged.ranked.size() == 92);
  const auto whole = shard_files(spec, 1, "m-whole");
  const Merged same = merge_csv_files(whole);
  const auto out = scratch("m-out.csv");
  write_ranked_csv(out.string(), same.ranked, same.tag);
  CHECK(read_text(out) == read_text(whole[0]));
  write_ranked_csv(out.string(), merged.ranked, merged.tag);
  CHECK(read_text(out) == read_text(whole[0]));
}

TEST_CASE("merge refuses parts of different sweeps, another sharding, a missing or a repeated shard") {
  const SweepSpec spec = toy_spec();
  const auto parts = shard_files(spec, 3, "m-sweeps");
  SweepSpec slower = spec;
  slower.topology.intra.bandwidth = 45e9;
  const auto others = shard_files(slower, 3, "m-slower");
  const SweepTag tag = sweep_tag(spec), other = sweep_tag(slower);
  CHECK(refusal([&] { merge_csv_files({parts[0], parts[1], others[2]}); }) ==
        others[2] + ": sweep_id: this part is of sweep " + other.id + ", " + parts[0] + " of sweep " + tag.id +
            ": parts of sweeps with different inputs (scenario, --set, flags or tpsim version) cannot be merged");

  const auto halves = shard_files(spec, 2, "m-halves");
  CHECK(refusal([&] { merge_csv_files({parts[0], parts[1], halves[1]}); }) ==
        halves[1] + ": shard: this part is shard 1/2, " + parts[0] + " is shard 0/3: parts of one sharding have the same N");

  CHECK(refusal([&] { merge_csv_files({parts[0], parts[1]}); }) ==
        "merge: shard 2/3 of sweep " + tag.id + " is missing (got 0/3 (" + parts[0] + "), 1/3 (" + parts[1] +
            ")): pass every part");
  CHECK(refusal([&] { merge_csv_files({parts[0], parts[1], parts[1], parts[2]}); }) ==
        parts[1] + ": shard: this part and " + parts[1] + " both hold shard 1/3: pass each part once");
}

TEST_CASE("merge refuses an empty, header-only, torn or short part, a part with nan, a layout twice, mixed rows") {
  const SweepSpec spec = toy_spec();
  const auto parts = shard_files(spec, 3, "m-damage");
  const std::string good = read_text(parts[1]);
  const std::vector<std::string> lines = lines_of(good);   // the header and 31 rows
  REQUIRE(lines.size() == 32);
  auto merged_with = [&](const std::string& part1) {
    write_text(parts[1], part1);
    return refusal([&] { merge_csv_files(parts); });
  };
  const std::string p = parts[1];
  CHECK(merged_with("") == p + ": this part is empty: its sweep never started; re-run it with the same --shard and --csv");
  CHECK(merged_with(lines[0] + "\n") ==
        p + ": this part holds only the header, no rows: its sweep was interrupted before a layout finished; re-run "
            "it with the same --shard and --csv");
  CHECK(merged_with(good.substr(0, good.size() - 1)) ==   // the last newline missing
        p + ":32:1: this last line is cut off (no newline): the sweep writing this part was interrupted; re-run it "
            "with the same --shard and --csv to finish it");
  CHECK(merged_with(good.substr(0, good.size() - 20)) ==
        p + ":32:1: this last line is cut off (no newline): the sweep writing this part was interrupted; re-run it "
            "with the same --shard and --csv to finish it");
  std::vector<std::string> shorter(lines.begin(), lines.end() - 1);
  CHECK(merged_with(joined(shorter)) ==
        p + ": this part holds 30 of the 31 layouts of shard 1/3: its sweep was interrupted; re-run `tpsim plan` with "
            "that sweep's inputs and --shard 1/3 --csv " + p + " to finish it");

  // Line 2 is the best layout (ok, no quoted reason): its step_time_s, column 15, becomes nan.
  std::vector<std::string> nan_row = lines;
  std::string& row = nan_row[1];
  std::size_t at = 0;
  for (int comma = 0; comma < 14; ++comma) at = row.find(',', at) + 1;
  row.replace(at, row.find(',', at) - at, "nan");
  CHECK(merged_with(joined(nan_row)) ==
        p + ":2:1: column step_time_s: 'nan' is not a finite number (tpsim never writes one)");

  std::vector<std::string> twice = lines;
  twice[9] = twice[4];
  CHECK(merged_with(joined(twice)) == p + ":10:1: layout: layout " + layout_id(parse_csv_row(lines[4]).result.layout) +
                                          " is also on line 5 of " + p + ": a layout belongs to one shard, once");

  std::vector<std::string> mixed = lines;
  mixed[31] = lines_of(read_text(parts[0]))[1];
  const std::string id = sweep_id(spec);
  CHECK(merged_with(joined(mixed)) == p + ":32:1: this row is of sweep " + id + " shard 0/3, line 2 of sweep " + id +
                                          " shard 1/3: one file holds one part of one sweep");

  // A whole sweep's rows relabelled as one shard: more rows than that shard has.
  const auto whole = shard_files(spec, 1, "m-relabel");
  std::string relabelled = read_text(whole[0]);
  for (std::size_t at2 = relabelled.find(",0/1,"); at2 != std::string::npos; at2 = relabelled.find(",0/1,", at2))
    relabelled.replace(at2, 5, ",1/3,");
  CHECK(merged_with(relabelled) == p + ": this part holds 92 rows, but shard 1/3 of a sweep of 92 layouts has 31");

  CHECK(merged_with(good).empty());

  const std::string missing = scratch("m-missing.csv").string();
  CHECK(refusal([&] { merge_csv_files({parts[0], missing}); }) ==
        missing + ": cannot read this part file (missing, or no permission)");
  const std::string folder = scratch("m-folder").string();
  std::filesystem::create_directories(folder);
  CHECK(refusal([&] { merge_csv_files({folder}); }) == folder + ": this is a folder, not a part file");
}
