// The spec loader on good inputs: units, every preset against the datasheet numbers it cites,
// defaults, --set overrides, -t/-m/-p replacements, the embedded default scenario.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tpsim/spec.hpp"

using namespace tpsim;
namespace fs = std::filesystem;

namespace {
const std::string kGood = std::string(TPSIM_TEST_DATA) + "/good";

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Scenario load_default(std::vector<Override> sets = {}) {
  ScenarioRequest r;
  r.overrides = std::move(sets);
  return load_scenario(r);
}
}  // namespace

TEST_CASE("parse_quantity converts units to SI") {
  CHECK(parse_quantity("450 GB/s", "bandwidth") == 450e9);
  CHECK(parse_quantity("400 Gb/s", "bandwidth") == 50e9);   // bits
  CHECK(parse_quantity("3.35 TB/s", "bandwidth") == rel(3.35e12));
  CHECK(parse_quantity("1 GiB/s", "bandwidth") == 1073741824.0);
  CHECK(parse_quantity("1.5 us", "time") == rel(1.5e-6));
  CHECK(parse_quantity("4us", "time") == rel(4e-6));
  CHECK(parse_quantity("2 ms", "time") == rel(2e-3));
  CHECK(parse_quantity("1 ns", "time") == rel(1e-9));
  CHECK(parse_quantity("80 GB", "bytes") == 80e9);
  CHECK(parse_quantity("80 GiB", "bytes") == 80.0 * 1073741824.0);
  CHECK(parse_quantity("141 GB", "bytes") == 141e9);
  CHECK(parse_quantity("989 TFLOP/s", "flops") == rel(989e12));
  CHECK(parse_quantity("2.25 PFLOP/s", "flops") == rel(2.25e15));
  CHECK(parse_quantity("0", "time") == 0);   // 0 is the one bare value a unit kind takes
  CHECK(parse_quantity("0.82", "number") == 0.82);
  CHECK(parse_quantity("82%", "number") == rel(0.82));
  for (const auto& [text, kind] : std::vector<std::pair<std::string, std::string>>{
           {"fast", "bandwidth"}, {"450 GB", "bandwidth"}, {"3 parsecs", "time"}, {"", "bytes"},
           {"989 TB/s", "flops"}, {"80 GB/s", "bytes"}, {"1 us", "number"}, {"1", "furlongs"}})
    CHECK_THROWS_AS(parse_quantity(text, kind), std::invalid_argument);
  // Refused before the engine sees them: a bare number would be base units (450 B/s), an infinite
  // rate aborts SimGrid, a denormal one deadlocks it.
  for (const auto& [text, kind] : std::vector<std::pair<std::string, std::string>>{
           {"450", "bandwidth"}, {"1e308 GB/s", "bandwidth"}, {"4.9e-324 GB/s", "bandwidth"},
           {"1e-300 TFLOP/s", "flops"}, {"1e30 s", "time"}, {"1e30 GB", "bytes"}})
    CHECK_THROWS_AS(parse_quantity(text, kind), std::out_of_range);
  CHECK(parse_quantity("-450 GB/s", "bandwidth") == -450e9);   // the field's own check says "positive"
}

TEST_CASE("every topology preset loads with its datasheet numbers") {
  const Topology h100 = load_topology("dgx-h100");
  CHECK(h100.gpu.peak_flops.at(DType::bf16) == rel(989e12));
  CHECK(h100.gpu.peak_flops.at(DType::fp8) == rel(1979e12));
  CHECK(h100.gpu.peak_flops.at(DType::fp16) == rel(989e12));   // defaults to bf16
  CHECK(h100.gpu.hbm_bytes == 80e9);
  CHECK(h100.gpu.hbm_bandwidth == rel(3.35e12));
  CHECK(h100.intra.bandwidth == 450e9);
  CHECK(h100.intra.nvls);
  CHECK(h100.nic.bandwidth == 50e9);
  CHECK(h100.total_gpus() == 8);
  CHECK(fs::path(h100.source).filename() == "dgx-h100.yaml");

  const Topology a100 = load_topology("dgx-a100");
  CHECK(a100.gpu.peak_flops.at(DType::bf16) == rel(312e12));
  CHECK(a100.gpu.peak_flops.count(DType::fp8) == 0);   // no fp8 tensor cores
  CHECK(a100.gpu.hbm_bandwidth == rel(2.039e12));
  CHECK(a100.intra.bandwidth == 300e9);
  CHECK(!a100.intra.nvls);
  CHECK(a100.nic.count == 8);
  CHECK(a100.nic.bandwidth == 25e9);   // 200 Gb/s HDR

  const Topology h200 = load_topology("hgx-h200");
  CHECK(h200.gpu.hbm_bytes == 141e9);
  CHECK(h200.gpu.hbm_bandwidth == rel(4.8e12));
  CHECK(h200.intra.bandwidth == 450e9);

  const Topology b200 = load_topology("dgx-b200");
  CHECK(b200.gpu.peak_flops.at(DType::bf16) == rel(2250e12));
  CHECK(b200.gpu.hbm_bytes == 180e9);
  CHECK(b200.intra.bandwidth == 900e9);
  CHECK(b200.gpu.gemm_efficiency * 2250 == rel(1745 * 0.884, 0.002));   // MAMF x the sustained ratio

  const Topology nvl72 = load_topology("gb200-nvl72");
  CHECK(nvl72.gpus_per_node == 72);
  CHECK(nvl72.total_gpus() == 72);
  CHECK(nvl72.gpu.peak_flops.at(DType::bf16) * 0.729 == rel(1822e12, 0.001));
  REQUIRE(nvl72.nic.gpus.size() == 72);   // rail-optimised default
  CHECK(nvl72.nic.gpus[41] == std::vector<int>{41});

  const Topology l40s = load_topology("pcie-8x-l40s");
  CHECK(l40s.intra.fabric == IntraFabric::pcie);
  CHECK(!l40s.intra.nvls);
  CHECK(l40s.intra.pcie_switches == 2);
  CHECK(l40s.gpu.peak_flops.at(DType::bf16) == rel(362e12));
  CHECK(l40s.gpu.hbm_bytes == 48e9);
  CHECK(l40s.nic.gpus[1] == std::vector<int>{4, 5, 6, 7});

  const Topology a100c = load_topology("cluster-a100-hdr");
  CHECK(a100c.network.kind == NetworkKind::fat_tree);
  CHECK(a100c.total_gpus() == 512);
  CHECK(a100c.nic.bandwidth == 25e9);
  const Topology h100c = load_topology("cluster-h100-ndr");
  CHECK(h100c.total_gpus() == 1024);
  CHECK(h100c.nic.bandwidth == 50e9);
  CHECK(load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}}).total_gpus() == 32);
  CHECK(h100.gpu.attention_score_bytes == 0);   // fused attention unless a topology says otherwise
  CHECK(load_topology("dgx-a100", {{"topology.gpu.attention_score_bytes", "24"}}).gpu.attention_score_bytes == 24);

  // No preset is left out of the checks above.
  int presets = 0;
  for (const auto& e : fs::directory_iterator(data_dir() + "/topologies"))
    if (e.path().extension() == ".yaml") {
      CAPTURE(e.path().string());
      CHECK_NOTHROW(load_topology(e.path().string()));
      ++presets;
    }
  CHECK(presets >= 8);
}

