// A Hugging Face `config.json` read as a model (JSON is YAML, so errors keep their line:column).
// The families whose decoder blocks tpsim's layer is: Llama / Mistral / Qwen2 (SwiGLU MLP,
// RMSNorm, grouped-query attention), GPT-2 / GPT-NeoX (GELU MLP, LayerNorm), and the
// mixture-of-experts Mixtral and OLMoE (the Llama block with every MLP replaced by routed SwiGLU
// experts of width intermediate_size), and Qwen2-MoE (routed experts of moe_intermediate_size plus
// a gated shared expert). A config lists dozens of keys that change
// no matmul shape (rope, dropout, token ids, initialisers, router loss coefficients); only the ones
// below are read, and the ones that would change what is timed are refused by name: DeepSeek's
// routed-plus-shared experts with dense first layers (n_routed_experts), expert fields on a dense
// architecture, and unknown architectures. A tpsim key written by `--set model.KEY=V`
// (hidden, ffn, moe.top_k, ...) wins over the config's own field for it.
//
// Not timed: OLMoE's RMSNorm on queries and keys (2 x hidden weights per layer, 65,536 of the
// checkpoint's 6,919,161,856 parameters), elementwise work next to the attention GEMMs.
#include <algorithm>
#include <filesystem>

#include "spec/limits.hpp"
#include "spec/loading.hpp"