TEST_CASE("model presets: dimensions and parameter counts") {
  // Published parameter counts (Hugging Face model cards) for the Llama family.
  CHECK(parameter_count(load_model("llama2-7b")) == 6738415616);
  CHECK(parameter_count(load_model("llama2-13b")) == 13015864320);
  CHECK(parameter_count(load_model("llama2-70b")) == 68976648192);
  CHECK(parameter_count(load_model("llama3-8b")) == 8030261248);
  CHECK(parameter_count(load_model("llama3-70b")) == 70553706496);
  CHECK(parameter_count(load_model("llama3-405b")) == 405853388800);
  CHECK(parameter_count(load_model("gpt3-175b")) / 1e9 == rel(175, 0.01));

  const ModelSpec l70 = load_model("llama2-70b");
  CHECK(l70.kv_heads == 8);
  CHECK(l70.ffn == 28672);
  CHECK(l70.activation == Activation::swiglu);
  const ModelSpec l405 = load_model("llama3-405b");
  CHECK(l405.hidden == 16384);
  CHECK(l405.layers == 126);
  CHECK(l405.vocab == 128256);

  const ModelSpec tiny = load_model(kGood + "/gelu-default-ffn.yaml");
  CHECK(tiny.ffn == 4 * 512);
  CHECK(tiny.kv_heads == 8);
  CHECK(tiny.norm == Norm::layernorm);
  CHECK(tiny.dtype == DType::bf16);
}

namespace {

// The "N.NN B (N,NNN,...) active per token" count describe() gives a mixture-of-experts model.
double active_parameters(const ModelSpec& m) {
  const std::string text = describe(m);
  const size_t end = text.find(") active per token");
  REQUIRE(end != std::string::npos);
  std::string digits;
  for (size_t i = text.rfind('(', end) + 1; i < end; ++i)
    if (text[i] != ',') digits += text[i];
  return std::stod(digits);
}

void check_same_model(const ModelSpec& a, const ModelSpec& b) {
  CHECK(a.hidden == b.hidden);
  CHECK(a.ffn == b.ffn);
  CHECK(a.heads == b.heads);
  CHECK(a.kv_heads == b.kv_heads);
  CHECK(a.layers == b.layers);
  CHECK(a.vocab == b.vocab);
  CHECK(a.max_seq == b.max_seq);
  CHECK(a.sliding_window == b.sliding_window);
  CHECK(a.activation == b.activation);
  CHECK(a.norm == b.norm);
  CHECK(a.dtype == b.dtype);
  CHECK(a.moe.experts == b.moe.experts);
  CHECK(a.moe.top_k == b.moe.top_k);
  CHECK(a.moe.expert_ffn == b.moe.expert_ffn);
  CHECK(a.moe.capacity_factor == b.moe.capacity_factor);
  CHECK(a.moe.normalize_top_k == b.moe.normalize_top_k);
  CHECK(a.moe.shared_expert_ffn == b.moe.shared_expert_ffn);
  CHECK(a.moe.shared_expert_gate == b.moe.shared_expert_gate);
}

}  // namespace

TEST_CASE("mixture-of-experts presets: the published total and active parameter counts") {
  // Totals: the checkpoints' safetensors parameter counts on the Hugging Face Hub (Mixtral-8x7B's
  // is also keras-hub's preset "params"); active per token: the model cards (12.9 B, 39 B, 1.3 B).
  const ModelSpec x7 = load_model("mixtral-8x7b");
  CHECK(parameter_count(x7) == 46702792704);
  CHECK(active_parameters(x7) == rel(12.9e9, 0.005));
  CHECK(x7.moe.experts == 8);
  CHECK(x7.moe.top_k == 2);
  CHECK(x7.moe.expert_ffn == 14336);
  CHECK(x7.ffn == 14336);   // ffn left out: the experts' width
  CHECK(x7.moe.capacity_factor == 0);   // dropless
  CHECK(x7.moe.normalize_top_k);
  const ModelSpec x22 = load_model("mixtral-8x22b");
  CHECK(parameter_count(x22) == 140630071296);
  CHECK(parameter_count(x22) / 1e9 == rel(141, 0.005));   // "141B" (Mistral AI)
  CHECK(active_parameters(x22) == rel(39e9, 0.01));
  // OLMoE's checkpoint holds 6,919,161,856, of which 16 layers x 2 x 2048 are the query/key
  // RMSNorm weights tpsim does not model.
  const ModelSpec olmoe = load_model("olmoe-1b-7b");
  CHECK(parameter_count(olmoe) == 6919161856 - 16 * 2 * 2048);
  CHECK(active_parameters(olmoe) == rel(1.3e9, 0.02));   // 1.28 B: "1B active" in the name, 1.3 B in the paper
  CHECK(olmoe.moe.experts == 64);
  CHECK(olmoe.moe.top_k == 8);
  CHECK_FALSE(olmoe.moe.normalize_top_k);

  const std::string text = describe(x7);
  CHECK(text.find("  mixture of experts: 8 experts of ffn 14336 per layer, top-2 per token (weights renormalised "
                  "over the 2), router [4096, 8]; dropless") != std::string::npos);
  CHECK(describe(olmoe).find("top-8 per token (weights from the softmax over all 64, not renormalised)") !=
        std::string::npos);
  CHECK(text.find("parameters: 46.70 B (46,702,792,704; untied output head, no biases); 12.88 B") != std::string::npos);
  CHECK(describe(load_model("mixtral-8x7b", {{"model.moe.capacity_factor", "1.25"}})).find("capacity factor 1.25") !=
        std::string::npos);
  // A dense model says nothing of experts.
  CHECK(describe(load_model("llama2-7b")).find("expert") == std::string::npos);
}

TEST_CASE("Megatron-LM's MoE names read as tpsim's keys: num_experts, moe_router_topk, expert_model_parallel_size") {
  const Scenario megatron = load_scenario({kGood + "/megatron-moe-names.yaml", "", "", "", {}});
  const Scenario ours = load_scenario({kGood + "/mixtral-ep.yaml", "", "", "", {}});
  check_same_model(megatron.model, ours.model);
  CHECK(megatron.plan.ep == 4);
  CHECK(ours.plan.ep == 4);
  CHECK(megatron.plan.dp == 4);
  CHECK(megatron.workload.expert_skew == 1.5);
  CHECK(describe(megatron.plan) == describe(ours.plan).replace(describe(ours.plan).find("mixtral-ep"), 10,
                                                                "megatron-moe-names"));
  const std::string text = describe(ours);
  CHECK(text.find("  expert parallel: ep 4, carved out of dp 4: 4 DP replicas with consecutive dp indices split the "
                  "experts (2 of 8 each) and trade tokens by all-to-all\n") != std::string::npos);
  CHECK(text.find("routing: expert skew 1.5 (the busiest expert's tokens over the mean)\n") != std::string::npos);
  CHECK(text.find("uses 8 of 8 GPUs") != std::string::npos);   // ep is inside dp: no GPUs of its own
  // ep 1 is accepted on a dense model (megatron-names.yaml writes expert_model_parallel_size: 1).
  CHECK(load_scenario({kGood + "/megatron-names.yaml", "", "", "", {{"topology.nodes", "32"}}}).plan.ep == 1);
}

TEST_CASE("the GPT presets are the rows of Narayanan et al. Table 1") {
  std::ifstream csv(std::string(TPSIM_REFERENCE_DIR) + "/narayanan_2021_table1_rows1-5.csv");
  REQUIRE(csv.good());
  std::string line;
  int rows = 0;
  while (std::getline(csv, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("params_B", 0) == 0) continue;
    std::stringstream ss(line);
    std::string params, heads, hidden, layers;
    std::getline(ss, params, ',');
    std::getline(ss, heads, ',');
    std::getline(ss, hidden, ',');
    std::getline(ss, layers, ',');
    CAPTURE(line);
    const ModelSpec m = load_model("gpt-" + params + "b");
    CHECK(m.heads == std::stoll(heads));
    CHECK(m.hidden == std::stoll(hidden));
    CHECK(m.layers == std::stoll(layers));
    CHECK(m.ffn == 4 * m.hidden);
    CHECK(m.vocab == 51200);
    CHECK(m.max_seq == 2048);
    // Our count has an untied output head; the paper's ties it. Both within 5% of the row.
    const double tied = static_cast<double>(parameter_count(m) - m.vocab * m.hidden);
    CHECK(tied / 1e9 == rel(std::stod(params), 0.05));
    ++rows;
  }
  CHECK(rows == 5);
}