namespace tpsim::spec_detail {

namespace {

enum class Family { llama, gpt2, gpt_neox };

struct Architecture {
  const char* name;        // config.architectures[0]
  const char* model_type;  // config.model_type
  Family family;
  const char* experts_field;   // a mixture-of-experts model's field for its experts per layer; "" = dense
  bool experts_modelled;       // false: recognised, and refused with the reason
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::llama, "", true},
    {"MistralForCausalLM", "mistral", Family::llama, "", true},
    {"Qwen2ForCausalLM", "qwen2", Family::llama, "", true},
    {"GPT2LMHeadModel", "gpt2", Family::gpt2, "", true},
    {"GPTNeoXForCausalLM", "gpt_neox", Family::gpt_neox, "", true},
    {"MixtralForCausalLM", "mixtral", Family::llama, "num_local_experts", true},
    {"OlmoeForCausalLM", "olmoe", Family::llama, "num_experts", true},
    {"Qwen2MoeForCausalLM", "qwen2_moe", Family::llama, "num_experts", true},
};

std::string known_architectures() {
  std::string out;
  for (const Architecture& a : kArchitectures) out += std::string(out.empty() ? "" : ", ") + a.name;
  return out;
}

// The architecture the config names: architectures[0], else model_type.
const Architecture& architecture(const Map& m) {
  if (m.has("architectures")) {
    const YAML::Node list = m.value("architectures");
    if (!list.IsSequence() || list.size() == 0 || !list[0].IsScalar())
      m.fail("architectures", "expected a list of architecture names, e.g. [\"LlamaForCausalLM\"]");
    const std::string name = list[0].Scalar();
    for (const Architecture& a : kArchitectures)
      if (name == a.name) return a;
    m.fail("architectures", "'" + name + "' is not an architecture tpsim reads; known: " + known_architectures());
  }
  if (!m.has("model_type"))
    m.fail_here("a Hugging Face config needs 'architectures' or 'model_type' to say which model family it is");
  const std::string type = m.string("model_type");
  for (const Architecture& a : kArchitectures)
    if (type == a.model_type) return a;
  m.fail("model_type", "'" + type + "' is not a model type tpsim reads; known architectures: " + known_architectures());
}

// The config's field `hf`, unless `--set model.<ours>` wrote tpsim's own key. Checks made after
// loading look values up by tpsim's key, so the config's line is recorded under it too.
int64_t field(const Map& m, const char* ours, const char* hf, int64_t limit, const char* what,
              std::optional<int64_t> fallback = std::nullopt) {
  if (m.has(ours)) return m.integer_up_to(ours, limit, what);
  if (!m.has(hf) && !fallback) m.fail_here(std::string("missing required key '") + hf + "' (" + what + ")");
  const int64_t v = m.integer_up_to(hf, limit, what, fallback);
  if (Locations* where = m.source().locations; where && where->count(m.key_path(hf)))
    (*where)[m.key_path(ours)] = (*where)[m.key_path(hf)];
  return v;
}

// A mixture-of-experts setting: `--set model.moe.<ours>` if written (`set`), else the config's field
// `hf`, its line recorded under model.moe.<ours> for the checks.
int64_t moe_field(const Map& m, const std::optional<Map>& set, const char* ours, const char* hf, const char* what) {
  if (set && set->has(ours)) return set->integer_up_to(ours, limits::kExperts, what);
  if (!m.has(hf)) m.fail_here(std::string("missing required key '") + hf + "' (" + what + ")");
  const int64_t v = m.integer_up_to(hf, limits::kExperts, what);
  if (Locations* where = m.source().locations; where && where->count(m.key_path(hf)))
    (*where)[m.key_path(std::string("moe.") + ours)] = (*where)[m.key_path(hf)];
  return v;
}

// The experts of a Mixtral or OLMoE config; `ffn` is the model's (intermediate_size: one expert's).
MoeSpec read_experts(const Map& m, const Architecture& arch, int64_t ffn) {   // ffn: Qwen2-MoE replaces it
  const std::optional<Map> set = m.has("moe") ? std::optional<Map>(m.map("moe")) : std::nullopt;
  if (set)
    set->only({"experts", "top_k", "expert_ffn", "capacity_factor", "normalize_top_k", "shared_expert_ffn",
               "shared_expert_gate"});
  MoeSpec moe;
  moe.experts = moe_field(m, set, "experts", arch.experts_field, "experts per layer");
  moe.top_k = moe_field(m, set, "top_k", "num_experts_per_tok", "experts per token");
  // Qwen2-MoE: intermediate_size is a dense MLP's, moe_intermediate_size an expert's; every layer
  // sparse (decoder_sparse_step 1, no mlp_only_layers), plus a gated shared expert.
  const bool qwen2_moe = std::string(arch.model_type) == "qwen2_moe";
  if (qwen2_moe) {
    if (m.has("decoder_sparse_step") && m.integer_up_to("decoder_sparse_step", limits::kLayers, "layers") != 1)
      m.fail("decoder_sparse_step", "expected 1: tpsim's layers are all mixture-of-experts layers");
    if (m.has("mlp_only_layers") && m.value("mlp_only_layers").IsSequence() && m.value("mlp_only_layers").size() > 0)
      m.fail("mlp_only_layers", "expected []: dense layers among the mixture-of-experts ones are not modelled");
    ffn = m.integer_up_to("moe_intermediate_size", limits::kFfn, "an FFN size");
  }
  moe.expert_ffn = set && set->has("expert_ffn") ? set->integer_up_to("expert_ffn", limits::kFfn, "an FFN size") : ffn;
  const int64_t shared = qwen2_moe && m.has("shared_expert_intermediate_size")
                             ? m.integer_up_to("shared_expert_intermediate_size", limits::kFfn, "an FFN size")
                             : 0;
  moe.shared_expert_ffn = set && set->has("shared_expert_ffn")
                              ? set->integer_up_to("shared_expert_ffn", limits::kFfn, "an FFN size")
                              : shared;
  moe.shared_expert_gate = set ? set->boolean("shared_expert_gate", qwen2_moe && shared > 0) : qwen2_moe && shared > 0;
  // Hugging Face's experts are dropless: every token reaches its top-k.
  moe.capacity_factor = set ? set->quantity("capacity_factor", "number", 0.0) : 0.0;
  // Mixtral divides the top-k softmax weights by their sum; OLMoE (norm_topk_prob false) does not.
  const bool normalize =
      std::string(arch.model_type) == "mixtral" || (m.has("norm_topk_prob") && m.boolean("norm_topk_prob"));
  moe.normalize_top_k = set ? set->boolean("normalize_top_k", normalize) : normalize;
  return moe;
}

// torch_dtype (or a newer config's dtype), or a tpsim dtype written by --set model.dtype.
DType dtype_of(const Map& m) {
  const char* key = m.has("dtype") ? "dtype" : "torch_dtype";
  const std::string d =
      m.choice(key, {"bfloat16", "float16", "float32", "fp32", "tf32", "bf16", "fp16", "fp8"}, "bfloat16");
  if (d == "float32") return DType::fp32;
  if (d == "float16") return DType::fp16;
  if (d == "bfloat16") return DType::bf16;
  for (DType t : {DType::fp32, DType::tf32, DType::bf16, DType::fp16, DType::fp8})
    if (d == to_string(t)) return t;
  return DType::bf16;
}

// "Mixtral-8x7B" for models/Mixtral-8x7B/config.json; the file's stem otherwise.
std::string name_of(const Map& m, const std::string& fallback_name) {
  if (m.has("name")) return m.string("name");
  const std::filesystem::path file(m.source().file);
  const std::string folder = file.parent_path().filename().string();
  return fallback_name == "config" && !folder.empty() && folder != "." ? folder : fallback_name;
}

}  // namespace