TEST_CASE("gpt-22b is Korthikanti et al. 2022 Table 3's 22B model") {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/korthikanti_2022_tables3-4.md");
  REQUIRE(in.good());
  std::string line;
  bool found = false;
  while (std::getline(in, line))
    if (line.rfind("22B,", 0) == 0) {
      std::stringstream ss(line);
      std::string name, heads, hidden, layers;
      std::getline(ss, name, ',');
      std::getline(ss, heads, ',');
      std::getline(ss, hidden, ',');
      std::getline(ss, layers, ',');
      const ModelSpec m = load_model("gpt-22b");
      CHECK(m.heads == std::stoll(heads));
      CHECK(m.hidden == std::stoll(hidden));
      CHECK(m.layers == std::stoll(layers));
      CHECK(m.ffn == 4 * m.hidden);
      CHECK(m.vocab == 51200);
      const double tied = static_cast<double>(parameter_count(m) - m.vocab * m.hidden);
      CHECK(tied / 1e9 == rel(22, 0.05));
      found = true;
    }
  CHECK(found);
}

TEST_CASE("the embedded default scenario is examples/default.yaml") {
  CHECK(std::string(default_scenario_yaml()) == read_text(data_dir() + "/examples/default.yaml"));
  const Scenario s = load_default();
  CHECK(s.name == "llama2-7b-tp8-dgx-h100");
  CHECK(s.source.empty());
  CHECK(s.topology.name == "dgx-h100");
  CHECK(s.model.name == "llama2-7b");
  CHECK(s.plan.tp == 8);
  CHECK(s.plan.preset == PlanPreset::megatron);
  CHECK(s.workload.seq == 2048);
  CHECK(s.numerics == "proxy");
  // The file itself loads to the same scenario.
  const Scenario f = load_scenario({data_dir() + "/examples/default.yaml", "", "", "", {}});
  CHECK(f.plan.tp == s.plan.tp);
  CHECK(f.topology.intra.bandwidth == s.topology.intra.bandwidth);
}

TEST_CASE("--set overrides reach every section before validation") {
  const Scenario s = load_default({{"topology.nodes", "2"},
                                   {"topology.intra.bandwidth", "300GB/s"},
                                   {"plan.tp", "4"},
                                   {"plan.pp", "2"},
                                   {"plan.dp", "2"},
                                   {"plan.sp", "true"},
                                   {"model.layers", "8"},
                                   {"model.hidden", "2048"},
                                   {"model.heads", "16"},
                                   {"model.kv_heads", "16"},
                                   {"workload.global_batch", "8"},
                                   {"workload.micro_batch", "2"},
                                   {"workload.seq", "1024"},
                                   {"numerics", "off"}});
  CHECK(s.topology.nodes == 2);
  CHECK(s.topology.total_gpus() == 16);
  CHECK(s.topology.intra.bandwidth == 300e9);
  CHECK(s.plan.world() == 16);
  CHECK(s.plan.sp);
  CHECK(s.model.layers == 8);
  CHECK(s.model.hidden == 2048);
  CHECK(s.model.heads == 16);
  CHECK(s.model.kv_heads == 16);
  CHECK(s.model.ffn == 11008);   // the file's value: overrides change only what they name
  CHECK(s.workload.global_batch == 8);
  CHECK(s.workload.micro_batch == 2);
  CHECK(s.workload.seq == 1024);
  CHECK(s.numerics == "off");

  // Dotted weight names are one key: plan.partitions.mlp.fc1 writes partitions["mlp.fc1"], creating
  // the partitions mapping when the plan has none.
  const Scenario q = load_default({{"plan.partitions.mlp.fc1", "[null, tp]"},
                                   {"plan.mappings.mlp.fc2.reduce_output", "false"},
                                   {"plan.mesh_order", "[tp, pp, dp]"}});
  CHECK(q.plan.partitions.at("mlp.fc1") == PartitionSpec{"", "tp"});
  CHECK(q.plan.mappings.at("mlp.fc2").reduce_output == false);
  CHECK(q.plan.mesh_order == std::vector<std::string>{"tp", "pp", "dp"});

  const PlanSpec p = load_plan(kGood + "/custom-plan.yaml", {{"plan.partitions.mlp.fc1", "[tp, null]"}});
  CHECK(p.partitions.at("mlp.fc1") == PartitionSpec{"tp", ""});
  CHECK(p.partitions.at("mlp.fc2") == PartitionSpec{"tp", ""});
}

TEST_CASE("-t/-m/-p replace the scenario's parts; plan presets start at tp 1") {
  ScenarioRequest r;
  r.topology = "dgx-a100";
  r.model = "llama3-8b";
  r.plan = "naive";
  const Scenario s = load_scenario(r);
  CHECK(s.topology.name == "dgx-a100");
  CHECK(s.model.name == "llama3-8b");
  CHECK(s.plan.preset == PlanPreset::naive);
  CHECK(s.plan.world() == 1);
  // The reports' first lines name what ran: the default scenario as changed by the flags.
  CHECK(s.name == "llama2-7b-tp8-dgx-h100 (with --topology dgx-a100, --model llama3-8b, --plan naive)");
  CHECK(s.plan.name == "naive");
  r.overrides = {{"plan.tp", "8"}};
  CHECK(load_scenario(r).plan.tp == 8);
  r.plan = kGood + "/custom-plan.yaml";
  r.overrides = {{"plan.dp", "1"}};
  CHECK(load_scenario(r).plan.name == "custom-mlp (as --set changes it)");
}

TEST_CASE("custom plans, inline parts and paths relative to the scenario") {
  const Scenario s = load_scenario({kGood + "/inline-scenario.yaml", "", "", "", {}});
  CHECK(s.name == "inline-inference");
  CHECK(s.topology.name == "mini-mesh");   // file stem when the file has no name
  CHECK(s.topology.intra.fabric == IntraFabric::nvlink_mesh);
  CHECK(s.topology.gpu.hbm_bytes == 16.0 * 1073741824.0);
  CHECK(s.topology.network.switch_latency == rel(500e-9));
  CHECK(s.topology.network.oversubscription == 2);
  CHECK(s.topology.nic.gpus == std::vector<std::vector<int>>{{0, 1}, {2, 3}});   // rail-optimised default
  const CollectiveTuning& tune = s.topology.collectives;
  CHECK(tune.launch_latency == rel(18e-6));
  REQUIRE(tune.protocols.size() == 2);
  CHECK(tune.protocols[0].name == "LL");
  CHECK(tune.protocols[0].efficiency == 0.5);
  CHECK(tune.protocols[0].max_bandwidth == 36e9);
  CHECK(tune.protocols[1].name == "Simple");
  CHECK(tune.protocols[1].inter_step_latency == rel(14e-6));
  CHECK(tune.protocols[1].intra_step_latency == 0);
  CHECK(tune.protocols[1].min_time == rel(5e-6));
  CHECK(tune.protocols[1].efficiency == 1);
  CHECK(s.model.name == "tiny-llama");
  CHECK(s.model.source == s.source);   // inline parts come from the scenario file
  CHECK(s.plan.preset == PlanPreset::custom);
  CHECK(s.plan.mesh_order == std::vector<std::string>{"tp", "pp", "dp"});
  CHECK(s.plan.partitions.at("embedding") == PartitionSpec{"tp", ""});
  CHECK(s.plan.mappings.at("mlp.fc2").reduce_output == false);
  CHECK(!s.plan.mappings.at("mlp.fc2").gather_output.has_value());
  CHECK(s.plan.recompute == Recompute::selective);
  CHECK(s.plan.distributed_optimizer);
  CHECK(s.workload.kind == WorkloadKind::inference);
  CHECK(s.workload.prompt == 128);
  CHECK(s.outputs.json == "out/run.json");
  CHECK(s.numerics == "full");
}

TEST_CASE("validate() re-checks a scenario built in code") {
  Scenario s = load_default();
  CHECK_NOTHROW(validate(s));
  s.plan.tp = 3;
  try {
    validate(s);
    FAIL("tp 3 should not divide 32 heads");
  } catch (const InputError& e) {
    CHECK(e.key == "plan.tp");
    CHECK(e.problem == "tp 3 does not divide model.heads 32 (model 'llama2-7b')");
  }
  s.plan.tp = 8;
  s.workload.micro_batch = 0;
  CHECK_THROWS_WITH_AS(validate(s), doctest::Contains("workload.micro_batch: must be positive, got 0"), InputError);
}

TEST_CASE("validate_file tells the kinds apart and describes them") {
  const std::string topo = validate_file(data_dir() + "/topologies/dgx-h100.yaml");
  CHECK(topo.rfind("topology 'dgx-h100'", 0) == 0);
  CHECK(topo.find("H100-SXM, peak dense TFLOP/s: bf16 989") != std::string::npos);
  CHECK(topo.find("8 GPUs on NVSwitch, 450 GB/s per GPU per direction") != std::string::npos);
  CHECK(topo.find("8 x 400 Gb/s per node (50 GB/s each") != std::string::npos);
  const std::string model = validate_file(data_dir() + "/models/llama2-7b.yaml");
  CHECK(model.find("parameters: 6.74 B (6,738,415,616") != std::string::npos);
  const std::string plan = validate_file(kGood + "/custom-plan.yaml");
  CHECK(plan.find("mesh: tp 4 x pp 1 x dp 2 = 8 GPUs") != std::string::npos);
  CHECK(plan.find("mlp.fc2     row-parallel over tp (plan); input_is_parallel=true reduce_output=false") !=
        std::string::npos);
  CHECK(plan.find("attn.qkv    replicated") != std::string::npos);   // custom: unnamed weights stay whole
  const std::string scenario = validate_file(data_dir() + "/examples/default.yaml");
  CHECK(scenario.find("attn.proj   row-parallel over tp") != std::string::npos);
  CHECK(scenario.find("uses 8 of 8 GPUs") != std::string::npos);
  CHECK(scenario.find("global batch 1 = dp 1 x 1 micro-batch of 1 sequence x 2048 tokens") != std::string::npos);

  // tp placed outside dp in the mesh: ranks of one tp group are 2 apart, so 8 of them span 2 nodes.
  ScenarioRequest r;
  r.topology = "cluster-h100-ndr";
  r.model = "gpt-1.7b";
  r.overrides = {{"plan.dp", "2"}, {"plan.mesh_order", "[dp, tp, pp]"}, {"workload.global_batch", "2"}};
  const std::string spread = describe(load_scenario(r));
  CHECK(spread.find("uses 16 of 1024 GPUs; a tp group spans 2 nodes") != std::string::npos);
  CHECK(spread.find("mlp.gate") == std::string::npos);   // gelu: no gate weight
  CHECK(validate_file(kGood + "/topologies/mini-mesh.yaml").find("2 nodes x 4 GPUs = 8 GPUs; network: fat-tree") !=
        std::string::npos);
}