bool is_hf_config(const YAML::Node& root) {
  return root.IsMap() && (root["architectures"].IsDefined() || root["model_type"].IsDefined());
}

ModelSpec read_hf_config(const Source& src, const YAML::Node& root, const std::string& fallback_name) {
  const Map m(src, root, "model");
  // DeepSeek-V2/V3 (and Kimi-K2, which reuses them): routed plus always-on shared experts, dense
  // first layers and latent attention, none of which tpsim's layer has.
  if (m.has("n_routed_experts"))
    m.fail("n_routed_experts", "DeepSeek-style mixture-of-experts (routed plus shared experts, dense first layers, "
                               "latent attention) is not modelled; tpsim reads Mixtral and OLMoE experts");
  const Architecture& arch = architecture(m);
  if (!arch.experts_modelled)
    m.fail("architectures", std::string(arch.name) + " is a mixture-of-experts family tpsim does not model; it "
                            "reads Mixtral, OLMoE and Qwen2-MoE experts");
  if (*arch.experts_field == '\0')
    for (const char* key : {"num_local_experts", "num_experts"})
      if (m.has(key) && m.integer_up_to(key, limits::kExperts, "experts per layer") > 1)
        m.fail(key, std::string(arch.name) + " is a dense architecture: mixture-of-experts fields are read for "
                    "MixtralForCausalLM and OlmoeForCausalLM only");

  ModelSpec model;
  model.name = name_of(m, fallback_name);
  const bool gpt2 = arch.family == Family::gpt2;
  model.hidden = field(m, "hidden", gpt2 ? "n_embd" : "hidden_size", limits::kHidden, "a hidden size");
  model.heads = field(m, "heads", gpt2 ? "n_head" : "num_attention_heads", limits::kHeads, "attention heads");
  model.kv_heads = arch.family == Family::llama
                       ? field(m, "kv_heads", "num_key_value_heads", limits::kHeads, "key/value heads", model.heads)
                       : field(m, "kv_heads", "kv_heads", limits::kHeads, "key/value heads", model.heads);
  model.layers = field(m, "layers", gpt2 ? "n_layer" : "num_hidden_layers", limits::kLayers, "layers");
  model.vocab = field(m, "vocab", "vocab_size", limits::kVocab, "a vocabulary size");
  model.max_seq = field(m, "max_seq", gpt2 ? "n_positions" : "max_position_embeddings", limits::kSequence, "tokens");
  // Mistral's sliding window: attention over at most that many tokens, which is full attention up
  // to the window; longer sequences would be timed as full attention, so the window caps max_seq.
  // (Qwen2 writes a window and turns it off with use_sliding_window: false.)
  const bool windowed = m.has("sliding_window") && (!m.has("use_sliding_window") || m.boolean("use_sliding_window"));
  if (windowed) {
    model.sliding_window = m.integer_up_to("sliding_window", limits::kSequence, "tokens");
    if (!m.has("max_seq")) model.max_seq = std::min(model.max_seq, model.sliding_window);
  }
  if (arch.family == Family::llama) {
    if (m.has("hidden_act") && m.string("hidden_act") != "silu")
      m.fail("hidden_act", "expected \"silu\": tpsim's gated MLP for " + std::string(arch.name) + " is SwiGLU");
    model.activation = Activation::swiglu;
    model.norm = Norm::rmsnorm;
    model.ffn = field(m, "ffn", "intermediate_size", limits::kFfn, "an FFN size");
    if (*arch.experts_field != '\0') {
      model.moe = read_experts(m, arch, model.ffn);
      model.ffn = model.moe.expert_ffn;   // the experts are the MLP
    }
  } else {
    model.activation = Activation::gelu;
    model.norm = Norm::layernorm;
    model.ffn = field(m, "ffn", gpt2 ? "n_inner" : "intermediate_size", limits::kFfn, "an FFN size", 4 * model.hidden);
  }
  model.dtype = dtype_of(m);
  return model;
}

}  // namespace tpsim::spec_detail