TEST_CASE("NIC layouts: the three example nodes load, and validate says which NICs each GPU uses") {
  // 8 GPUs + 12 HCAs: NIC i is mlx5_i (DGX H100 User Guide Table 6), storage ports carry nothing.
  const Topology dgx = load_topology("dgx-h100-12hca");
  CHECK(dgx.nic.count == 12);
  CHECK(nics_of_gpus(dgx.nic, 8) == std::vector<std::vector<int>>{{0}, {3}, {4}, {5}, {6}, {9}, {10}, {11}});
  CHECK(dgx.nic.pcie_bandwidth == 55e9);
  const std::string d = describe(dgx);
  CHECK(d.find("NICs: 12 x 400 Gb/s per node") != std::string::npos);
  CHECK(d.find("    GPU 1 (socket 0) -> NIC 3 (400 Gb/s, 48.5 GB/s achievable; socket 0); path: PCIe 55 GB/s, same "
               "socket; alone up to 48.5 GB/s each way (the NIC)\n") != std::string::npos);
  CHECK(d.find("    NICs 1, 2, 7, 8 carry no GPU traffic (storage, management)\n") != std::string::npos);

  // 8 GPUs + 32 x 100G EFA, four per GPU: 4 x 12.5 GB/s x 0.97 = 48.5 GB/s.
  const Topology p5 = load_topology("aws-p5-efa");
  CHECK(p5.nic.count == 32);
  CHECK(nics_of_gpus(p5.nic, 8)[5] == std::vector<int>{20, 21, 22, 23});
  CHECK(describe(p5).find("    GPU 5 (socket 1) -> NICs 20-23 (4 x 100 Gb/s = 400 Gb/s, 48.5 GB/s achievable; socket 1); "
                          "path: PCIe 55 GB/s, same socket; alone up to 48.5 GB/s each way (the NICs)\n") != std::string::npos);

  // 4 GPUs + 2 NICs across two sockets: 200 Gb/s x 0.96 = 24 GB/s per NIC, halved when both GPUs send.
  const Topology two = load_topology("pcie-4x-l40s-2socket");
  CHECK(two.nic.sockets == std::vector<int>{0, 1});
  CHECK(two.nic.gpu_sockets == std::vector<int>{0, 0, 1, 1});
  CHECK(two.nic.socket_bandwidth == rel(41.6e9));
  CHECK(describe(two).find("    GPU 2 (socket 1) -> NIC 1 (200 Gb/s, 24 GB/s achievable; socket 1; shared by GPUs 2, 3); "
                           "path: PCIe 28.16 GB/s, same socket; alone up to 24 GB/s each way (the NIC), 12 GB/s with "
                           "every GPU of the node sending\n") != std::string::npos);

  // Only NIC 0 cabled, a 10 GB/s link between the sockets: GPUs 2-3 cross it. Max-min with all four
  // sending: the socket link fills first at 10/2 = 5 GB/s each for GPUs 2-3, GPUs 0-1 split the
  // NIC's remaining 24 - 10 = 14 GB/s.
  const std::string x = describe(load_topology(
      "pcie-4x-l40s-2socket", {{"topology.nic.gpus", "[[0, 1, 2, 3], []]"}, {"topology.nic.socket_bandwidth", "10 GB/s"}}));
  CHECK(x.find("    GPU 0 (socket 0) -> NIC 0 (200 Gb/s, 24 GB/s achievable; socket 0; shared by GPUs 0-3); path: PCIe "
               "28.16 GB/s, same socket; alone up to 24 GB/s each way (the NIC), 7 GB/s with every GPU of the node "
               "sending\n") != std::string::npos);
  CHECK(x.find("    GPU 3 (socket 1) -> NIC 0 (200 Gb/s, 24 GB/s achievable; socket 0; shared by GPUs 0-3); path: PCIe "
               "28.16 GB/s, crosses sockets 1 -> 0 at 10 GB/s; alone up to 10 GB/s each way (the socket link), 5 GB/s "
               "with every GPU of the node sending\n") != std::string::npos);
  CHECK(x.find("    NIC 1 carries no GPU traffic (storage, management)\n") != std::string::npos);

  // The plain layout keeps its one line.
  CHECK(describe(load_topology("dgx-h100")).find("; rail-optimised, NIC i serves GPU i\n") != std::string::npos);
}

TEST_CASE("every preset validates and describes itself") {
  for (const char* category : {"topologies", "models"})
    for (const auto& e : fs::directory_iterator(data_dir() + "/" + category))
      if (e.path().extension() == ".yaml") {
        CAPTURE(e.path().string());
        const std::string text = validate_file(e.path().string());
        const std::string kind = std::string(category) == "models" ? "model '" : "topology '";
        CHECK(text.rfind(kind + e.path().stem().string() + "'", 0) == 0);
      }
}

TEST_CASE("every example scenario is valid") {
  int examples = 0;
  for (const auto& e : fs::directory_iterator(data_dir() + "/examples"))
    if (e.path().extension() == ".yaml") {
      CAPTURE(e.path().string());
      CHECK_NOTHROW(load_scenario({e.path().string(), "", "", "", {}}));
      ++examples;
    }
  CHECK(examples >= 1);
}

TEST_CASE("TPSIM_DATA_DIR moves the preset folder") {
  ::setenv("TPSIM_DATA_DIR", kGood.c_str(), 1);
  CHECK(data_dir() == kGood);
  const Topology t = load_topology("mini-mesh");
  ::unsetenv("TPSIM_DATA_DIR");
  CHECK(t.gpus_per_node == 4);
  CHECK_THROWS_AS(load_topology("mini-mesh"), InputError);
}

TEST_CASE("Megatron-LM's argument names read as tpsim's keys, with their lines kept") {
  const std::vector<Override> nodes = {{"topology.nodes", "32"}};
  const Scenario megatron = load_scenario({kGood + "/megatron-names.yaml", "", "", "", nodes});
  const Scenario ours = load_scenario({kGood + "/megatron-names-tpsim.yaml", "", "", "", nodes});
  CHECK(megatron.plan.tp == 8);
  CHECK(megatron.plan.pp == 16);
  CHECK(megatron.plan.first_stage_layers == 7);
  CHECK(megatron.plan.recompute == Recompute::full);
  CHECK(megatron.workload.seq == 8192);
  std::string ours_text = describe(ours);   // the same but for the file names
  for (size_t at; (at = ours_text.find("megatron-names-tpsim")) != std::string::npos;) ours_text.replace(at, 20, "megatron-names");
  CHECK(describe(megatron) == ours_text);
  CHECK(describe(megatron).find("uneven pipeline: first stage 7, last stage 7 layers") != std::string::npos);
  // Both spellings of one setting, and an axis tpsim does not model, are refused at the alias.
  auto error_of = [&](std::vector<Override> sets) {
    sets.push_back(nodes[0]);
    try {
      load_scenario({kGood + "/megatron-names.yaml", "", "", "", sets});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({{"plan.tp", "4"}}).find("both 'tp' and its Megatron-LM name 'tensor_model_parallel_size' are set") !=
        std::string::npos);
  // Megatron's context_parallel_size is plan.cp: doubling it doubles the GPUs the plan needs.
  CHECK(error_of({{"plan.context_parallel_size", "2"}}).find("plan needs 512 GPUs (tp 8 x cp 2 x pp 16 x dp 2)") !=
        std::string::npos);
}

TEST_CASE("Megatron's num_layers_per_virtual_pipeline_stage sets virtual_stages from the model's layers") {
  // 32 layers / (4 stages x 2 layers per chunk) = 4 chunks per stage.
  const Scenario s = load_scenario({kGood + "/megatron-layers-per-virtual-stage.yaml", "", "", "", {}});
  CHECK(s.plan.pp == 4);
  CHECK(s.plan.layers_per_virtual_stage == 2);
  CHECK(s.plan.virtual_stages == 4);
  CHECK(stage_split_problem(s.model, s.plan).empty());
}

// A Hugging Face config.json read as a model: each family's fields map onto tpsim's, checked against
// the published parameter counts and against tpsim's own preset of the same model; what tpsim cannot
// time (DeepSeek's and Qwen2-MoE's shared experts, experts on a dense architecture, unknown
// architectures) is refused at the key. Fixtures: tests/data/hf/.




namespace {

std::string hf_fixture(const std::string& name) { return std::string(TPSIM_TEST_DATA) + "/hf/" + name + "/config.json"; }

std::string hf_error_of(const std::string& path, const std::vector<Override>& sets = {}) {
  try {
    load_model(path, sets);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Llama-2-7B's config.json is the llama2-7b preset, named after its folder") {
  const ModelSpec hf = load_model(hf_fixture("Llama-2-7b-hf"));
  const ModelSpec preset = load_model("llama2-7b");
  CHECK(hf.name == "Llama-2-7b-hf");
  CHECK(hf.hidden == preset.hidden);
  CHECK(hf.ffn == preset.ffn);
  CHECK(hf.heads == preset.heads);
  CHECK(hf.kv_heads == preset.kv_heads);
  CHECK(hf.layers == preset.layers);
  CHECK(hf.vocab == preset.vocab);
  CHECK(hf.max_seq == preset.max_seq);
  CHECK(hf.activation == Activation::swiglu);
  CHECK(hf.norm == Norm::rmsnorm);
  CHECK(hf.dtype == DType::fp16);   // torch_dtype: float16
  CHECK(parameter_count(hf) == 6738415616);   // Meta's published count (untied head, no biases)
}

TEST_CASE("Mistral-7B-v0.1: grouped-query attention, and its 4096-token sliding window caps max_seq") {
  const ModelSpec m = load_model(hf_fixture("Mistral-7B-v0.1"));
  CHECK(m.kv_heads == 8);
  CHECK(m.ffn == 14336);
  CHECK(m.max_seq == 4096);   // max_position_embeddings 32768; beyond the window it is not full attention
  CHECK(m.sliding_window == 4096);
  CHECK(parameter_count(m) == 7241732096);   // the checkpoint's parameter count
  // A window the config turns off (Qwen2: use_sliding_window false) leaves max_seq alone.
  CHECK(load_model(hf_fixture("Qwen2-7B")).max_seq == 131072);
  CHECK(load_model(hf_fixture("Qwen2-7B")).kv_heads == 4);
  CHECK(load_model(hf_fixture("Qwen2-7B")).sliding_window == 0);
}

TEST_CASE("GPT-2 and GPT-NeoX: GELU MLP and LayerNorm; GPT-2's n_inner null is 4 x n_embd") {
  const ModelSpec gpt2 = load_model(hf_fixture("gpt2"));
  CHECK(gpt2.hidden == 768);
  CHECK(gpt2.ffn == 3072);
  CHECK(gpt2.layers == 12);
  CHECK(gpt2.heads == 12);
  CHECK(gpt2.max_seq == 1024);
  CHECK(gpt2.activation == Activation::gelu);
  CHECK(gpt2.norm == Norm::layernorm);
  const ModelSpec neox = load_model(hf_fixture("pythia-1b"));
  CHECK(neox.hidden == 2048);
  CHECK(neox.ffn == 8192);
  CHECK(neox.heads == 8);
  CHECK(neox.layers == 16);
  CHECK(neox.vocab == 50304);
  CHECK(neox.activation == Activation::gelu);
}

TEST_CASE("--set model.KEY writes tpsim's key, which wins over the config's field") {
  const ModelSpec m = load_model(hf_fixture("Llama-2-7b-hf"), {{"model.layers", "4"}, {"model.dtype", "fp8"}});
  CHECK(m.layers == 4);
  CHECK(m.dtype == DType::fp8);
}

TEST_CASE("what tpsim cannot time is refused at its key, with the file's line and column") {
  // The bad-input corpus (tests/data/bad/hf-*.yaml) holds more; these read real fixtures' files.
  const std::string gpt2 = hf_fixture("gpt2");
  const std::string wrong = hf_error_of(gpt2, {{"model.architectures", "[FalconForCausalLM]"}});
  CHECK(wrong.find("architectures") != std::string::npos);
  CHECK(wrong.find("'FalconForCausalLM' is not an architecture tpsim reads") != std::string::npos);
  const std::string moe = hf_error_of(hf_fixture("Llama-2-7b-hf"), {{"model.num_local_experts", "8"}});
  CHECK(moe.find("model.num_local_experts") != std::string::npos);
  CHECK(moe.find("mixture-of-experts") != std::string::npos);
}

TEST_CASE("Qwen1.5-MoE-A2.7B's config.json: 60 fine-grained experts plus a gated shared expert, 14.3 B / 2.7 B") {
  const ModelSpec q = load_model(hf_fixture("Qwen1.5-MoE-A2.7B"));
  check_same_model(q, load_model("qwen1.5-moe-a2.7b"));
  CHECK(q.moe.expert_ffn == 1408);          // moe_intermediate_size, not the dense intermediate_size 5632
  CHECK(q.moe.shared_expert_ffn == 5632);   // shared_expert_intermediate_size
  CHECK(q.moe.shared_expert_gate);
  CHECK_FALSE(q.moe.normalize_top_k);
  // The model card: 14.3 B parameters in total, 2.7 B activated (tpsim counts no qkv biases,
  // 147,456 of them, so its figures sit just under).
  CHECK(double(parameter_count(q)) == rel(14.3e9, 0.005));
  CHECK(double(active_parameter_count(q)) == rel(2.7e9, 0.01));
  CHECK(describe(q).find("2.69 B (2,689,026,048) active per token") != std::string::npos);
}

TEST_CASE("Mixtral's and OLMoE's config.json are the mixture-of-experts presets") {
  const ModelSpec x7 = load_model(hf_fixture("Mixtral-8x7B-v0.1"));
  CHECK(x7.name == "Mixtral-8x7B-v0.1");
  check_same_model(x7, load_model("mixtral-8x7b"));
  CHECK(x7.sliding_window == 0);        // sliding_window: null
  CHECK(x7.max_seq == 32768);
  CHECK(parameter_count(x7) == 46702792704);
  check_same_model(load_model(hf_fixture("Mixtral-8x22B-v0.1")), load_model("mixtral-8x22b"));
  CHECK(parameter_count(load_model(hf_fixture("Mixtral-8x22B-v0.1"))) == 140630071296);
  const ModelSpec olmoe = load_model(hf_fixture("OLMoE-1B-7B-0924"));
  check_same_model(olmoe, load_model("olmoe-1b-7b"));
  CHECK_FALSE(olmoe.moe.normalize_top_k);   // norm_topk_prob: false
  // --set model.moe.KEY wins over the config's field, and is checked at the flag.
  const ModelSpec top1 = load_model(hf_fixture("Mixtral-8x7B-v0.1"), {{"model.moe.top_k", "1"}});
  CHECK(top1.moe.top_k == 1);
  CHECK(top1.moe.experts == 8);
  CHECK(hf_error_of(hf_fixture("Mixtral-8x7B-v0.1"), {{"model.moe.top_k", "9"}}) ==
        "--set model.moe.top_k: expected 1 <= top_k <= experts = 8 (each token picks top_k different experts), got 9");
  // The config's own field, out of range, is reported at its line.
  CHECK(hf_error_of(hf_fixture("Mixtral-8x7B-v0.1"), {{"model.num_local_experts", "1"}}).find(
            "model.moe.top_k: expected 1 <= top_k <= experts = 1") != std::string::npos);
}
